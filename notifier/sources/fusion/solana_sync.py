"""Solana's catch-up over REST (UPSTREAMS §1.7): what a Solana order's status by hash says
that the feed has not announced, and the reconcile after a (re)connect and on start.

The Solana orders API has no orders-by-maker listing, so the catch-up is two steps: (1) the
active orders of the watched makers, page by page: one the cache does not know was created
while nobody listened, and is announced with ``order_created``; (2) every cached open order of
those makers, by hash (``status`` 0 in progress, 200 filled, 301 cancelled): each fill in
``fills[]`` not yet counted is announced (partial or full by the remaining amount), then a
cancel, a fill REST reports without its transactions, or an expiry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from notifier.events import SOLANA_CHAIN
from notifier.sources.fusion.rest import OrderRest
from notifier.sources.fusion.solana_wire import (
    STATUS_CANCELLED,
    STATUS_FILLED,
    STATUS_OPEN,
    SolanaStatus,
    TxEvent,
    active_order,
    expires_at,
)
from notifier.sources.fusion.store import CachedOrder, OrderCache
from notifier.tokens import address_key

if TYPE_CHECKING:
    from notifier.sources.fusion.solana import SolanaOrders

__all__ = ["SolanaCatchUp"]

log = logging.getLogger(__name__)


class SolanaCatchUp:
    """Brings chain 501's cached orders up to what REST knows, through ``orders``' delivery."""

    def __init__(
        self, orders: SolanaOrders, cache: OrderCache, rest: OrderRest, limit: int
    ) -> None:
        self._orders = orders
        self._cache = cache
        self._rest = rest
        self._limit = limit

    def fills(
        self, entry: CachedOrder, found: SolanaStatus, skip: frozenset[str] = frozenset()
    ) -> int:
        """Announce the fills REST lists that were not counted yet (``skip``: ones about to be
        applied live), in REST's order; answers how many."""
        order_hash = entry.info.order_hash
        emitted = 0
        for fill in found.fills:
            if entry.final:
                break
            if fill.tx in skip:
                continue
            event = TxEvent("fill", order_hash, entry.info.maker, fill.tx, fill=fill)
            result = {**fill.result(order_hash), "status": found.status}
            emitted += self._orders.apply(entry, event, result, time.time(), reconciled=True)
        return emitted

    def settle(self, entry: CachedOrder, found: SolanaStatus) -> int:
        """The order's end as REST tells it, when the feed has not announced one yet."""
        if entry.final:
            return 0
        now = time.time()
        order_hash = entry.info.order_hash
        result = {"orderHash": order_hash, "status": found.status}
        if found.status == STATUS_CANCELLED:
            result["transactionSignature"] = found.cancel_tx
            self._orders.emit(entry, "order_cancelled", result, now, reconciled=True)
        elif found.status == STATUS_FILLED:  # filled, without every fill listed
            result["remainingMakerAmount"] = "0"
            self._orders.emit(entry, "order_filled", result, now, reconciled=True, remaining=0)
        elif found.status == STATUS_OPEN and (expiry := expires_at(entry.info)) and now > expiry:
            self._orders.expired(entry, now)
        else:
            return 0
        return 1

    async def catch_up(self, makers: frozenset[str]) -> tuple[int, int, bool]:
        """(orders checked by hash, events emitted, whether every REST call succeeded)."""
        emitted, complete = 0, True
        if makers:
            emitted, complete = await self._adopt_active(makers)
        else:
            log.info(
                "order feed chain %d: a rule has no maker filter; orders created while "
                "disconnected cannot be listed, only cached orders are reconciled",
                SOLANA_CHAIN,
            )
        targets = self._cache.candidates(SOLANA_CHAIN, makers, self._limit)
        outcomes = await asyncio.gather(*(self._check(e.info.order_hash) for e in targets))
        emitted += sum(n or 0 for n in outcomes)
        complete = complete and all(n is not None for n in outcomes)
        return len(targets), emitted, complete

    async def _adopt_active(self, makers: frozenset[str]) -> tuple[int, bool]:
        """Cache and announce the watched makers' active orders the cache does not know."""
        emitted = 0
        async for item in self._rest.active(SOLANA_CHAIN):
            info = active_order(item)
            if info is None or address_key(info.maker) not in makers:
                continue
            order_hash = info.order_hash
            if order_hash in self._orders.waiting or self._cache.get(SOLANA_CHAIN, order_hash):
                continue
            # Fills while away are announced by the check by hash that follows.
            entry = self._cache.put(
                SOLANA_CHAIN, replace(info, remaining_maker_amount=info.making_amount)
            )
            created = {
                "orderHash": order_hash,
                "maker": info.maker,
                "transactionSignature": item.get("txSignature"),
                "order": item.get("order"),
            }
            self._orders.announce(entry, created, time.time(), True)
            emitted += 1
        return emitted, self._rest.listed_all

    async def _check(self, order_hash: str) -> int | None:
        """One cached open order by hash; None when REST did not answer."""
        found = await self._rest.status_as(SOLANA_CHAIN, order_hash, SolanaStatus.parse)
        if found is None:
            return None
        entry = self._cache.get(SOLANA_CHAIN, order_hash)
        if entry is None or entry.final or order_hash in self._orders.waiting:
            return 0
        return self.fills(entry, found) + self.settle(entry, found)
