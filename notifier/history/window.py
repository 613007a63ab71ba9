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

from notifier.history.series import Bucket, PairSeries, data_begin

__all__ = ["WindowStat"]

RESUM_EVERY = 4096  # re-add the areas from scratch this often, so rounding cannot drift


class WindowStat:
    """min / max / average of ``series`` over its last ``window`` seconds.

    Windows up to an hour listen to the closes of the finest tier that reaches them (100 ms
    or 1 s buckets); longer ones fold the 1-second closes into buckets of ``window / 1000`` or
    finer (the width of the coarse tier that serves them), so a deque never holds more than
    a few thousand entries.
    """

    __slots__ = (
        "_areas",
        "_detach",
        "_highs",
        "_lows",
        "_pending",
        "_pending_begin",
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
        level = series.level_for(window)
        self.width = series.tiers[level].width
        self.level = min(level, 1)  # the tier whose closes feed it
        self._lows: deque[tuple[int, float]] = deque()
        self._highs: deque[tuple[int, float]] = deque()
        # (index, area, where its data begins): a long window's bucket folds whole finer
        # buckets by their start, so its data may begin after the bucket does.
        self._areas: deque[tuple[int, float, float]] = deque()
        self._sum = 0.0
        self._updates = 0
        self._pending: Bucket | None = None  # a long window's bucket being folded
        self._pending_begin = 0.0  # where the first bucket folded into it begins
        self._backfill(level)
        feed = self._push if level <= 1 else self._fold
        self._detach: Callable[[], None] = series.listen(self.level, feed)

    def _backfill(self, level: int) -> None:
        """What the history already holds of the window, oldest first."""
        series = self.series
        if level <= 1:
            tier = series.tiers[level]
            start = tier.head - math.ceil(self.window / tier.width)
            for bucket in tier.buckets(start, tier.head):
                self._push(bucket)
            return
        newest = series.tiers[1].head + 1  # seconds: where the 1-second ring ends
        for bucket, width in series.retained():
            if (bucket.index + 1) * width > newest - self.window - self.width:
                self._fold(bucket, width)

    def _fold(self, bucket: Bucket, width: float = 1.0) -> None:
        """Merge a finer bucket into this window's own, pushing the previous one when done."""
        # By its start, so the window's bucket begins no later than anything in it (the
        # average divides by the time from there).
        index = math.floor((bucket.index + 1e-6) * width / self.width)
        pending = self._pending
        if pending is not None and pending.index == index:
            pending.last = bucket.last
            pending.low = min(pending.low, bucket.low)
            pending.high = max(pending.high, bucket.high)
            pending.area += bucket.area
            return
        if pending is not None:
            self._push(pending, self._pending_begin)
        self._pending = Bucket(index, bucket.last, bucket.low, bucket.high, bucket.area)
        self._pending_begin = data_begin(bucket.index, width)

    def _open(self) -> list[Bucket]:
        """What is not in the deques yet: the bucket being folded and the open buckets."""
        tiers = self.series.tiers
        found = [t.open for t in tiers[: self.level + 1] if t.open is not None]
        if self._pending is not None:
            found.append(self._pending)
        return found

    def close(self) -> None:
        """Stop listening: the rules that read this window are gone."""
        self._detach()

    def _push(self, bucket: Bucket, begin: float | None = None) -> None:
        index = bucket.index
        lows, highs = self._lows, self._highs
        while lows and lows[-1][1] >= bucket.low:
            lows.pop()
        lows.append((index, bucket.low))
        while highs and highs[-1][1] <= bucket.high:
            highs.pop()
        highs.append((index, bucket.high))
        self._areas.append((index, bucket.area, index * self.width if begin is None else begin))
        self._sum += bucket.area
        self._expire(index - math.ceil(self.window / self.width))

    def _expire(self, before: int) -> None:
        """Drop closed buckets with an index below ``before``."""
        areas = self._areas
        if not areas or areas[0][0] >= before:
            return  # the oldest kept bucket is still inside: so is everything else
        for column in (self._lows, self._highs):
            while column and column[0][0] < before:
                column.popleft()
        while areas and areas[0][0] < before:
            self._sum -= areas.popleft()[1]
            self._updates += 1
        if self._updates >= RESUM_EVERY:
            self._sum, self._updates = math.fsum(a for _, a, _ in areas), 0

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
        for bucket in self._open():
            found = min(found, bucket.low)
        return found

    def high(self, now: float) -> float | None:
        """The highest price in force during ``[now - window, now]``; None before any quote."""
        if self.series.price is None:
            return None
        self._start(now)
        found = self._highs[0][1] if self._highs else -math.inf
        for bucket in self._open():
            found = max(found, bucket.high)
        return found

    def average(self, now: float) -> float | None:
        """The time-weighted average over the part of ``[now - window, now]`` the history
        reaches; the price itself while it covers no time yet."""
        series = self.series
        if series.price is None or series.first_at is None:
            return None
        self._start(now)
        total = self._sum + sum(bucket.area for bucket in self._open())
        if self._areas:
            begin = self._areas[0][2]
        elif self._pending is not None:
            begin = self._pending_begin
        else:
            begin = _open_begin(series, self.level)
        covered = now - max(begin, series.first_at)
        return series.price if covered <= 0 else total / covered


def _open_begin(series: PairSeries, level: int) -> float:
    """Where the oldest open bucket of tiers ``0 … level`` begins."""
    begin = math.inf
    for tier in series.tiers[: level + 1]:
        if tier.open is not None:
            begin = min(begin, tier.open.index * tier.width)
    return begin
