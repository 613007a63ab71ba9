"""What the order feed keeps across restarts: the order cache (``fusion_orders``), the
per-chain sync watermarks (``fusion_sync``) and Solana's fills of open orders (``fusion_fills``),
all written through the daemon's ``Store``."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from notifier.events import OrderInfo
from notifier.store import Store
from notifier.tokens import address_key

__all__ = ["CachedOrder", "FillLog", "OrderCache", "SyncMarks"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CachedOrder:
    """A known order and the last fill/cancel/invalidation state seen for it."""

    chain: int
    info: OrderInfo
    state: str | None = None
    final: bool = False
    touched: float = 0.0  # last change, wall clock: orders the LRU across restarts


class OrderCache:
    """Bounded LRU of known orders, written behind to the ``fusion_orders`` table.

    Writes are batched into one transaction per ``flush`` so that a burst of order events does
    not cost one fsync each on the event loop.
    """

    def __init__(self, store: Store, capacity: int) -> None:
        self._store = store
        self.capacity = capacity
        self._entries: OrderedDict[tuple[int, str], CachedOrder] = OrderedDict()
        self._dirty: set[tuple[int, str]] = set()
        self._evicted: set[tuple[int, str]] = set()
        self._load()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, chain: int, order_hash: str) -> CachedOrder | None:
        key = (chain, order_hash)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, chain: int, info: OrderInfo) -> CachedOrder:
        """Remember ``info``, keeping the state already known for the order."""
        key = (chain, info.order_hash)
        entry = self._entries.get(key)
        if entry is None:
            entry = CachedOrder(chain=chain, info=info)
            self._entries[key] = entry
        else:
            entry.info = info
            self._entries.move_to_end(key)
        self._touch(key)
        while len(self._entries) > self.capacity:
            old, _ = self._entries.popitem(last=False)
            self._dirty.discard(old)
            self._evicted.add(old)
        return entry

    def record(
        self, chain: int, order_hash: str, *, state: str | None, final: bool, remaining: int | None
    ) -> None:
        """Note what an event says about a cached order."""
        entry = self._entries.get((chain, order_hash))
        if entry is None:
            return
        if state is not None:
            entry.state = state
        entry.final = entry.final or final
        if remaining is not None:
            entry.info = replace(entry.info, remaining_maker_amount=remaining)
        self._touch((chain, order_hash))

    def candidates(self, chain: int, makers: frozenset[str], limit: int) -> list[CachedOrder]:
        """Non-final orders of ``chain`` by the given makers (any when empty), newest first."""
        found: list[CachedOrder] = []
        for entry in reversed(self._entries.values()):
            if len(found) >= limit:
                break
            if entry.chain != chain or entry.final:
                continue
            if makers and address_key(entry.info.maker) not in makers:
                continue
            found.append(entry)
        return found

    def flush(self) -> None:
        """Write changed rows and drop evicted ones, in one transaction."""
        if not (self._dirty or self._evicted):
            return
        rows = [self._row(self._entries[key]) for key in self._dirty]
        try:
            with self._store.transaction() as db:
                db.executemany(
                    "DELETE FROM fusion_orders WHERE chain = ? AND order_hash = ?", self._evicted
                )
                db.executemany(
                    """INSERT INTO fusion_orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
                ON CONFLICT (chain, order_hash) DO UPDATE SET
                    maker = excluded.maker, receiver = excluded.receiver,
                    maker_asset = excluded.maker_asset, taker_asset = excluded.taker_asset,
                    making_amount = excluded.making_amount,
                    taking_amount = excluded.taking_amount, deadline = excluded.deadline,
                    remaining_maker_amount = excluded.remaining_maker_amount,
                    state = excluded.state, final = excluded.final, touched = excluded.touched""",
                    rows,
                )
        except sqlite3.Error:
            log.exception("order cache: could not persist %d order(s)", len(rows))
            return
        self._dirty.clear()
        self._evicted.clear()

    def _touch(self, key: tuple[int, str]) -> None:
        self._entries[key].touched = time.time()
        self._dirty.add(key)
        self._evicted.discard(key)

    @staticmethod
    def _row(entry: CachedOrder) -> tuple[Any, ...]:
        info = entry.info
        remaining = info.remaining_maker_amount
        return (
            entry.chain,
            info.order_hash,
            info.maker,
            info.receiver,
            info.maker_asset,
            info.taker_asset,
            str(info.making_amount),
            str(info.taking_amount),
            info.deadline,
            None if remaining is None else str(remaining),
            entry.state,
            int(entry.final),
            entry.touched,
        )

    def _load(self) -> None:
        rows = self._store.read(
            """SELECT chain, order_hash, maker, receiver, maker_asset, taker_asset, making_amount,
                taking_amount, deadline, remaining_maker_amount, state, final, touched
            FROM fusion_orders ORDER BY touched DESC LIMIT ?""",
            (self.capacity,),
        )
        for row in reversed(rows):
            chain, order_hash, maker, receiver, maker_asset, taker_asset = row[:6]
            info = OrderInfo(
                order_hash=order_hash,
                maker=maker,
                receiver=receiver,
                maker_asset=maker_asset,
                taker_asset=taker_asset,
                making_amount=int(row[6]),
                taking_amount=int(row[7]),
                deadline=row[8],
                remaining_maker_amount=None if row[9] is None else int(row[9]),
            )
            self._entries[(chain, order_hash)] = CachedOrder(
                chain=chain, info=info, state=row[10], final=bool(row[11]), touched=row[12]
            )
        if len(rows) == self.capacity:
            with self._store.transaction() as db:
                db.execute(
                    """DELETE FROM fusion_orders WHERE (chain, order_hash) NOT IN
                    (SELECT chain, order_hash FROM fusion_orders ORDER BY touched DESC LIMIT ?)""",
                    (self.capacity,),
                )


class SyncMarks:
    """Per chain, the time up to which every order of the watched makers is known.

    Kept in the ``fusion_sync`` table; orders-by-maker lists from there after a reconnect or a
    restart. It advances only while the chain is connected and its last catch-up succeeded.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def load(self) -> dict[int, float]:
        rows = self._store.read("SELECT chain, seen_until FROM fusion_sync")
        return {int(chain): float(at) for chain, at in rows}

    def save(self, chain: int, at: float) -> bool:
        """Persist ``at`` for ``chain``; False when it could not be written."""
        try:
            with self._store.transaction() as db:
                db.execute(
                    """INSERT INTO fusion_sync VALUES (?, ?)
                    ON CONFLICT (chain) DO UPDATE SET seen_until = excluded.seen_until""",
                    (chain, at),
                )
        except sqlite3.Error:
            log.exception("order feed chain %d: could not persist the sync watermark", chain)
            return False
        return True


