"""One pair's price history: rings of buckets at a few resolutions, O(1) amortised per quote.

A bucket keeps, for its slice of time, the price in force at its end (``last``), the lowest and
highest price in force during it (``low``, ``high``; the price carried in from before its first
quote counts) and the time integral of the price (``area``). Quotes go into the finest tier
(100 ms buckets, the last minute); each closed bucket is folded into the next tier up (1-second
buckets for the last hour; then tiers of 2,000 buckets of ``3.6 s · 2^k``, each reaching twice as
far as the one below), so the price ``D`` ago is known to 100 ms within a minute, to the second
within an hour and to ``D / 1000`` beyond. Memory per pair grows with the length of the history
(logarithmically past an hour), never with the quote rate.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["Bucket", "PairSeries", "Tier", "tier_layout"]

FINE_WIDTH = 0.1  # seconds: the finest tier, for windows up to a minute
FINE_SPAN = 60.0
SECOND_SPAN = 3600.0  # the 1-second tier: windows up to an hour
COARSE_BUCKETS = 2000  # a coarse tier serves windows from half its reach: 1/1000 of them


@dataclass(slots=True)
class Bucket:
    """A slice ``[index·width, (index+1)·width)`` of one tier."""

    index: int
    last: float
    low: float
    high: float
    area: float


def tier_layout(max_window: float) -> list[tuple[float, int]]:
    """(width, capacity) of each tier needed to answer windows up to ``max_window``."""
    layout = [(FINE_WIDTH, round(FINE_SPAN / FINE_WIDTH)), (1.0, round(SECOND_SPAN))]
    width = 2 * SECOND_SPAN / COARSE_BUCKETS
    while layout[-1][0] * layout[-1][1] < max_window:
        layout.append((width, COARSE_BUCKETS))
        width *= 2
    return layout


class Tier:
    """A ring of the last ``capacity`` closed buckets of one width, and the open one."""

    __slots__ = ("area", "capacity", "head", "high", "last", "low", "open", "span", "width")

    def __init__(self, width: float, capacity: int) -> None:
        self.width = width
        self.capacity = capacity
        self.span = width * capacity
        self.last = array("d")
        self.low = array("d")
        self.high = array("d")
        self.area = array("d")
        self.head = -1  # index of the newest closed bucket
        self.open: Bucket | None = None

    def index_of(self, at: float) -> int:
        return math.floor(at / self.width)

    def oldest(self) -> int:
        """Index of the oldest closed bucket kept (``head + 1`` while there is none)."""
        return self.head - len(self.last) + 1

    def get(self, index: int) -> Bucket | None:
        if index > self.head or index < self.oldest():
            return None
        slot = index % self.capacity
        return Bucket(index, self.last[slot], self.low[slot], self.high[slot], self.area[slot])

    def buckets(self, start: int, stop: int) -> Iterator[Bucket]:
        """Closed buckets with ``start <= index <= stop``, oldest first."""
        for index in range(max(start, self.oldest()), min(stop, self.head) + 1):
            found = self.get(index)
            if found is not None:
                yield found

    def allocate(self) -> None:
        """Make room for the whole ring at once; a slot never written holds NaN."""
        empty = array("d", [math.nan]) * self.capacity
        self.last, self.low, self.high, self.area = empty, empty[:], empty[:], empty[:]

    def push(self, bucket: Bucket) -> None:
        """Keep a closed bucket whose index is ``head + 1``, dropping the oldest when full."""
        if not len(self.last):
            self.head = bucket.index - 1
            self.allocate()
        slot = bucket.index % self.capacity
        self.last[slot], self.low[slot] = bucket.last, bucket.low
        self.high[slot], self.area[slot] = bucket.high, bucket.area
        self.head = bucket.index

    def filled(self) -> int:
        """How many of the kept buckets hold data (the ring fills from the first close)."""
        if not len(self.last):
            return 0
        return sum(1 for value in self.last if not math.isnan(value))


Listener = Callable[[Bucket], None]


class PairSeries:
    """Price history of one pair: ``record`` each quote, ``advance`` with the clock."""

    __slots__ = ("first_at", "last_at", "listeners", "price", "tiers")

    def __init__(self, max_window: float) -> None:
        self.tiers = [Tier(w, c) for w, c in tier_layout(max_window)]
        self.first_at: float | None = None  # the first quote ever recorded
        self.last_at = -math.inf  # the latest time recorded or advanced to
        self.price: float | None = None  # the price in force now
        self.listeners: list[list[Listener]] = [[] for _ in self.tiers]

    def listen(self, level: int, listener: Listener) -> Callable[[], None]:
        """Feed ``listener`` each bucket of tier ``level`` as it closes; returns the detach."""
        self.listeners[level].append(listener)
        return lambda: self.listeners[level].remove(listener)

    # -- writing ---------------------------------------------------------------------------

    def record(self, at: float, price: float) -> None:
        """A quote: ``price`` is in force from ``at`` (a time before the latest counts as it)."""
        fine = self.tiers[0]
        bucket = fine.open
        if bucket is None:
            self.first_at = self.last_at = at
            fine.open = Bucket(fine.index_of(at), price, price, price, 0.0)
            self.price = price
            return
        if at > self.last_at:
            if math.floor(at / FINE_WIDTH) != bucket.index:
                self.advance(at)
                bucket = fine.open
                assert bucket is not None
            else:
                bucket.area += bucket.last * (at - self.last_at)
                self.last_at = at
        bucket.last = price
        if price < bucket.low:
            bucket.low = price
        elif price > bucket.high:
            bucket.high = price
        self.price = price

    def advance(self, now: float) -> None:
        """Close every bucket that ended by ``now``; the price in force carries on."""
        fine = self.tiers[0]
        bucket = fine.open
        if bucket is None or now <= self.last_at:
            return
        index = math.floor(now / FINE_WIDTH)
        if index == bucket.index:
            bucket.area += bucket.last * (now - self.last_at)
            self.last_at = now
            return
        price = bucket.last
        bucket.area += price * ((bucket.index + 1) * FINE_WIDTH - self.last_at)
        self._close(0, bucket)
        self._constant(0, bucket.index + 1, index, price)
        fine.open = Bucket(index, price, price, price, price * (now - index * FINE_WIDTH))
        self.last_at = now

    def _close(self, level: int, bucket: Bucket) -> None:
        tier = self.tiers[level]
        tier.push(bucket)
        for listener in self.listeners[level]:
            listener(bucket)
        if level + 1 < len(self.tiers):
            self._fold(level + 1, bucket, tier.width)

    def _constant(self, level: int, start: int, stop: int, price: float) -> None:
        """Close buckets ``start … stop-1`` of ``level``, each with ``price`` throughout. Past a
        ring's worth, the older ones reach the tiers above as one stretch, not one by one."""
        if stop <= start:
            return
        tier = self.tiers[level]
        width = tier.width
        if stop - start > tier.capacity:
            skip_to = stop - tier.capacity
            if level + 1 < len(self.tiers):
                self._stretch(level + 1, start * width, skip_to * width, price)
            tier.head = skip_to - 1  # what the ring held is older than any window it serves
            start = skip_to
        area = price * width
        for index in range(start, stop):
            self._close(level, Bucket(index, price, price, price, area))

    def _stretch(self, level: int, begin: float, end: float, price: float) -> None:
        """``price`` was in force over ``[begin, end)``: merge it into ``level``'s buckets."""
        tier = self.tiers[level]
        width = tier.width
        first = math.floor(begin / width)
        last = max(first, math.ceil(end / width) - 1)
        self._merge(
            level,
            Bucket(first, price, price, price, price * (min(end, (first + 1) * width) - begin)),
        )
        if last > first:
            assert tier.open is not None
            self._close(level, tier.open)
            self._constant(level, first + 1, last, price)
            tier.open = Bucket(last, price, price, price, price * (end - last * width))

    def _fold(self, level: int, part: Bucket, part_width: float) -> None:
        """Merge a closed bucket of the tier below into ``level`` (by its midpoint)."""
        index = math.floor((part.index + 0.5) * part_width / self.tiers[level].width)
        self._merge(level, Bucket(index, part.last, part.low, part.high, part.area))

    def _merge(self, level: int, part: Bucket) -> None:
        tier = self.tiers[level]
        bucket = tier.open
        if bucket is None:
            tier.open = part
            return
        if part.index > bucket.index:
            self._close(level, bucket)
            self._constant(level, bucket.index + 1, part.index, bucket.last)
            part.low, part.high = min(part.low, bucket.last), max(part.high, bucket.last)
            tier.open = part
            return
        bucket.last = part.last
        bucket.low = min(bucket.low, part.low)
        bucket.high = max(bucket.high, part.high)
        bucket.area += part.area

    # -- reading ---------------------------------------------------------------------------

    def price_at(self, at: float) -> float | None:
        """The price in force at ``at``: the last quote at or before it, to the resolution of
        the finest tier that reaches that far; None before the first quote."""
        if self.first_at is None or at < self.first_at:
            return None
        if at >= self.last_at:
            return self.price
        age = self.last_at - at
        for tier in self.tiers:
            if age > tier.span:
                continue
            index = tier.index_of(at)
            bucket = tier.open
            if bucket is not None and index >= bucket.index:
                index = bucket.index
            before = tier.get(index - 1)  # in force at the start of ``at``'s bucket
            if before is not None and not math.isnan(before.last):
                return before.last
            if bucket is not None and index == bucket.index:
                return bucket.low if before is None else before.last
            found = tier.get(index)
            return None if found is None or math.isnan(found.last) else found.last
        return None

    def open_buckets(self, upto: int) -> Iterator[Bucket]:
        """The open buckets of tiers ``0 … upto``: what tier ``upto`` has not closed yet."""
        for tier in self.tiers[: upto + 1]:
            if tier.open is not None:
                yield tier.open

    def level_for(self, window: float) -> int:
        """The finest tier whose ring covers ``window``."""
        for level, tier in enumerate(self.tiers):
            if window <= tier.span:
                return level
        return len(self.tiers) - 1
