"""Quote history in the store: each tier's ring in blocks of ``BLOCK_BUCKETS`` buckets
(``blocks.py``), so a save writes only the blocks that changed since the last one, and a block
the ring has left is deleted.

``quote_history_pairs`` holds each pair's small state (first quote, price in force, each
tier's head, open bucket and block size) as JSON; ``quote_history`` the blocks. A pair's rows
are all of one block size: a history saved at another size (a tenth of the ring, before the
size was recorded) is restored as it is, and the pair's next save replaces all of its rows at
the current size in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from notifier.events import PairKey
from notifier.history.blocks import block_size, pack, ring_tenth, unpack
from notifier.history.book import HistoryBook
from notifier.history.series import Bucket, PairSeries
from notifier.store import Store

__all__ = ["SAVE_INTERVAL", "HistoryStore", "pair_from_text", "pair_text"]

log = logging.getLogger(__name__)

SAVE_INTERVAL = 5.0  # seconds of history a crash may lose; a clean stop saves everything
# Bytes of blocks per transaction of a periodic save, written on the event loop between
# quotes (``keep_saved``): ~0.5 ms of the loop's time a batch. A remote store's batches go
# to a worker thread, bigger, since each of their statements waits for the network.
BATCH_BYTES = 1 << 16
REMOTE_BATCH_BYTES = 1 << 18
SLICE_PAIRS = 16  # pairs packed in one slice of the event loop (well under a millisecond)


def pair_text(pair: PairKey) -> str:
    return f"{pair[0]}|{pair[1]}|{pair[2]}|{int(pair[3])}"


def pair_from_text(text: str) -> PairKey:
    token_in, token_out, amount, exact_in = text.split("|")
    return (token_in, token_out, amount, exact_in == "1")


_UPSERT_BLOCK = (
    "INSERT INTO quote_history (pair, level, block, data) VALUES (?,?,?,?)"
    " ON CONFLICT (pair, level, block) DO UPDATE SET data = excluded.data"
)
_DELETE_BLOCKS = "DELETE FROM quote_history WHERE pair = ? AND level = ? AND block < ?"
_DELETE_PAIR = "DELETE FROM quote_history WHERE pair = ?"
_UPSERT_PAIR = (
    "INSERT INTO quote_history_pairs (pair, state, saved_at) VALUES (?,?,?)"
    " ON CONFLICT (pair) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at"
)


class _Batch:
    """Rows of one transaction, and each (pair, level)'s head once they are written."""

    __slots__ = ("blocks", "levels", "marks", "pairs", "rows", "size")

    def __init__(self) -> None:
        self.pairs: list[PairKey] = []  # whose rows all go first (then all at the current size)
        self.levels: dict[int, list[tuple[str, int, int, bytes]]] = {}  # blocks, by tier
        self.rows: list[tuple[str, tuple[Any, ...]]] = []  # then: old blocks gone, states
        self.marks: dict[tuple[PairKey, int], int] = {}
        self.size = 0  # bytes of blocks
        self.blocks = 0


