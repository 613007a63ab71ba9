"""``notifier status``'s report: the status document (``ctl.StatusDoc``) as aligned text."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from notifier.ha.render import ha_lines
from notifier.talkback.report import render_talkback
from notifier.timestamps import parse_iso

__all__ = ["render_status"]


def render_status(status: Mapping[str, Any], *, now: float | None = None) -> str:
    """The status document as a human-readable report for ``notifier status``."""
    clock = time.time() if now is None else now
    lines: list[str] = []

    feeds: Sequence[Mapping[str, Any]] = status.get("feeds") or []
    down = [str(f.get("name")) for f in feeds if not f.get("up")]
    readiness = "ready" if status.get("ready") else "NOT READY"
    if down:
        readiness += f" (down: {', '.join(down)})"
    uptime = _duration(status.get("uptime_s"))
    lines.append(f"notifier {status.get('version', '?')}, up {uptime}, {readiness}")
    lines += ha_lines(status.get("ha") or {})  # a member of an HA group (SPEC §11)

    lines += ["", "FEEDS"]
    rows = [
        [
            str(f.get("name", "?")),
            "up" if f.get("up") else "DOWN",
            str(f.get("connections", "")),
            str(f.get("reconnects", "")),
            _ago(f.get("last_event_at"), clock),
            str(f.get("detail") or ""),
        ]
        for f in feeds
    ]
    lines += _table(["NAME", "STATE", "CONN", "RECONNECTS", "LAST EVENT", "DETAIL"], rows)

    rules: Mapping[str, Any] = status.get("rules") or {}
    files: Sequence[Mapping[str, Any]] = rules.get("files") or []
    failing = [f for f in files if f.get("error_count")]
    summary = f"RULES: {rules.get('loaded', 0)} loaded from {len(files)} file(s)"
    lines += ["", summary + (f", {len(failing)} failing" if failing else "")]
    if rules.get("dir_error"):
        lines.append(f"  {_cell(rules['dir_error'])}: the rules loaded last keep running")
    for f in files:
        count = int(f.get("error_count") or 0)
        kept = "last good version kept" if f.get("loaded", True) else "not loaded"
        state = f"{count} error(s), {kept}" if count else "ok"
        running = f.get("rules") or 0
        running = len(running) if isinstance(running, list) else running
        lines.append(f"  {_cell(f.get('path'))}: {running} rule(s), {state}")
        errors: Sequence[Any] = f.get("errors") or []
        lines += [f"    {_cell(error)}" for error in errors]
        if count > len(errors):
            lines.append(f"    … and {count - len(errors)} more")

    lines += _alert_lines(status.get("alerts") or [], clock)

    lines += _pairs_lines(status.get("pairs") or [], clock)

    intents: Sequence[Mapping[str, Any]] | None = status.get("intents")
    if intents is not None:
        lines += ["", f"INTENTS: {len(intents)} tracked"]
        rows = [
            [_cell(i.get("id")), _cell(i.get("status") or "?"), _cell(i.get("label") or "")]
            for i in intents
        ]
        if rows:
            lines += _table(["ID", "STATUS", "LABEL"], rows)

    lines += render_talkback(status)

    outbox: Mapping[str, Any] = status.get("outbox") or {}
    lines += [
        "",
        "OUTBOX: {} pending, {} sent, {} failed, {} dead".format(
            *(outbox.get(k, 0) for k in ("pending", "sent", "failed", "dead"))
        ),
    ]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    # Text from the daemon may hold line breaks or control characters; a table cell must not.
    return " ".join("" if value is None else str(value).split())


def _value(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    if isinstance(value, Mapping):  # the daemon sends the alert's variables: price=201.5
        return " ".join(f"{_cell(k)}={_value(v)}" for k, v in value.items())
    return _cell(value)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    rows = [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]


def _moment(stamp: object) -> float | None:
    """Unix seconds from an RFC 3339 string (or a number, as older daemons sent)."""
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and math.isfinite(stamp):
        return float(stamp)
    return parse_iso(stamp)


def _alert_lines(alerts: Sequence[Mapping[str, Any]], clock: float) -> list[str]:
    """The FIRING (with why) and PENDING (with when it fires) sections."""
    firing = [a for a in alerts if a.get("state") != "pending"]
    pending = [a for a in alerts if a.get("state") == "pending"]
    lines = ["", f"FIRING: {len(firing)}" if firing else "FIRING: none"]
    if firing:
        rows = [
            [_cell(a.get("rule")), _cell(a.get("key")), _ago(a.get("since"), clock),
             _value(a.get("value")), _cell(a.get("why") or "")]
            for a in firing
        ]  # fmt: skip
        lines += _table(["RULE", "KEY", "SINCE", "VALUE", "WHY"], rows)
    lines += ["", f"PENDING: {len(pending)}" if pending else "PENDING: none"]
    if pending:
        rows = [
            [_cell(a.get("rule")), _cell(a.get("key")), _ago(a.get("since"), clock),
             _until(a.get("due"), clock), _value(a.get("value"))]
            for a in pending
        ]  # fmt: skip
        lines += _table(["RULE", "KEY", "SINCE", "FIRES", "VALUE"], rows)
    return lines


def _pairs_lines(pairs: Sequence[Mapping[str, Any]], clock: float) -> list[str]:
    """The PAIRS section: every pair watched or read, its price and how far back it reaches."""
    if not pairs:
        return []
    rows = [
        [_cell(p.get("pair")), _value(p.get("price")), _ago(p.get("history_since"), clock),
         _cell(", ".join(p.get("windows") or []) or "-")]
        for p in pairs
    ]  # fmt: skip
    return [
        "",
        f"PAIRS: {len(pairs)} watched",
        *_table(["PAIR", "PRICE", "HISTORY", "WINDOWS"], rows),
    ]


def _until(stamp: object, now: float) -> str:
    """When a pending alert fires: ``in 25s``, or ``due`` once its time has come."""
    moment = _moment(stamp)
    if moment is None:
        return "?"
    return f"in {_duration(moment - now)}" if moment > now else "due"


def _ago(stamp: object, now: float) -> str:
    moment = _moment(stamp)
    if moment is None:
        return _cell(stamp) if isinstance(stamp, str) and stamp else "never"
    return f"{_duration(now - moment)} ago"


def _duration(seconds: object) -> str:
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return "?"
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