class FillLog:
    """Per open order of one chain, the fill transactions seen and their amounts.

    Solana sends each fill's own amount, and may send the same transaction twice (``confirmed``,
    then ``finalized``), live and in REST ``fills[]``, or again after a restart: counting each
    transaction once keeps the remaining amount exact. Kept in ``fusion_fills``, written behind
    like the order cache; an order's rows go when it is final.
    """

    def __init__(self, store: Store, chain: int) -> None:
        self._store = store
        self._chain = chain
        self._fills: dict[str, dict[str, int]] = {}
        self._new: list[tuple[int, str, str, str]] = []
        self._gone: set[str] = set()
        with store.transaction() as db:  # orders no longer open (or evicted) need none
            db.execute(
                """DELETE FROM fusion_fills WHERE chain = ? AND NOT EXISTS (
                    SELECT 1 FROM fusion_orders o WHERE o.chain = fusion_fills.chain
                    AND o.order_hash = fusion_fills.order_hash AND o.final = 0)""",
                (chain,),
            )
        rows = store.read(
            "SELECT order_hash, tx, filled_maker_amount FROM fusion_fills WHERE chain = ?",
            (chain,),
        )
        for order_hash, tx, amount in rows:
            self._fills.setdefault(order_hash, {})[tx] = int(amount)

    def seen(self, order_hash: str, tx: str) -> bool:
        return tx in self._fills.get(order_hash, {})

    def add(self, order_hash: str, tx: str, amount: int) -> int:
        """Record one fill; answer the order's filled amount with it."""
        fills = self._fills.setdefault(order_hash, {})
        if tx not in fills:
            fills[tx] = amount
            self._new.append((self._chain, order_hash, tx, str(amount)))
        return sum(fills.values())

    def forget(self, order_hash: str) -> None:
        """The order is final: its fills are no longer needed."""
        if self._fills.pop(order_hash, None) is not None:
            self._gone.add(order_hash)

    def flush(self) -> None:
        if not (self._new or self._gone):
            return
        gone = [(self._chain, order_hash) for order_hash in self._gone]
        try:
            with self._store.transaction() as db:
                db.executemany(
                    """INSERT INTO fusion_fills VALUES (?, ?, ?, ?)
                    ON CONFLICT (chain, order_hash, tx) DO NOTHING""",
                    self._new,
                )
                db.executemany("DELETE FROM fusion_fills WHERE chain = ? AND order_hash = ?", gone)
        except sqlite3.Error:
            log.exception("order feed: could not persist %d fill(s)", len(self._new))
            return
        self._new.clear()
        self._gone.clear()