class HistoryStore:
    """Saves and restores a ``HistoryBook``; remembers what each save already wrote."""

    def __init__(self, store: Store, block_size: Callable[[int], int] = block_size) -> None:
        self._store = store
        self._block_size = block_size  # buckets a block, for a tier's capacity
        self._saved: dict[tuple[PairKey, int], int] = {}  # (pair, level) -> head written
        # Pairs whose saved rows are all at the current block size (restored or written so);
        # the first save of any other pair deletes its rows before writing every tier.
        self._current: set[PairKey] = set()
        # A remote store's batch is written by a worker thread: held from its packing until
        # written, so the stop's ``save`` never lands before a batch still in flight.
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
        current, marks = set(blocks), {}  # levels with rows not (yet) at the current size
        for level, (tier, saved) in enumerate(zip(series.tiers, state["tiers"], strict=False)):
            if [tier.width, tier.capacity] != saved["shape"]:
                break  # [history] max_window changed the layout from here up
            tier.head, tier.base = saved["head"], saved["base"]
            tier.open = Bucket(*saved["open"]) if saved["open"] else None
            empty = array("d", [math.nan]) * saved["count"]
            tier.last, tier.low, tier.high, tier.area = empty, empty[:], empty[:], empty[:]
            unpack(tier, blocks.get(level, []))
            marks[(pair, level)] = tier.head
            if saved.get("block", ring_tenth(tier.capacity)) == self._block_size(tier.capacity):
                current.discard(level)
        if not current:
            self._current.add(pair)
            self._saved.update(marks)

    def save(self, book: HistoryBook) -> int:
        """Write what changed since the last save; returns blocks written."""
        with self._writing:  # after a batch still in flight on a worker thread
            written = 0
            for batch in self._batches(book):
                if batch is not None:
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

        The event loop packs and writes the changed blocks a small batch at a time, each
        its own transaction that does not wait for the disk (the store's thread syncs it),
        and lets quotes through between batches. Not on a worker thread: one that writes
        holds the GIL between SQLite's steps, and the loop, which lets go of it at each of
        its own SQLite calls and fsyncs, then waits up to the switch interval every time to
        get it back: several times over on a notification's way to its channel. A remote
        store (PostgreSQL) is written by a worker thread instead, whose statements wait for
        the network, not for the GIL."""
        remote = self._store.remote
        size = REMOTE_BATCH_BYTES if remote else BATCH_BYTES
        while True:
            await asyncio.sleep(interval)
            for batch in self._batches(book, size):
                if batch is not None:
                    written = (
                        await self._write_remote(batch) if remote else self._write_quietly(batch)
                    )
                    if not written:
                        break
                await asyncio.sleep(0)  # a slice packed or a batch written: quotes go on
            try:
                self.prune(book, time.time())
            except Exception as exc:
                log.warning("old quote history not pruned: %s", exc)

    async def _write_remote(self, batch: _Batch) -> bool:
        """``_write_quietly`` on a worker thread, holding ``_writing`` until it is done."""
        self._writing.acquire()  # released once written (or if the submit fails)
        try:
            done = asyncio.get_running_loop().run_in_executor(None, self._write_held, batch)
        except BaseException:
            self._writing.release()
            raise
        # Cancelled here (a stop), the worker still finishes and releases the lock: ``save``
        # waits for it, so an older batch never lands after a newer one.
        return await done

    def _write_held(self, batch: _Batch) -> bool:
        try:
            return self._write_quietly(batch)
        finally:
            self._writing.release()

    def _batches(self, book: HistoryBook, size: int = BATCH_BYTES) -> Iterator[_Batch | None]:
        """What changed since the last save, pair by pair, in batches of about ``size`` bytes
        of blocks (each its own transaction: a pair's rows are always in one); None after
        every ``SLICE_PAIRS`` pairs of a batch not full yet (where the loop may run)."""
        batch, pairs = _Batch(), 0
        for pair, series in list(book.series.items()):
            if series.first_at is None:
                continue
            self._collect(pair, series, batch)
            pairs += 1
            if batch.size >= size:
                yield batch
                batch, pairs = _Batch(), 0
            elif pairs >= SLICE_PAIRS:
                yield None
                pairs = 0
        if batch.rows:
            yield batch

    def _collect(self, pair: PairKey, series: PairSeries, batch: _Batch) -> None:
        text, rows, saved = pair_text(pair), batch.rows, self._saved
        if pair not in self._current:
            batch.pairs.append(pair)
        for level, tier in enumerate(series.tiers):
            if not len(tier.last):
                continue
            head, oldest = tier.head, tier.oldest()
            since = max(saved.get((pair, level), oldest - 1), oldest - 1)
            if since >= head:
                continue
            size = self._block_size(tier.capacity)
            blocks = batch.levels.setdefault(level, [])
            for block in range((since + 1) // size, head // size + 1):
                data = pack(tier, block, size)
                blocks.append((text, level, block, data))
                batch.size += len(data)
                batch.blocks += 1
            rows.append((_DELETE_BLOCKS, (text, level, oldest // size)))
            batch.marks[(pair, level)] = head
        state = (text, orjson.dumps(self._state(series)), series.last_at)
        rows.append((_UPSERT_PAIR, state))

    def _write(self, batch: _Batch, *, wait: bool = True) -> None:
        with self._store.transaction(wait=wait) as db:
            db.executemany(_DELETE_PAIR, [(pair_text(pair),) for pair in batch.pairs])
            # A tier's blocks side by side, coarsest first: the newest block of each tier is
            # rewritten by the saves to come (many of them, past the finest tier), so it
            # shares its pages with its like rather than with finished blocks of the finest.
            for level in sorted(batch.levels, reverse=True):
                db.executemany(_UPSERT_BLOCK, batch.levels[level])
            for sql, params in batch.rows:
                db.execute(sql, params)
        self._saved.update(batch.marks)
        self._current.update(batch.pairs)

    def _write_quietly(self, batch: _Batch) -> bool:
        """``_write`` for the periodic save; False (logged) on failure."""
        try:
            # Not waiting for the disk: the store syncs it shortly on its own thread (a
            # power cut may lose the last seconds of history anyway; the stop's save waits).
            self._write(batch, wait=False)
        except Exception as exc:
            log.warning("quote history not saved: %s", exc)
            return False
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

    def _state(self, series: PairSeries) -> dict[str, Any]:
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
                    "block": self._block_size(tier.capacity),
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
