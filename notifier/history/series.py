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

__all__ = ["Bucket", "PairSeries", "Tier", "bucket_end", "data_begin", "tier_layout"]

FINE_WIDTH = 0.1  # seconds: the finest tier, for windows up to a minute
FINE_SPAN = 60.0
SECOND_SPAN = 3600.0  # the 1-second tier: windows up to an hour
COARSE_BUCKETS = 1000  # per coarse tier: 1/1000 of the shortest window it serves


@dataclass(slots=True)
class Bucket:
    """A slice ``[index·width, (index+1)·width)`` of one tier."""

    index: int
    last: float
    low: float
    high: float
    area: float


def tier_layout(max_window: float) -> list[tuple[float, int, float]]:
    """(width, capacity, reach) of each tier needed to answer windows up to ``max_window``;
    ``reach`` is the oldest age the tier holds."""
    layout = [(FINE_WIDTH, round(FINE_SPAN / FINE_WIDTH), FINE_SPAN), (1.0, 3600, SECOND_SPAN)]
    width = SECOND_SPAN / COARSE_BUCKETS
    while layout[-1][2] < max_window:
        layout.append((width, COARSE_BUCKETS, layout[-1][2] + width * COARSE_BUCKETS))
        width *= 2
    return layout


class Tier:
    """A ring of up to ``capacity`` closed buckets of one width (grown as they come), and the
    open one. ``base`` is the index whose bucket sits in slot 0."""

    __slots__ = (
        "area",
        "base",
        "capacity",
        "head",
        "high",
        "last",
        "low",
        "open",
        "reach",
        "width",
    )

    def __init__(self, width: float, capacity: int, reach: float) -> None:
        self.width = width
        self.capacity = capacity
        self.reach = reach
        self.last = array("d")
        self.low = array("d")
        self.high = array("d")
        self.area = array("d")
        self.base = 0
        self.head = -1  # index of the newest closed bucket
        self.open: Bucket | None = None

    def index_of(self, at: float) -> int:
        return math.floor(at / self.width)

    def oldest(self) -> int:
        """Index of the oldest closed bucket kept (``head + 1`` while there is none)."""
        return self.head - len(self.last) + 1

    def slot(self, index: int) -> int:
        return (index - self.base) % self.capacity

    def get(self, index: int) -> Bucket | None:
        if index > self.head or index < self.oldest():
            return None
        slot = self.slot(index)
        return Bucket(index, self.last[slot], self.low[slot], self.high[slot], self.area[slot])

    def buckets(self, start: int, stop: int) -> Iterator[Bucket]:
        """Closed buckets with ``start <= index <= stop``, oldest first."""
        for index in range(max(start, self.oldest()), min(stop, self.head) + 1):
            found = self.get(index)
            if found is not None:
                yield found

    def push(self, bucket: Bucket, *, evict: bool = True) -> Bucket | None:
        """Keep a closed bucket whose index is ``head + 1``; return the one it pushes out
        (when ``evict``: nothing else wants it)."""
        if not len(self.last):
            self.base = bucket.index
        elif len(self.last) < self.capacity:
            pass
        else:
            evicted = self.get(self.oldest()) if evict else None
            slot = self.slot(bucket.index)
            self.last[slot], self.low[slot] = bucket.last, bucket.low
            self.high[slot], self.area[slot] = bucket.high, bucket.area
            self.head = bucket.index
            return evicted
        self.last.append(bucket.last)
        self.low.append(bucket.low)
        self.high.append(bucket.high)
        self.area.append(bucket.area)
        self.head = bucket.index
        return None

    def clear(self, head: int) -> None:
        """Forget every closed bucket; the next one pushed is ``head + 1``."""
        for column in (self.last, self.low, self.high, self.area):
            del column[:]
        self.head = head


def data_begin(index: int, width: float) -> float:
    """Where the data of bucket ``index`` of a tier ``width`` wide begins. Up to a second it
    is the bucket's own start; a coarse bucket holds the whole seconds whose midpoints fall in
    it (``PairSeries._fold``), so its data begins at the first of them."""
    return index * width if width <= 1.0 else _whole_second(index * width)


