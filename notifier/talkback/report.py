"""The talkback part of ``notifier status`` and ``notifier silence list`` as text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["render_talkback", "silence_lines"]


def _c(value: object) -> str:
    """Text from the daemon as one table cell: no line breaks or control characters."""
    return " ".join("" if value is None else str(value).split())


def silence_lines(silences: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for s in silences:
        matchers = " ".join(f"{_c(k)}={_c(v)}" for k, v in (s.get("matchers") or {}).items())
        comment = f"  # {_c(s['comment'])}" if s.get("comment") else ""
        lines.append(
            f"{_c(s.get('id'))}  {matchers}  from {_c(s.get('starts_at'))} until "
            f"{_c(s.get('ends_at'))}  by {_c(s.get('created_by'))}{comment}"
        )
    return lines


def render_talkback(status: Mapping[str, Any]) -> list[str]:
    """The status report's SILENCES, ACKNOWLEDGED and SNOOZED lines (nothing from an older
    daemon)."""
    part = status.get("talkback")
    if not isinstance(part, Mapping):
        return []
    silences = part.get("silences") or []
    lines = ["", f"SILENCES: {len(silences)}" if silences else "SILENCES: none"]
    lines += ["  " + line for line in silence_lines(silences)]
    acked = part.get("acknowledged") or []
    if acked:
        lines += ["", f"ACKNOWLEDGED: {len(acked)}"]
        lines += [f"  {_c(a.get('rule'))} {_c(a.get('key'))}  by {_c(a.get('by'))}" for a in acked]
    snoozed = part.get("snoozed") or []
    if snoozed:
        lines += ["", f"SNOOZED: {len(snoozed)}"]
        lines += [
            f"  {_c(s.get('rule'))} {_c(s.get('key'))}  until {_c(s.get('until'))}  "
            f"by {_c(s.get('by'))}"
            for s in snoozed
        ]
    withheld = part.get("withheld") or {}
    if any(withheld.values()):
        lines += ["", f"WITHHELD: {withheld.get('silenced', 0)} silenced, "
                      f"{withheld.get('held', 0)} held for quiet hours"]  # fmt: skip
    return lines
