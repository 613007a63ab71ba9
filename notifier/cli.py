"""The ``notifier`` command: argument parsing, signals and exit codes live here only."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from notifier import __version__
from notifier.config import ConfigError, Settings, load_settings
from notifier.talkback.commands import COMMANDS as TALKBACK
from notifier.talkback.commands import add_parsers as talkback_parsers

__all__ = ["EX_CONFIG", "EX_USAGE", "main"]

EX_OK = 0
EX_ERRORS = 1
EX_USAGE = 2
EX_CONFIG = 78

log = logging.getLogger("notifier")


def _counts(text: str) -> list[int]:
    """``1000,100000`` (``_`` allowed in numbers) as a list of positive counts."""
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("expected counts such as 1000,10000,100000")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notifier",
        description="Alert daemon for 1inch Fusion orders, Argyros quotes and Changelly intents.",
    )
    parser.add_argument("--version", action="version", version=f"notifier {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("-c", "--config", type=Path, help="TOML config file")

    p = sub.add_parser("run", help="run the daemon (what the systemd unit starts)")
    config_arg(p)
    p.add_argument("--record", type=Path, help="append every event to this JSON-lines file")

    p = sub.add_parser("check", help="validate config, apprise config and rule files")
    config_arg(p)
    p.add_argument("paths", nargs="*", type=Path, help="rule files or dirs (default: rules_dir)")

    p = sub.add_parser("demo", help="simulator + daemon + example rules, printed to the terminal")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--rules", type=Path, default=None, help="rules dir (default: ./rules)")

    p = sub.add_parser("simulate", help="serve the simulated upstreams on one port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9320)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--random-orders", action="store_true", help="a flow of other makers' orders")

    p = sub.add_parser("notify-test", help="send a test notification through every channel")
    config_arg(p)
    p.add_argument("--tag", default=None, help="only channels with this tag")

    p = sub.add_parser("replay", help="evaluate rules against recorded events (dry run)")
    p.add_argument("events", type=Path, help="JSON-lines file of events")
    config_arg(p)
    p.add_argument("--rules", type=Path, default=None, help="rules dir (default: rules_dir)")

    for name, text in (("status", "show the running daemon's feeds, rules and alerts"),):
        p = sub.add_parser(name, help=text)
        config_arg(p)
        p.add_argument("--json", action="store_true", help="print the raw JSON")
        p.add_argument("--url", default=None, help="daemon HTTP address (default: http.listen)")

    p = sub.add_parser("track", help="poll an intent, through the running daemon")
    config_arg(p)
    p.add_argument("intent_id")
    p.add_argument("--label", default=None)
    p.add_argument("--url", default=None)

    p = sub.add_parser("untrack", help="stop polling an intent, through the running daemon")
    config_arg(p)
    p.add_argument("intent_id")
    p.add_argument("--url", default=None)

    talkback_parsers(sub, config_arg)

    p = sub.add_parser("bench", help="measure throughput, latency, reload, memory, start-up")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    p.add_argument("--store", default=None, help="a postgresql:// URL to measure beside SQLite")
    p.add_argument("--rules", type=_counts, help="cost curve of these rule counts: 1000,100000")
    p.add_argument("--plot", type=Path, help="with --rules: draw the curve to this PNG")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command.replace("-", "_")
    try:
        if command in TALKBACK:
            return TALKBACK[command](args, _base_url, _token)
        return int(globals()[f"_cmd_{command}"](args))
    except KeyboardInterrupt:
        return 130


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    return load_settings(getattr(args, "config", None), **overrides)


def _install_signals(stop: asyncio.Event, reload: object | None = None) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, reload)  # type: ignore[arg-type]


# -- run ---------------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from notifier.logs import register_secret, setup_logging

    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EX_CONFIG
    for secret in (
        settings.fusion.api_key,
        settings.quotes.api_key,
        settings.intents.api_key,
        settings.http.token,
        settings.telegram.bot_token,
    ):
        register_secret(secret.get_secret_value())
    try:
        setup_logging(settings.log_level)
    except ValueError as exc:
        print(f"notifier: log_level: {exc}", file=sys.stderr)
        return EX_CONFIG
    return asyncio.run(_run(settings, args.record))


async def _run(settings: Settings, record: Path | None) -> int:
    from notifier.daemon import Daemon, StartupError

    if settings.store != "sqlite":  # PostgreSQL: a member of an HA group (SPEC §11)
        from notifier.ha.group import run_group

        return await run_group(settings, record, _install_signals, _refusal, _stop_grace())

    try:
        daemon = Daemon(settings, record=record)
    except OSError as exc:  # the --record file
        _refusal(f"{record}: cannot open the event record: {exc.strerror or exc}")
        return EX_CONFIG
    stop = asyncio.Event()
    _install_signals(stop, daemon.request_reload)
    try:
        await daemon.startup()
    except StartupError as exc:
        await daemon.shutdown(grace=1.0)
        _refusal(str(exc))
        return EX_ERRORS if exc.retryable else EX_CONFIG
    try:
        await daemon.run(stop)
    finally:
        await daemon.shutdown(grace=_stop_grace())
    return EX_OK


def _refusal(message: str) -> None:
    """A start-up refusal: one line ``notifier: <path>: <what is wrong>`` on stderr, filed as
    an error by journald, with configured secrets redacted as in the log."""
    from notifier.logs import journal_attached, redact

    priority = "<3>" if journal_attached(sys.stderr) else ""
    print(f"{priority}notifier: {redact(message)}", file=sys.stderr, flush=True)


def _stop_grace() -> float:
    """Drain within systemd's stop timeout (``TimeoutStopSec``), leaving a margin."""
    usec = os.environ.get("TIMEOUT_STOP_USEC")  # not set by systemd today; honoured if present
    return max(1.0, int(usec) / 1e6 - 2.0) if usec and usec.isdigit() else 10.0