def _whole_second(at: float) -> float:
    """The second whose midpoint is the first at or after ``at``: where a coarse tier's data
    starts or ends for a nominal time ``at`` (a bucket's start)."""
    return float(math.ceil(at - 0.5))


def bucket_end(index: int, width: float) -> float:
    """The least time ``at`` with ``floor(at / width) > index``: where bucket ``index`` ends
    as the division sees it (the division rounds, so not always ``(index + 1) * width``)."""
    at = (index + 1) * width
    while math.floor(at / width) > index:
        at = math.nextafter(at, -math.inf)
    while math.floor(at / width) <= index:
        at = math.nextafter(at, math.inf)
    return at


Listener = Callable[[Bucket], None]


class PairSeries:
    """Price history of one pair: ``record`` each quote, ``advance`` with the clock."""

    __slots__ = (
        "_fine_end",
        "_fine_open",
        "first_at",
        "first_price",
        "last_at",
        "listeners",
        "price",
        "tiers",
    )

    def __init__(self, max_window: float) -> None:
        self.tiers = [Tier(w, c, r) for w, c, r in tier_layout(max_window)]
        self.first_at: float | None = None  # the first quote ever recorded
        self.first_price: float | None = None
        self.last_at = -math.inf  # the latest time recorded or advanced to
        self.price: float | None = None  # the price in force now
        self.listeners: list[list[Listener]] = [[] for _ in self.tiers]
        # The finest tier's open bucket as ``record`` last saw it, and the first time past its
        # end: while both hold, a quote needs no division to know it is in that bucket.
        self._fine_open: Bucket | None = None
        self._fine_end = -math.inf

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
            self.first_price = price
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
            if bucket is not self._fine_open:  # for ``recorder``'s hot case
                self._fine_open, self._fine_end = bucket, bucket_end(bucket.index, FINE_WIDTH)
        bucket.last = price
        if price < bucket.low:
            bucket.low = price
        elif price > bucket.high:
            bucket.high = price
        self.price = price

    def recorder(self, pricer: Callable[[int], float | None]) -> Callable[[float, int], None]:
        """``record`` of a quote's output amount priced by ``pricer``, as one call, with its
        hot case inlined: a later quote inside the open 100 ms bucket, known to be inside by
        comparing with the bucket's end instead of dividing."""
        fine, record = self.tiers[0], self.record

        def record_quote(at: float, amount_out: int) -> None:
            price = pricer(amount_out)
            if price is None:
                return
            bucket = fine.open
            if bucket is not self._fine_open or not self.last_at < at < self._fine_end:
                record(at, price)
                return
            assert bucket is not None  # ``_fine_open`` is never None once set
            bucket.area += bucket.last * (at - self.last_at)
            self.last_at = at
            bucket.last = price
            if price < bucket.low:
                bucket.low = price
            elif price > bucket.high:
                bucket.high = price
            self.price = price

        return record_quote

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
        """Keep a closed bucket. The 1-second tier is fed every closed 100 ms bucket; each
        coarser tier, the buckets the one below it pushes out (so it holds older ages)."""
        tier = self.tiers[level]
        evicted = tier.push(bucket, evict=level > 0)
        for listener in self.listeners[level]:
            listener(bucket)
        if level == 0:
            self._fold_fine(bucket)
        elif evicted is not None and level + 1 < len(self.tiers):
            self._fold(level + 1, evicted, tier.width)

    def _constant(self, level: int, start: int, stop: int, price: float) -> None:
        """Close buckets ``start … stop-1`` of ``level``, each with ``price`` throughout. Past a
        ring's worth, what the ring held and the older part of the stretch go up at once."""
        if stop <= start:
            return
        tier = self.tiers[level]
        width = tier.width
        if stop - start > tier.capacity:
            skip_to = stop - tier.capacity
            if level + 1 < len(self.tiers):
                if level > 0:  # the tier above holds what this one pushes out: all of it
                    for kept in list(tier.buckets(tier.oldest(), tier.head)):
                        self._fold(level + 1, kept, width)
                self._stretch(level + 1, start * width, skip_to * width, price)
            tier.clear(skip_to - 1)
            start = skip_to
        if width <= 1.0:
            area = price * width
            for index in range(start, stop):
                self._close(level, Bucket(index, price, price, price, area))
            return
        begin = data_begin(start, width)
        for index in range(start, stop):
            end = data_begin(index + 1, width)
            self._close(level, Bucket(index, price, price, price, price * (end - begin)))
            begin = end

    def _stretch(self, level: int, begin: float, end: float, price: float) -> None:
        """``price`` was in force over ``[begin, end)``: merge it into ``level``'s buckets."""
        tier = self.tiers[level]
        width = tier.width
        if width <= 1.0:
            first = math.floor(begin / width)
            last = max(first, math.ceil(end / width) - 1)
        else:  # whole seconds, each in the bucket that holds its midpoint (``data_begin``)
            begin, end = _whole_second(begin), _whole_second(end)
            first = math.floor((begin + 0.5) / width)
            last = max(first, math.floor((end - 0.5) / width))
        first_end = min(end, data_begin(first + 1, width))
        self._merge(level, Bucket(first, price, price, price, price * (first_end - begin)))
        if last > first:
            assert tier.open is not None
            self._close(level, tier.open)
            self._constant(level, first + 1, last, price)
            tier.open = Bucket(last, price, price, price, price * (end - data_begin(last, width)))

    def _fold_fine(self, part: Bucket) -> None:
        """``_fold`` of a 100 ms bucket into the 1-second tier: the hot case, inlined."""
        second = self.tiers[1]
        bucket = second.open
        if bucket is not None and bucket.index == math.floor((part.index + 0.5) * FINE_WIDTH):
            bucket.last = part.last
            bucket.low = min(bucket.low, part.low)
            bucket.high = max(bucket.high, part.high)
            bucket.area += part.area
            return
        self._fold(1, part, FINE_WIDTH)

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
        the finest tier that holds that age; None before the first quote."""
        if self.first_at is None or at < self.first_at:
            return None
        if at >= self.last_at:
            return self.price
        for level, tier in enumerate(self.tiers):
            index = tier.index_of(at)
            bucket = tier.open
            if bucket is not None and index >= bucket.index:
                index = bucket.index
            elif not tier.oldest() <= index <= tier.head:
                continue
            if tier.oldest() < index <= tier.head + 1:  # the bucket before ``index`` is kept:
                held = tier.last[tier.slot(index - 1)]  # its last price held when ``index`` began
                if not math.isnan(held):  # NaN: a gap in a history restored from the store
                    return held
            if level >= 1 and level + 1 < len(self.tiers):
                # ``index`` is the ring's oldest: what it pushed out went to the tier above,
                # whose newest data ends where this ring begins.
                above = self.tiers[level + 1]
                newest = above.open or above.get(above.head)
                if newest is not None:
                    return newest.last
        return self.first_price  # ``at`` is in the first bucket of every tier

    def level_for(self, window: float) -> int:
        """The tier that serves ``window``: the finest that reaches that far."""
        for level, tier in enumerate(self.tiers):
            if window <= tier.reach:
                return level
        return len(self.tiers) - 1

    def retained(self) -> Iterator[tuple[Bucket, float]]:
        """Every bucket kept past the finest tier with its width, oldest first: the coarse
        tiers (ring, then open bucket), then the 1-second ring; not the 1-second open bucket."""
        for tier in reversed(self.tiers[2:]):
            for bucket in tier.buckets(tier.oldest(), tier.head):
                yield bucket, tier.width
            if tier.open is not None:
                yield tier.open, tier.width
        second = self.tiers[1]
        for bucket in second.buckets(second.oldest(), second.head):
            yield bucket, second.width
