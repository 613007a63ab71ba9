"""``notifier silence add|list|expire``, ``notifier ack`` and ``notifier snooze``: the CLI side
of talking back, through the running daemon's API (SPEC §9)."""

from __future__ import annotations

import argparse
import getpass
import sys
import urllib.parse
from collections.abc import Callable
from typing import Any

import orjson

from notifier.ctl import ControlError, request
from notifier.durations import parse_duration
from notifier.talkback.report import silence_lines
from notifier.timestamps import parse_iso

__all__ = ["COMMANDS", "add_parsers"]

Base = Callable[[argparse.Namespace], str]
Token = Callable[[argparse.Namespace], "str | None"]


def add_parsers(sub: Any, config_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the talkback commands on the CLI's subparsers."""

    def common(p: argparse.ArgumentParser) -> None:
        config_arg(p)
        p.add_argument("--url", default=None, help="daemon HTTP address (default: http.listen)")

    p = sub.add_parser("silence", help="add, list or expire silences, through the running daemon")
    actions = p.add_subparsers(dest="silence_action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="mute matching notifications for a while; prints the id")
    common(add)
    for name, text in (("rule", "rule id glob (sol-*)"), ("key", "alert key glob"),
                       ("severity", "info|success|warning|failure"),
                       ("source", "quote|order|intent|feed"), ("tag", "apprise tag")):  # fmt: skip
        add.add_argument(f"--{name}", default=None, help=text)
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument("--for", dest="duration", default=None, help="how long, e.g. 2h")
    until.add_argument("--until", default=None, help="end, RFC 3339 (2025-01-31T08:00:00Z)")
    add.add_argument("--comment", default="")
    add.add_argument("--by", default=None, help="who (default: your user name)")
    listing = actions.add_parser("list", help="current and future silences")
    common(listing)
    listing.add_argument("--json", action="store_true", help="print the raw JSON")
    expire = actions.add_parser("expire", help="end a silence now")
    common(expire)
    expire.add_argument("id")

    p = sub.add_parser("ack", help="acknowledge a firing alert: no repeats until it resolves")
    common(p)
    p.add_argument("rule")
    p.add_argument("key", nargs="?", default=None, help="omit when the rule has one firing key")
    p.add_argument("--by", default=None)

    p = sub.add_parser("snooze", help="no message at all from an alert for a while")
    common(p)
    p.add_argument("rule")
    p.add_argument("key", nargs="?", default=None, help="omit when the rule has one alert")
    p.add_argument("--for", dest="duration", required=True, help="how long, e.g. 1h")
    p.add_argument("--by", default=None)


def _who(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):
        return "cli"


def _duration(text: str) -> str:
    try:
        parse_duration(text)
    except ValueError as exc:
        raise ControlError(f"--for: {exc}") from None
    return text


def _silence(args: argparse.Namespace, base: str, token: str | None) -> str:
    if args.silence_action == "list":
        found = request("GET", base, "/api/v1/silences", token)
        if args.json:
            return orjson.dumps(found, option=orjson.OPT_INDENT_2).decode()
        return "\n".join(silence_lines(found)) or "no silences"
    if args.silence_action == "expire":
        silence_id = urllib.parse.quote(args.id, safe="")
        request("DELETE", base, f"/api/v1/silences/{silence_id}", token)
        return f"expired silence {args.id}"
    matchers = {
        name: getattr(args, name)
        for name in ("rule", "key", "severity", "source", "tag")
        if getattr(args, name) is not None
    }
    if not matchers:
        raise ControlError("give at least one of --rule, --key, --severity, --source, --tag")
    body: dict[str, Any] = {"matchers": matchers, "comment": args.comment,
                            "created_by": _who(args)}  # fmt: skip
    if args.duration is not None:
        body["duration"] = _duration(args.duration)
    else:
        if parse_iso(args.until) is None:
            raise ControlError(f"--until: {args.until!r} is not an RFC 3339 time")
        body["ends_at"] = args.until
    return str(request("POST", base, "/api/v1/silences", token, body)["id"])


def _ack(args: argparse.Namespace, base: str, token: str | None) -> str:
    rule = urllib.parse.quote(args.rule, safe="")
    body = {"key": args.key, "by": _who(args)}
    return str(request("POST", base, f"/api/v1/alerts/{rule}/ack", token, body)["text"])


def _snooze(args: argparse.Namespace, base: str, token: str | None) -> str:
    rule = urllib.parse.quote(args.rule, safe="")
    body = {"key": args.key, "duration": _duration(args.duration), "by": _who(args)}
    return str(request("POST", base, f"/api/v1/alerts/{rule}/snooze", token, body)["text"])


def _command(
    run: Callable[[argparse.Namespace, str, str | None], str],
) -> Callable[[argparse.Namespace, Base, Token], int]:
    def handler(args: argparse.Namespace, base: Base, token: Token) -> int:
        try:
            print(run(args, base(args), token(args)))
        except ControlError as exc:
            print(f"notifier: {exc}", file=sys.stderr)
            return 1
        return 0

    return handler


COMMANDS: dict[str, Callable[[argparse.Namespace, Base, Token], int]] = {
    "silence": _command(_silence),
    "ack": _command(_ack),
    "snooze": _command(_snooze),
}
