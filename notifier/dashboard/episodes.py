"""Recent firing episodes per (rule, key), kept in memory for the dashboard's charts.

The engine calls ``record`` on each transition into and out of firing (rare next to quotes, so
the hot path does not pay); ``reconcile`` closes episodes whose state went away without a
resolve (a reload that changed the rule) and opens those restored from the store at start-up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_EPISODES", "Episode", "EpisodeLog"]

MAX_EPISODES = 50  # per (rule, key): enough to shade a week of a flapping alert's chart


@dataclass(slots=True)
class Episode:
    start: float
    end: float | None = None  # None while it fires


class EpisodeLog:
    """Bounded episodes per (rule id, key), oldest first; at most one open per key."""

    def __init__(self, limit: int = MAX_EPISODES) -> None:
        self._limit = limit
        self._episodes: dict[tuple[str, str], deque[Episode]] = {}
        self.changes = 0  # bumped on every start and end: what the live page compares

    def record(self, rule_id: str, key: str, transition: str, at: float) -> None:
        """``firing`` opens an episode at ``at``; ``resolved`` closes the open one."""
        if transition == "firing":
            self._open(rule_id, key, at)
        elif transition == "resolved":
            self._close(rule_id, key, at)

    def _open(self, rule_id: str, key: str, at: float) -> None:
        ring = self._episodes.setdefault((rule_id, key), deque(maxlen=self._limit))
        if ring and ring[-1].end is None:
            return
        ring.append(Episode(at))
        self.changes += 1

    def _close(self, rule_id: str, key: str, at: float) -> None:
        ring = self._episodes.get((rule_id, key))
        if ring and ring[-1].end is None:
            ring[-1].end = at
            self.changes += 1

    def reconcile(self, alerts: Iterable[Mapping[str, Any]], now: float) -> None:
        """Firing alerts without an open episode get one from their ``since``; open episodes
        whose alert no longer fires end ``now``."""
        firing = {
            (a["rule"], a["key"]): float(a["since"] or now)
            for a in alerts
            if a.get("state") == "firing"
        }
        for pair, since in firing.items():
            self._open(*pair, since)
        for (rule_id, key), ring in self._episodes.items():
            if ring[-1].end is None and (rule_id, key) not in firing:
                self._close(rule_id, key, now)

    def of(self, rule_id: str, key: str, since: float) -> list[Episode]:
        """The episodes of one alert that overlap ``[since, now]``."""
        ring = self._episodes.get((rule_id, key), ())
        return [e for e in ring if e.end is None or e.end >= since]

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the episodes of rules no longer loaded."""
        wanted = set(keep)
        for pair in [p for p in self._episodes if p[0] not in wanted]:
            del self._episodes[pair]
