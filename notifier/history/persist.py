"""Quote history in the store: each tier's ring in blocks of a tenth of it, so a save writes
only the blocks that changed since the last one, and a block the ring has left is deleted.

``quote_history_pairs`` holds each pair's small state (first quote, price in force, each
tier's head and open bucket) as JSON; ``quote_history`` the blocks, as packed doubles
(``last``, ``low``, ``high``, ``area`` columns of the block, NaN where nothing was kept).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from array import array
from collections.abc import Iterator
from typing import Any

import orjson

from notifier.events import PairKey
from notifier.history.book import HistoryBook
from notifier.history.series import Bucket, PairSeries, Tier
from notifier.store import Store

__all__ = ["SAVE_INTERVAL", "HistoryStore", "pair_from_text", "pair_text"]

log = logging.getLogger(__name__)

BLOCKS_PER_RING = 10
SAVE_INTERVAL = 5.0  # seconds of history a crash may lose; a clean stop saves everything
BATCH_BYTES = 1 << 18  # bytes of blocks per transaction of a periodic save (a small peak)


def pair_text(pair: PairKey) -> str:
    return f"{pair[0]}|{pair[1]}|{pair[2]}|{int(pair[3])}"


def pair_from_text(text: str) -> PairKey:
    token_in, token_out, amount, exact_in = text.split("|")
    return (token_in, token_out, amount, exact_in == "1")


def _block_size(tier: Tier) -> int:
    return max(1, tier.capacity // BLOCKS_PER_RING)


_UPSERT_BLOCK = (
    "INSERT INTO quote_history (pair, level, block, data) VALUES (?,?,?,?)"
    " ON CONFLICT (pair, level, block) DO UPDATE SET data = excluded.data"
)
_DELETE_BLOCKS = "DELETE FROM quote_history WHERE pair = ? AND level = ? AND block < ?"
_UPSERT_PAIR = (
    "INSERT INTO quote_history_pairs (pair, state, saved_at) VALUES (?,?,?)"
    " ON CONFLICT (pair) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at"
)


class _Batch:
    """Rows of one transaction, and each (pair, level)'s head once they are written."""

    __slots__ = ("blocks", "marks", "rows", "size")

    def __init__(self) -> None:
        self.rows: list[tuple[str, tuple[Any, ...]]] = []
        self.marks: dict[tuple[PairKey, int], int] = {}
        self.size = 0  # bytes of blocks
        self.blocks = 0


