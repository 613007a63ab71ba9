"""The rate-limit stage: at most ``count`` messages per ``per`` seconds per tag.

A notification beyond a tag's budget is not dropped: it is folded into that tag's open
digest, one outbox row per tag and window that goes out when the budget frees up and lists
every held title. An untagged notification (every channel) uses the bucket ``all``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from notifier.config import RateLimitSettings
from notifier.dispatch.outbox import Outbox
from notifier.durations import format_duration

if TYPE_CHECKING:
    from notifier.notification import Severity

__all__ = ["ALL", "Decision", "RateLimiter", "render_digest"]

ALL = "all"
_RANK: dict[str, int] = {"info": 0, "success": 1, "warning": 2, "failure": 3}


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a notification may go now and what is held back."""

    route: tuple[str, ...]  # tags to send to now; () with bucket ``all`` = every channel
    buckets: tuple[str, ...]  # budgets this send uses; empty = nothing admitted
    held: dict[str, float] = field(default_factory=dict)  # bucket -> digest due time


class RateLimiter:
    """Decides per tag from the admissions recorded in the outbox (so limits survive restarts)."""

    def __init__(
        self,
        default: RateLimitSettings,
        overrides: Mapping[str, RateLimitSettings],
        outbox: Outbox,
    ) -> None:
        self._default = default
        self._overrides = dict(overrides)
        self._outbox = outbox

    def limit(self, bucket: str) -> RateLimitSettings:
        return self._overrides.get(bucket, self._default)

    @property
    def longest_window(self) -> float:
        return max([self._default.per, *(o.per for o in self._overrides.values())])

    def decide(self, tags: Sequence[str], now: float) -> Decision:
        admitted: list[str] = []
        held: dict[str, float] = {}
        for bucket in dict.fromkeys(tags) or (ALL,):
            limit = self.limit(bucket)
            count, oldest = self._outbox.sends_since(bucket, now - limit.per)
            if count < limit.count:
                admitted.append(bucket)
            else:
                # The digest goes when the oldest send in the window ages out.
                held[bucket] = (oldest if oldest is not None else now) + limit.per
        route = tuple(admitted) if tags else ()  # () routes to every channel
        return Decision(route=route, buckets=tuple(admitted), held=held)


def render_digest(
    bucket: str, items: Sequence[tuple[str, str, str, str]], limit: RateLimitSettings
) -> tuple[str, str, Severity]:
    """Title, body and severity of a digest: every held notification's title, one a line."""
    where = "every channel" if bucket == ALL else f"tag {bucket!r}"
    count = len(items)
    noun = "notification" if count == 1 else "notifications"
    title = f"{count} more {noun} for {where} (rate limit)"
    head = (
        f"More than {limit.count} messages in {format_duration(limit.per)} for {where}; "
        f"these were held and folded into this digest:"
    )
    lines = [head, *(f"- [{severity}] {title_} ({rule})" for _, rule, severity, title_ in items)]
    worst = max(
        (severity for _, _, severity, _ in items), key=lambda s: _RANK.get(s, 0), default="info"
    )
    return title, "\n".join(lines), _severity(worst)


def _severity(value: str) -> Severity:
    if value == "success":
        return "success"
    if value == "warning":
        return "warning"
    if value == "failure":
        return "failure"
    return "info"
