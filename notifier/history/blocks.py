"""A tier's ring as blocks of packed doubles, the unit the store keeps it in.

Block ``b`` of a tier ``size`` buckets a block holds buckets ``b·size … b·size + size - 1``:
their ``last``, ``low``, ``high`` and ``area`` columns one after the other, NaN where the ring
holds nothing (before its oldest bucket, after its head). A block's size is its byte length
over 32, so a block reads back whatever size it was written at.
"""

from __future__ import annotations

import math
from array import array

from notifier.history.series import Tier

__all__ = ["BLOCK_BUCKETS", "block_size", "pack", "ring_tenth", "unpack"]

# Buckets a block: a 5-s save rewrites about 2 KB of the 1-second tier instead of a tenth of
# its ring (360 buckets, 11.5 KB spread over four pages); 50 buckets of the 100 ms tier are
# one save's worth. Two blocks fit a 4 KiB page with room for a long pair key.
BLOCK_BUCKETS = 50

_NAN = array("d", [math.nan]).tobytes()


def block_size(capacity: int) -> int:
    """Buckets a block, for a tier of ``capacity`` buckets."""
    return min(BLOCK_BUCKETS, capacity)


def ring_tenth(capacity: int) -> int:
    """The block size of a history saved before blocks recorded their size: a tenth of the ring."""
    return max(1, capacity // 10)


def pack(tier: Tier, block: int, size: int) -> bytes:
    """Block ``block`` of ``tier``, ``size`` buckets long: slices of the ring's columns (two
    where it wraps) between NaN paddings."""
    first = block * size
    start, stop = max(first, tier.oldest()), min(first + size - 1, tier.head)
    if start > stop:
        return _NAN * (4 * size)
    before, after = _NAN * (start - first), _NAN * (first + size - 1 - stop)
    slot = tier.slot(start)
    end = slot + stop - start + 1
    parts: list[bytes | array[float]] = []
    columns = (tier.last, tier.low, tier.high, tier.area)
    if end <= len(tier.last):
        for column in columns:
            parts += (before, column[slot:end], after)
    else:
        wrap = end - len(tier.last)
        for column in columns:
            parts += (before, column[slot:], column[:wrap], after)
    return b"".join(parts)


def unpack(tier: Tier, blocks: list[tuple[int, bytes]]) -> None:
    """Copy saved blocks into the ring (whose columns are NaN-filled to its saved length)."""
    for block, data in blocks:
        values = array("d")
        values.frombytes(data)
        size = len(values) // 4
        first = block * size
        start, stop = max(first, tier.oldest()), min(first + size - 1, tier.head)
        if start > stop:
            continue
        last = values[start - first : stop - first + 1]
        if math.isnan(sum(last)) or not _put(tier, start, stop, values, size=size, first=first):
            _put_each(tier, start, stop, values, size=size, first=first)


def _put(tier: Tier, start: int, stop: int, values: array[float], *, size: int, first: int) -> bool:
    """Copy a block with no gap into the ring as slices; False where the ring would wrap."""
    slot = tier.slot(start)
    end = slot + stop - start + 1
    if end > len(tier.last):
        return False
    for n, column in enumerate((tier.last, tier.low, tier.high, tier.area)):
        offset = n * size + start - first
        column[slot:end] = values[offset : offset + stop - start + 1]
    return True


def _put_each(
    tier: Tier, start: int, stop: int, values: array[float], *, size: int, first: int
) -> None:
    """The block value by value: a NaN ``last`` is a bucket the save did not have."""
    for index in range(start, stop + 1):
        offset = index - first
        if math.isnan(values[offset]):
            continue
        slot = tier.slot(index)
        tier.last[slot] = values[offset]
        tier.low[slot] = values[size + offset]
        tier.high[slot] = values[2 * size + offset]
        tier.area[slot] = values[3 * size + offset]
