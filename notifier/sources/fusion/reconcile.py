"""Catch-up over REST after a (re)connect and on start: a fill, cancel or invalidation missed
while a chain was disconnected (or the daemon stopped) is emitted once, with ``reconciled=True``.

Three steps. (1) Orders of each watched maker created since the chain was last known connected
(its watermark, less a margin) are listed with orders-by-maker; one the cache does not know was
created while nobody listened, so it is cached and announced with ``order_created`` and then the
event its REST status stands for. (2) Active orders of the watched makers are cached. (3) Every
cached open order of those makers is checked by hash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, replace
from typing import Any

from notifier.sources.fusion.rest import OrderRest
from notifier.sources.fusion.store import CachedOrder, OrderCache
from notifier.sources.fusion.wire import (
    FINAL_STATUSES,
    MAKER_ADDRESS,
    RECONCILED_EVENTS,
    Listed,
    RestStatus,
    order_info,
    state_key,
)
from notifier.tokens import address_key

__all__ = ["CatchUp", "Deliver", "Reconciler"]

log = logging.getLogger(__name__)

# (chain, event, order hash, result, at): hands a reconciled event to the feed's delivery.
Deliver = Callable[[int, str, str, Mapping[str, Any], float], None]


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What one catch-up of a chain did."""

    checked: int  # cached open orders checked by hash
    emitted: int  # missed events emitted
    synced: bool  # every watched maker's listing succeeded: the watermark may move


class Reconciler:
    """Catches one feed's chains up on what they missed, through ``rest`` into ``cache``."""

    def __init__(
        self,
        cache: OrderCache,
        rest: OrderRest,
        deliver: Deliver,
        looking_up: Container[tuple[int, str]],
        limit: int,
    ) -> None:
        self.makers: frozenset[str] = frozenset()  # lower-cased; empty = every maker
        self._cache = cache
        self._rest = rest
        self._deliver = deliver
        self._looking_up = looking_up  # (chain, hash) of live events waiting for a look-up
        self._limit = limit
        self._bad_makers: set[str] = set()

    async def catch_up(self, chain: int, since: float) -> CatchUp:
        """Catch ``chain`` up on orders created or changed since ``since`` (wall clock)."""
        makers = self.makers
        emitted = 0
        synced = True
        if makers:
            listed = await self._sync_makers(chain, makers, since)
            synced = listed is not None
            emitted += listed or 0
            # After a failed listing, caching active orders silently would keep the retry from
            # announcing the ones created while away.
            if synced:
                await self._sync_active(chain)
        else:
            log.info(
                "order feed chain %d: a rule has no maker filter; orders created while "
                "disconnected cannot be listed (paging every maker's orders is not feasible), "
                "only cached orders are reconciled",
                chain,
            )
        targets = self._cache.candidates(chain, makers, self._limit)
        outcomes = await asyncio.gather(
            *(self._reconcile_one(chain, entry.info.order_hash) for entry in targets)
        )
        emitted += sum(outcomes)
        return CatchUp(checked=len(targets), emitted=emitted, synced=synced)

    async def _sync_makers(self, chain: int, makers: frozenset[str], since: float) -> int | None:
        """List each maker's orders created since ``since``; adopt the unknown ones.

        Answers the number of events emitted, or None when any maker's listing failed.
        """
        since_ms = int(since * 1000)
        emitted = 0
        complete = True
        for maker in sorted(makers):
            if not MAKER_ADDRESS.fullmatch(maker):
                if maker not in self._bad_makers:
                    self._bad_makers.add(maker)
                    log.warning("order feed: maker %r is not an address; not listed", maker)
                continue
            listed = await self._rest.by_maker(chain, maker, since_ms)
            if listed is None:
                complete = False
                continue
            emitted += await self._adopt_all(chain, listed)
        return emitted if complete else None

    def _unknown_order(self, chain: int, order_hash: str) -> bool:
        key = (chain, order_hash)
        return key not in self._looking_up and self._cache.get(chain, order_hash) is None

    async def _adopt_all(self, chain: int, listed: list[Listed]) -> int:
        """Cache and announce the listed orders the feed never saw, oldest first."""
        fresh = [entry for entry in listed if self._unknown_order(chain, entry.order_hash)]
        # The full order (receiver, deadline) comes from the status by hash, as for any unknown
        # hash; past the reconcile limit the listing's own fields have to do.
        looked_up = await asyncio.gather(
            *(self._rest.status(chain, e.order_hash) for e in fresh[: self._limit])
        )
        emitted = 0
        for n in sorted(range(len(fresh)), key=lambda n: fresh[n].created_ms or 0):
            entry = fresh[n]
            if not self._unknown_order(chain, entry.order_hash):
                continue  # came in live while we were asking
            found = looked_up[n] if n < len(looked_up) else None
            if found is None or found.info is None:
                found = entry.found
            emitted += self._adopt(chain, entry, found)
        return emitted

    def _adopt(self, chain: int, listed: Listed, found: RestStatus) -> int:
        """Announce an order created while nobody listened: ``order_created``, then its status.

        Both go out with ``reconciled=True``. The created event is emitted because rules may
        watch ``order_created``; it comes first, as live. Being in the (persisted) cache is what
        keeps a later catch-up from announcing it again; the fill is guarded by its state.
        """
        info = found.info
        if info is None:
            return 0
        order_hash = listed.order_hash
        making = info.making_amount
        self._cache.put(chain, replace(info, remaining_maker_amount=making))
        created: dict[str, Any] = {
            "orderHash": order_hash,
            "status": found.status,
            "remainingMakerAmount": str(making),
        }
        if listed.created_at is not None:
            created["createdAt"] = listed.created_at
        self._deliver(chain, "order_created", order_hash, created, time.time())
        entry = self._cache.get(chain, order_hash)
        return 1 + (entry is not None and self._catch_up(chain, entry, found))

    async def _reconcile_one(self, chain: int, order_hash: str) -> bool:
        found = await self._rest.status(chain, order_hash)
        entry = self._cache.get(chain, order_hash)
        if found is None or entry is None or entry.final:
            return False
        return self._catch_up(chain, entry, found)

    def _catch_up(self, chain: int, entry: CachedOrder, found: RestStatus) -> bool:
        """Emit the event REST's status stands for, unless the order is already in that state."""
        order_hash = entry.info.order_hash
        event = RECONCILED_EVENTS.get(found.status)
        if event is None:
            if found.status in FINAL_STATUSES:  # expired: nothing to announce, stop checking it
                self._cache.record(chain, order_hash, state=None, final=True, remaining=None)
            return False
        key = state_key(event, found.remaining)
        if key == entry.state:
            return False
        if found.remaining is None and (entry.state or "").startswith(f"{event}:"):
            return False  # a partial fill already seen live; REST cannot tell us more
        result: dict[str, Any] = {"orderHash": order_hash, "status": found.status}
        if found.remaining is not None:
            result["remainingMakerAmount"] = str(found.remaining)
        self._deliver(chain, event, order_hash, result, time.time())
        return True

    async def _sync_active(self, chain: int) -> None:
        """Cache active orders of the wanted makers created while the feed was away."""
        async for item in self._rest.active(chain):
            order_hash = item.get("orderHash") if isinstance(item, dict) else None
            if not isinstance(order_hash, str) or self._cache.get(chain, order_hash):
                continue
            info = order_info(order_hash, item)
            if info is not None and address_key(info.maker) in self.makers:
                self._cache.put(chain, info)
