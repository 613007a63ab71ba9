"""Delivery lanes: each channel sends on its own, so a slow or dead one delays only itself.

A lane has its own worker threads, at most ``delivery.concurrency`` calls running (a call
past its timeout still counts until apprise returns, so a dead channel cannot pile up
threads or sends), and its own backoff: after a failure it starts nothing until a
full-jitter pause is over, and a success ends the pause.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from notifier.backoff import full_jitter
from notifier.dispatch.pool import SendPool
from notifier.dispatch.retry import BACKOFF_BASE

__all__ = ["Lane", "Lanes"]

log = logging.getLogger("notifier.dispatch")


@dataclass(eq=False)
class Lane:
    """One channel's lane; ``label`` is its privacy URL, for log lines."""

    label: str
    concurrency: int
    pool: SendPool
    running: set[int] = field(default_factory=set)  # rows whose call has not returned yet
    failures: int = 0  # consecutive failed or timed-out sends
    paused_until: float = 0.0

    def free(self, now: float) -> bool:
        """Room for another send, and not backing off."""
        return len(self.running) < self.concurrency and now >= self.paused_until


class Lanes:
    """The lanes of the channels, by channel key; a lane outlives config reloads."""

    def __init__(
        self, concurrency: int, backoff_cap: float, rng: Callable[[], float] = random.random
    ) -> None:
        self._concurrency = concurrency
        self._cap = backoff_cap
        self._rng = rng
        self._lanes: dict[str, Lane] = {}

    def get(self, key: str, label: str) -> Lane:
        lane = self._lanes.get(key)
        if lane is None:
            pool = SendPool(keep=self._concurrency, name="notifier-send")
            lane = self._lanes[key] = Lane(label, self._concurrency, pool)
        return lane

    def succeeded(self, lane: Lane) -> None:
        if lane.failures:
            log.info("channel %s delivers again after %d failure(s)", lane.label, lane.failures)
        lane.failures = 0
        lane.paused_until = 0.0

    def failed(self, lane: Lane, now: float, error: str) -> None:
        """Pause the lane; said once when a channel starts failing, not per send."""
        if not lane.failures:
            log.warning("channel %s is failing; its lane backs off: %s", lane.label, error)
        pause = full_jitter(lane.failures, base=BACKOFF_BASE, cap=self._cap, rng=self._rng)
        lane.failures += 1
        lane.paused_until = max(lane.paused_until, now + pause)

    def keep_only(self, keys: Iterable[str]) -> None:
        """Close the idle lanes of channels a reload removed."""
        wanted = set(keys)
        for key in [k for k, lane in self._lanes.items() if k not in wanted and not lane.running]:
            self._lanes.pop(key).pool.close()

    def close(self) -> None:
        for lane in self._lanes.values():
            lane.pool.close()