class HistoryStore:
    """Saves and restores a ``HistoryBook``; remembers what each save already wrote."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._saved: dict[tuple[PairKey, int], int] = {}  # (pair, level) -> head written
        # Held while a batch is packed and until it is written (maybe by a worker thread).
        self._writing = threading.Lock()

    def load(self, book: HistoryBook) -> int:
        """Restore every saved pair the book watches; returns how many were restored."""
        restored = 0
        for text, state in self._store.read("SELECT pair, state FROM quote_history_pairs"):
            pair = pair_from_text(text)
            series = book.series.get(pair)
            if series is None or series.first_at is not None:
                continue
            try:
                self._restore(pair, series, orjson.loads(state))
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                log.warning("history of %s not restored: %s", text, exc)
                continue
            restored += 1
        return restored

    def _restore(self, pair: PairKey, series: PairSeries, state: dict[str, Any]) -> None:
        series.first_at, series.last_at = state["first_at"], state["last_at"]
        series.price, series.first_price = state["price"], state["first_price"]
        rows = self._store.read(
            "SELECT level, block, data FROM quote_history WHERE pair = ? ORDER BY level, block",
            (pair_text(pair),),
        )
        blocks: dict[int, list[tuple[int, bytes]]] = {}
        for level, block, data in rows:
            blocks.setdefault(level, []).append((block, bytes(data)))
        for level, (tier, saved) in enumerate(zip(series.tiers, state["tiers"], strict=False)):
            if [tier.width, tier.capacity] != saved["shape"]:
                break  # [history] max_window changed the layout from here up
            tier.head, tier.base = saved["head"], saved["base"]
            tier.open = Bucket(*saved["open"]) if saved["open"] else None
            empty = array("d", [math.nan]) * saved["count"]
            tier.last, tier.low, tier.high, tier.area = empty, empty[:], empty[:], empty[:]
            _fill(tier, blocks.get(level, []))
            self._saved[(pair, level)] = tier.head

    def save(self, book: HistoryBook) -> int:
        """Write what changed since the last save; returns blocks written."""
        with self._writing:  # after a save still in flight on a worker thread
            written = 0
            for batch in self._batches(book):
                self._write(batch)
                written += batch.blocks
            return written

    def save_quietly(self, book: HistoryBook) -> None:
        """``save``, logging a failure instead of raising it (at stop: the rest goes on)."""
        try:
            self.save(book)
        except Exception as exc:
            log.warning("quote history not saved: %s", exc)

    async def keep_saved(self, book: HistoryBook, interval: float = SAVE_INTERVAL) -> None:
        """Save every ``interval`` and prune what no rule reads, until cancelled. A failed
        save is logged and tried again next time (the store's outage handling reports it).

        The event loop only packs the changed blocks, a batch at a time; a worker thread
        writes and commits each batch, so quotes keep flowing through the fsync."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            for batch in self._batches(book):
                self._writing.acquire()  # released by the worker (or a cancel while queued)
                try:
                    done = loop.run_in_executor(None, self._write_quietly, batch)
                except BaseException:
                    self._writing.release()
                    raise
                # Cancelled here (a stop), the worker still finishes and releases the lock:
                # ``save`` waits for it, so an older batch never lands after a newer one.
                if not await done:
                    break
            try:
                self.prune(book, time.time())
            except Exception as exc:
                log.warning("old quote history not pruned: %s", exc)

    def _batches(self, book: HistoryBook) -> Iterator[_Batch]:
        """What changed since the last save, pair by pair, in batches of about ``BATCH_BYTES``
        of blocks (each its own transaction: a pair's rows are always in one)."""
        batch = _Batch()
        for pair, series in list(book.series.items()):
            if series.first_at is None:
                continue
            self._collect(pair, series, batch)
            if batch.size >= BATCH_BYTES:
                yield batch
                batch = _Batch()
        if batch.rows:
            yield batch

    def _collect(self, pair: PairKey, series: PairSeries, batch: _Batch) -> None:
        text = pair_text(pair)
        for level, tier in enumerate(series.tiers):
            if not len(tier.last):
                continue
            size = _block_size(tier)
            since = max(self._saved.get((pair, level), tier.oldest() - 1), tier.oldest() - 1)
            if since >= tier.head:
                continue
            for block in range((since + 1) // size, tier.head // size + 1):
                data = _pack(tier, block, size)
                batch.rows.append((_UPSERT_BLOCK, (text, level, block, data)))
                batch.size += len(data)
                batch.blocks += 1
            batch.rows.append((_DELETE_BLOCKS, (text, level, tier.oldest() // size)))
            batch.marks[(pair, level)] = tier.head
        state = (text, orjson.dumps(_state(series)), series.last_at)
        batch.rows.append((_UPSERT_PAIR, state))

    def _write(self, batch: _Batch, *, wait: bool = True) -> None:
        with self._store.transaction(wait=wait) as db:
            for sql, params in batch.rows:
                db.execute(sql, params)
        self._saved.update(batch.marks)

    def _write_quietly(self, batch: _Batch) -> bool:
        """``_write`` on a worker thread, which then releases ``_writing``; False on failure."""
        try:
            # Not waiting for the disk: the store syncs it shortly on its own thread (a
            # power cut may lose the last seconds of history anyway; the stop's save waits).
            self._write(batch, wait=False)
        except Exception as exc:
            log.warning("quote history not saved: %s", exc)
            return False
        finally:
            self._writing.release()
        return True

    def prune(self, book: HistoryBook, now: float) -> int:
        """Delete the saved history of pairs no rule reads whose newest quote is older than the
        longest window; returns how many pairs went."""
        gone = 0
        for text, saved_at in self._store.read("SELECT pair, saved_at FROM quote_history_pairs"):
            pair = pair_from_text(text)
            if pair in book.pricing or now - saved_at <= book.max_window:
                continue
            with self._store.transaction() as db:
                db.execute("DELETE FROM quote_history WHERE pair = ?", (text,))
                db.execute("DELETE FROM quote_history_pairs WHERE pair = ?", (text,))
            book.series.pop(pair, None)
            gone += 1
        return gone


def _state(series: PairSeries) -> dict[str, Any]:
    return {
        "first_at": series.first_at,
        "last_at": series.last_at,
        "price": series.price,
        "first_price": series.first_price,
        "tiers": [
            {
                "shape": [tier.width, tier.capacity],
                "head": tier.head,
                "base": tier.base,
                "count": len(tier.last),
                "open": None
                if tier.open is None
                else [
                    tier.open.index,
                    tier.open.last,
                    tier.open.low,
                    tier.open.high,
                    tier.open.area,
                ],
            }
            for tier in series.tiers
        ],
    }


def _ring(tier: Tier, column: array[float], start: int, stop: int) -> array[float]:
    """The values of closed buckets ``start … stop`` (all kept) of one column, in index order:
    one slice of the ring, or two where it wraps."""
    slot = tier.slot(start)
    end = slot + stop - start + 1
    if end <= len(column):
        return column[slot:end]
    return column[slot:] + column[: end - len(column)]


def _pack(tier: Tier, block: int, size: int) -> bytes:
    first = block * size
    start, stop = max(first, tier.oldest()), min(first + size - 1, tier.head)
    if start > stop:
        return (array("d", [math.nan]) * (4 * size)).tobytes()
    before, after = (
        array("d", [math.nan]) * (start - first),
        array("d", [math.nan]) * (first + size - 1 - stop),
    )
    return b"".join(
        (before + _ring(tier, column, start, stop) + after).tobytes()
        for column in (tier.last, tier.low, tier.high, tier.area)
    )


def _fill(tier: Tier, blocks: list[tuple[int, bytes]]) -> None:
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
            _fill_each(tier, start, stop, values, size=size, first=first)


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


def _fill_each(
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
