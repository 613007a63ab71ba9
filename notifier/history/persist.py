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
import time
from array import array
from dataclasses import dataclass, field
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
SLICE_PAIRS = 32  # pairs a periodic save reads and writes at a time


def pair_text(pair: PairKey) -> str:
    return f"{pair[0]}|{pair[1]}|{pair[2]}|{int(pair[3])}"


def pair_from_text(text: str) -> PairKey:
    token_in, token_out, amount, exact_in = text.split("|")
    return (token_in, token_out, amount, exact_in == "1")


def _block_size(tier: Tier) -> int:
    return max(1, tier.capacity // BLOCKS_PER_RING)


class HistoryStore:
    """Saves and restores a ``HistoryBook``; remembers what each save already wrote."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._saved: dict[tuple[PairKey, int], int] = {}  # (pair, level) -> head written

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
        """Write what changed since the last save, in one transaction; returns blocks written."""
        saves = self._collect(book, list(book.series))
        written = self._write(saves)
        self._mark(saves)
        return written

    def save_quietly(self, book: HistoryBook) -> None:
        """``save``, logging a failure instead of raising it (at stop: the rest goes on)."""
        try:
            self.save(book)
        except Exception as exc:
            log.warning("quote history not saved: %s", exc)

    async def save_in_slices(self, book: HistoryBook) -> int:
        """``save`` without stalling the event loop: ``SLICE_PAIRS`` pairs at a time, each
        slice read on the loop (the book changes only there) and written in its own short
        transaction on a worker thread, so the loop evaluates quotes meanwhile and waits for
        the store (its own commits) at most one slice."""
        pairs = list(book.series)
        written = 0
        for first in range(0, len(pairs), SLICE_PAIRS):
            saves = self._collect(book, pairs[first : first + SLICE_PAIRS])
            if saves:
                written += await asyncio.to_thread(self._write, saves)
                self._mark(saves)
            else:
                await asyncio.sleep(0)
        return written

    async def keep_saved(self, book: HistoryBook, interval: float = SAVE_INTERVAL) -> None:
        """Save every ``interval`` and prune what no rule reads, until cancelled. A failed
        save is logged and tried again next time (the store's outage handling reports it)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.save_in_slices(book)
            except Exception as exc:
                log.warning("quote history not saved: %s", exc)
            try:
                self.prune(book, time.time())
            except Exception as exc:
                log.warning("old quote history not pruned: %s", exc)

    def _collect(self, book: HistoryBook, pairs: list[PairKey]) -> list[_PairSave]:
        """What a save of ``pairs`` writes: the blocks changed since the last save, packed
        now (on the loop's thread, which alone changes the book)."""
        saves = []
        for pair in pairs:
            series = book.series.get(pair)
            if series is None or series.first_at is None:
                continue
            save = _PairSave(pair_text(pair), orjson.dumps(_state(series)), series.last_at)
            for level, tier in enumerate(series.tiers):
                if not len(tier.last):
                    continue
                size = _block_size(tier)
                since = max(self._saved.get((pair, level), tier.oldest() - 1), tier.oldest() - 1)
                if since >= tier.head:
                    continue
                for block in range((since + 1) // size, tier.head // size + 1):
                    save.blocks.append((save.text, level, block, _pack(tier, block, size)))
                save.cut.append((save.text, level, tier.oldest() // size))
                save.heads[(pair, level)] = tier.head
            saves.append(save)
        return saves

    def _write(self, saves: list[_PairSave]) -> int:
        """Write collected saves in one transaction (any thread); returns blocks written.
        Its commit does not wait for the disk: a crash may lose the last seconds of history
        anyway, and the outbox's next commit (which does wait) makes it safe too."""
        with self._store.transaction(durable=False) as db:
            for save in saves:
                if save.blocks:
                    db.executemany(
                        "INSERT INTO quote_history (pair, level, block, data) VALUES (?,?,?,?)"
                        " ON CONFLICT (pair, level, block) DO UPDATE SET data = excluded.data",
                        save.blocks,
                    )
                if save.cut:
                    db.executemany(
                        "DELETE FROM quote_history WHERE pair = ? AND level = ? AND block < ?",
                        save.cut,
                    )
                db.execute(
                    "INSERT INTO quote_history_pairs (pair, state, saved_at) VALUES (?,?,?)"
                    " ON CONFLICT (pair) DO UPDATE SET state = excluded.state,"
                    " saved_at = excluded.saved_at",
                    (save.text, save.state, save.saved_at),
                )
        return sum(len(save.blocks) for save in saves)

    def _mark(self, saves: list[_PairSave]) -> None:
        for save in saves:
            self._saved.update(save.heads)

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


@dataclass(slots=True)
class _PairSave:
    """One pair's part of a save: its state row, the blocks to upsert and, per tier, the
    block below which the ring has left (deleted), and the heads it brings up to date."""

    text: str
    state: bytes
    saved_at: float | None
    blocks: list[tuple[str, int, int, bytes]] = field(default_factory=list)
    cut: list[tuple[str, int, int]] = field(default_factory=list)
    heads: dict[tuple[PairKey, int], int] = field(default_factory=dict)


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


def _pack(tier: Tier, block: int, size: int) -> bytes:
    """The block's four columns, copied as slices of the ring (NaN where no bucket is kept)."""
    start = block * size
    low, high = max(start, tier.oldest()), min(start + size - 1, tier.head)
    packed = []
    for ring in (tier.last, tier.low, tier.high, tier.area):
        column = array("d", [math.nan]) * size
        if low <= high:
            at, slot, count = low - start, tier.slot(low), high - low + 1
            first = min(count, len(ring) - slot)  # the ring may wrap inside the block
            column[at : at + first] = ring[slot : slot + first]
            column[at + first : at + count] = ring[: count - first]
        packed.append(column.tobytes())
    return b"".join(packed)


def _fill(tier: Tier, blocks: list[tuple[int, bytes]]) -> None:
    for block, data in blocks:
        values = array("d")
        values.frombytes(data)
        size = len(values) // 4
        for offset in range(size):
            index = block * size + offset
            if index < tier.oldest() or index > tier.head or math.isnan(values[offset]):
                continue
            slot = tier.slot(index)
            tier.last[slot] = values[offset]
            tier.low[slot] = values[size + offset]
            tier.high[slot] = values[2 * size + offset]
            tier.area[slot] = values[3 * size + offset]