# -- check -------------------------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace) -> int:
    from notifier.config import resolve_config_path
    from notifier.listen import parse_listen
    from notifier.rules import check_files
    from notifier.rules.loader import list_rule_files

    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"{exc}")
        return EX_ERRORS
    problems: list[str] = []
    if settings.http.listen.strip():  # what `run` would refuse with exit 78
        try:
            parse_listen(settings.http.listen)
        except ConfigError as exc:
            where = resolve_config_path(args.config)
            problems.append(f"{where}: {exc}" if where else str(exc))
    if not args.paths:  # only then: importing apprise costs ~0.3 s
        from notifier.dispatch.probe import check_apprise_config

        problems += [f"{settings.apprise_config}: {e}" for e in check_apprise_config(settings)]
    targets = args.paths or [settings.rules_dir]
    files: list[Path] = []
    missing: list[Path] = []
    for target in targets:
        if target.is_dir():
            files += list_rule_files(target)
        elif target.exists():
            files.append(target)
        else:
            missing.append(target)
    config_problems = len(problems)  # http.listen and the apprise config, counted apart
    problems += [f"{target}: no such file or directory" for target in missing]
    errors = check_files(
        files, settings.token_table(), settings.rules_max_bytes, settings.history.max_window
    )
    problems += [str(e) for e in errors]
    for line in problems:
        print(line)
    rule_problems = len(problems) - config_problems
    print(
        f"checked {len(files)} rule file(s): "
        + (f"{rule_problems} error(s)" if rule_problems else "ok")
        + (f"; config: {config_problems} error(s)" if config_problems else ""),
        file=sys.stderr,
    )
    return EX_ERRORS if problems else EX_OK


# -- demo / simulate ---------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from notifier.demo import run_demo
    from notifier.logs import setup_logging

    setup_logging(os.environ.get("NOTIFIER_LOG_LEVEL", "WARNING"))
    return asyncio.run(run_demo(duration=args.duration, rules=args.rules))


def _cmd_simulate(args: argparse.Namespace) -> int:
    from notifier.logs import setup_logging
    from notifier.simulator import serve

    setup_logging("INFO")

    async def go() -> None:
        stop = asyncio.Event()
        _install_signals(stop)
        await serve(args.host, args.port, stop=stop, seed=args.seed,
                    random_orders=args.random_orders)  # fmt: skip

    asyncio.run(go())
    return EX_OK


# -- notify-test / replay ----------------------------------------------------------------------


def _cmd_notify_test(args: argparse.Namespace) -> int:
    from notifier.telegram.probe import notify_test

    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EX_CONFIG
    results = asyncio.run(notify_test(settings, args.tag))
    if not results:
        print(f"no channel configured in {settings.apprise_config}"
              + (f" with tag {args.tag!r}" if args.tag else ""))  # fmt: skip
        return EX_ERRORS
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        tags = ",".join(result.tags) or "-"
        print(f"{mark} {result.url}  tags={tags}" + (f"  {result.error}" if result.error else ""))
    return EX_OK if all(r.ok for r in results) else EX_ERRORS


def _cmd_replay(args: argparse.Namespace) -> int:
    from notifier.replay import ReplayError, replay

    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EX_CONFIG
    try:
        return replay(args.events, args.rules or settings.rules_dir, settings, sys.stdout)
    except ReplayError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EX_ERRORS


# -- control -----------------------------------------------------------------------------------


def _base_url(args: argparse.Namespace) -> str:
    from notifier.ctl import client_url

    if args.url:
        return str(args.url)
    try:
        settings = _settings(args)
    except ConfigError:
        settings = Settings()
    return client_url(settings.http.listen)


def _token(args: argparse.Namespace) -> str | None:
    """``http.token``, else the token the daemon created in the state directory."""
    from notifier.talkback.apitoken import read_token

    with contextlib.suppress(ConfigError):
        settings = _settings(args)
        return settings.http.token.get_secret_value() or read_token(settings.effective_state_dir)
    return None


def _cmd_status(args: argparse.Namespace) -> int:
    import orjson

    from notifier.ctl import ControlError, fetch_status
    from notifier.statusreport import render_status

    try:
        status = fetch_status(_base_url(args), _token(args))
    except ControlError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EX_ERRORS
    if args.json:
        print(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode())
    else:
        sys.stdout.write(render_status(status))  # it ends with its own newline
    return EX_OK


def _cmd_track(args: argparse.Namespace) -> int:
    from notifier.ctl import ControlError, track

    try:
        print(track(_base_url(args), args.intent_id, args.label, _token(args)))
    except ControlError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EX_ERRORS
    return EX_OK


def _cmd_untrack(args: argparse.Namespace) -> int:
    from notifier.ctl import ControlError, untrack

    try:
        print(untrack(_base_url(args), args.intent_id, _token(args)))
    except ControlError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EX_ERRORS
    return EX_OK


def _cmd_bench(args: argparse.Namespace) -> int:
    from notifier.bench import run_bench

    return asyncio.run(run_bench(args.json, args.quick, args.rules, args.plot, args.store))
