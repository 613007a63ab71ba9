"""The HA part of ``notifier status``: this member's role and every member of the group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ha_lines"]


def ha_lines(ha: Mapping[str, Any]) -> list[str]:
    """Lines for the status report: the role, the lease, then one row per member; none
    without HA."""
    if not ha:
        return []
    age = ha.get("lease_age_s")
    epoch = f", epoch {ha['epoch']}" if ha.get("epoch") is not None else ""
    lease = f", lease renewed {age:.1f}s ago" if isinstance(age, int | float) and age >= 0 else ""
    lines = [
        "",
        f"HA: {str(ha.get('role', '?')).upper()}{epoch}{lease}; takeover within "
        f"{ha.get('takeover_s')}s; store {ha.get('store')}",
    ]
    if ha.get("store_problem"):
        lines.append(f"  store problem: {ha['store_problem']}")
    members: Sequence[Mapping[str, Any]] = ha.get("members") or []
    rows = [
        [
            str(m.get("member", "?")) + (" (this)" if m.get("member") == ha.get("member") else ""),
            str(m.get("role", "?")),
            f"{m.get('host', '?')}:{m.get('pid', '?')}",
            str(m.get("url") or ""),
            f"{m.get('seen_s_ago', '?')}s ago",
            str(m.get("reason") or ""),
        ]
        for m in members
    ]
    headers = ["MEMBER", "ROLE", "HOST:PID", "HTTP", "SEEN", "WHY"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        cells = (c.ljust(w) for c, w in zip(row, widths, strict=True))
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines
