"""Sliding-window statistics of one pair: lowest, highest and time-weighted average price over
the last ``D``, each answered in O(1) amortised, never by rescanning the window.

A ``WindowStat`` listens to the closes of the finest tier that covers ``D`` and keeps monotonic
deques of their lows and highs and a running sum of their areas; a query adds the buckets not
closed into that tier yet (at most one per tier below it).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from notifier.history.series import Bucket, PairSeries

__all__ = ["WindowStat"]

RESUM_EVERY = 4096  # re-add the areas from scratch this often, so rounding cannot drift


class WindowStat:
    """min / max / average of ``series`` over its last ``window`` seconds."""

    __slots__ = (
        "_areas",
        "_detach",
        "_highs",
        "_lows",
        "_sum",
        "_updates",
        "level",
        "series",
        "width",
        "window",
    )

    def __init__(self, series: PairSeries, window: float) -> None:
        self.series = series
        self.window = window
        self.level = series.level_for(window)
        tier = series.tiers[self.level]
        self.width = tier.width
        self._lows: deque[tuple[int, float]] = deque()
        self._highs: deque[tuple[int, float]] = deque()
        self._areas: deque[tuple[int, float]] = deque()
        self._sum = 0.0
        self._updates = 0
        start = tier.head - math.ceil(window / tier.width)
        for bucket in tier.buckets(start, tier.head):
            if not math.isnan(bucket.last):
                self._push(bucket)
        self._detach: Callable[[], None] = series.listen(self.level, self._push)

    def close(self) -> None:
        """Stop listening: the rules that read this window are gone."""
        self._detach()

    def _push(self, bucket: Bucket) -> None:
        index = bucket.index
        lows, highs = self._lows, self._highs
        while lows and lows[-1][1] >= bucket.low:
            lows.pop()
        lows.append((index, bucket.low))
        while highs and highs[-1][1] <= bucket.high:
            highs.pop()
        highs.append((index, bucket.high))
        self._areas.append((index, bucket.area))
        self._sum += bucket.area
        self._expire(index - math.ceil(self.window / self.width))

    def _expire(self, before: int) -> None:
        """Drop closed buckets with an index below ``before``."""
        for column in (self._lows, self._highs):
            while column and column[0][0] < before:
                column.popleft()
        areas = self._areas
        while areas and areas[0][0] < before:
            self._sum -= areas.popleft()[1]
            self._updates += 1
        if self._updates >= RESUM_EVERY:
            self._sum, self._updates = math.fsum(a for _, a in areas), 0

    def _start(self, now: float) -> int:
        self.series.advance(now)
        start = math.floor((now - self.window) / self.width)
        self._expire(start)
        return start

    def low(self, now: float) -> float | None:
        """The lowest price in force during ``[now - window, now]``; None before any quote."""
        if self.series.price is None:
            return None
        self._start(now)
        found = self._lows[0][1] if self._lows else math.inf
        for bucket in self.series.open_buckets(self.level):
            found = min(found, bucket.low)
        return found

    def high(self, now: float) -> float | None:
        """The highest price in force during ``[now - window, now]``; None before any quote."""
        if self.series.price is None:
            return None
        self._start(now)
        found = self._highs[0][1] if self._highs else -math.inf
        for bucket in self.series.open_buckets(self.level):
            found = max(found, bucket.high)
        return found

    def average(self, now: float) -> float | None:
        """The time-weighted average over the part of ``[now - window, now]`` the history
        reaches; the price itself while it covers no time yet."""
        series = self.series
        if series.price is None or series.first_at is None:
            return None
        self._start(now)
        total = self._sum + sum(bucket.area for bucket in series.open_buckets(self.level))
        begin = self._areas[0][0] * self.width if self._areas else _open_begin(series, self.level)
        covered = now - max(begin, series.first_at)
        return series.price if covered <= 0 else total / covered


def _open_begin(series: PairSeries, level: int) -> float:
    """Where the oldest open bucket of tiers ``0 … level`` begins."""
    begin = math.inf
    for tier in series.tiers[: level + 1]:
        if tier.open is not None:
            begin = min(begin, tier.open.index * tier.width)
    return begin
