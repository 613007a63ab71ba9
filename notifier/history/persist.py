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
        written = 0
        with self._store.transaction() as db:
            for pair, series in book.series.items():
                if series.first_at is None:
                    continue
                text = pair_text(pair)
                for level, tier in enumerate(series.tiers):
                    if not len(tier.last):
                        continue
                    size = _block_size(tier)
                    since = max(
                        self._saved.get((pair, level), tier.oldest() - 1), tier.oldest() - 1
                    )
                    if since >= tier.head:
                        continue
                    for block in range((since + 1) // size, tier.head // size + 1):
                        db.execute(
                            "INSERT INTO quote_history (pair, level, block, data) VALUES (?,?,?,?)"
                            " ON CONFLICT (pair, level, block) DO UPDATE SET data = excluded.data",
                            (text, level, block, _pack(tier, block, size)),
                        )
                        written += 1
                    db.execute(
                        "DELETE FROM quote_history WHERE pair = ? AND level = ? AND block < ?",
                        (text, level, tier.oldest() // size),
                    )
                    self._saved[(pair, level)] = tier.head
                db.execute(
                    "INSERT INTO quote_history_pairs (pair, state, saved_at) VALUES (?,?,?)"
                    " ON CONFLICT (pair) DO UPDATE SET state = excluded.state,"
                    " saved_at = excluded.saved_at",
                    (text, orjson.dumps(_state(series)), series.last_at),
                )
        return written

    def save_quietly(self, book: HistoryBook) -> None:
        """``save``, logging a failure instead of raising it (at stop: the rest goes on)."""
        try:
            self.save(book)
        except Exception as exc:
            log.warning("quote history not saved: %s", exc)

    async def keep_saved(self, book: HistoryBook, interval: float = SAVE_INTERVAL) -> None:
        """Save every ``interval`` and prune what no rule reads, until cancelled. A failed
        save is logged and tried again next time (the store's outage handling reports it)."""
        while True:
            await asyncio.sleep(interval)
            self.save_quietly(book)
            try:
                self.prune(book, time.time())
            except Exception as exc:
                log.warning("old quote history not pruned: %s", exc)

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


def _pack(tier: Tier, block: int, size: int) -> bytes:
    columns = [array("d", [math.nan]) * size for _ in range(4)]
    for bucket in tier.buckets(block * size, block * size + size - 1):
        offset = bucket.index - block * size
        for column, value in zip(
            columns, (bucket.last, bucket.low, bucket.high, bucket.area), strict=True
        ):
            column[offset] = value
    return b"".join(column.tobytes() for column in columns)


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
