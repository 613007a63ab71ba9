"""The rate-limit stage: at most ``count`` messages per ``per`` seconds per tag.

A notification beyond a tag's budget is not dropped: it is folded into that tag's open
digest (``digest.py``), one outbox row per tag and window that goes out when the budget frees
up and lists every held title. An untagged notification (every channel) uses the bucket ``all``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from notifier.config import RateLimitSettings
from notifier.dispatch.outbox import Outbox
from notifier.metrics import Metrics

__all__ = ["ALL", "Admission", "Admit", "Decision", "RateLimiter"]

log = logging.getLogger("notifier.dispatch")

ALL = "all"

# ``Admission.admit``, as the stages that write rows take it.
Admit = Callable[[int, str, tuple[str, ...], float], tuple[str, ...] | None]


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


class Admission:
    """The rate-limit stage as delivery runs it: decide, record the decision on the row,
    count what a digest holds back."""

    def __init__(self, limiter: RateLimiter, outbox: Outbox, metrics: Metrics) -> None:
        self._limiter = limiter
        self._outbox = outbox
        self._metrics = metrics

    def admit(
        self, row_id: int, title: str, tags: tuple[str, ...], now: float
    ) -> tuple[str, ...] | None:
        """In the caller's transaction: the tags the row may be sent to now, or None when
        every bucket held it for a digest."""
        decision = self._limiter.decide(tags, now)
        admitted = self._outbox.route(row_id, decision.route, decision.buckets, decision.held, now)
        if decision.held:
            self._metrics.notifications.labels("digested").inc()
            log.info("rate limit: %r held for %s digest", title, ", ".join(decision.held))
        return decision.route if admitted else None
