"""Fusion on Solana (chain 501, UPSTREAMS §1.7) inside the order feed.

One websocket to ``{fusion.url}/v1.0/501`` (Bearer key, native pings, the feed's reconnect
loop). Its ``create`` / ``fill`` / ``cancel`` events reach rules as ``order_created``,
``order_filled`` (nothing left) or ``order_filled_partially``, and ``order_cancelled``. A fill
counts once per ``(order, transaction)``: the remaining amount is the order's ``srcAmount``
less every distinct fill (``FillLog``). Solana sends no expiry: an order still open after its
``expirationTime`` becomes ``order_invalid`` with ``reason = "expired"``, on the clock, once
(checked over REST first for watched makers). A fill or cancel of an order the cache does not
know waits for its status by hash. After every (re)connect (and on start) the watched makers'
active orders are listed and their cached open orders checked by hash (``SolanaCatchUp``).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from notifier.events import FINAL_ORDER_EVENTS, SOLANA_CHAIN, EventSink, OrderEvent
from notifier.logthrottle import LogLimiter
from notifier.sources.base import FeedHealth
from notifier.sources.fusion.frames import FrameReader
from notifier.sources.fusion.rest import OrderRest
from notifier.sources.fusion.solana_sync import SolanaCatchUp
from notifier.sources.fusion.solana_wire import (
    SOLANA_EVENTS,
    SOLANA_VERSION,
    SolanaStatus,
    TxEvent,
    expires_at,
)
from notifier.sources.fusion.store import CachedOrder, FillLog, OrderCache
from notifier.sources.websocket import LinkOptions, Socket, WebSocketLink
from notifier.store import Store
from notifier.tokens import address_key

__all__ = ["LOOKUP_RETRIES", "SolanaOrders"]

log = logging.getLogger(__name__)

MAX_LOOKUPS = 256  # orders waiting for their status by hash; past it, events are dropped
MAX_WAITING_PER_ORDER = 64
LOOKUP_RETRIES = (0.0, 2.0, 10.0, 30.0, 60.0, 120.0)  # seconds before each look-up attempt

_Waiting = tuple[TxEvent, Mapping[str, Any], float]
Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


class SolanaOrders:
    """Chain 501 of an ``OrderFeed``: shares its health, order cache, session and options."""

    def __init__(
        self,
        ws_base: str,
        sink: EventSink,
        *,
        health: FeedHealth,
        cache: OrderCache,
        rest: OrderRest,
        store: Store,
        options: LinkOptions,
        spawn: Spawn,
        reconcile_on_start: bool,
        reconcile_limit: int,
        resync_after: float,
        tick: float,
    ) -> None:
        self._sink = sink
        self._health = health
        self._cache = cache
        self._rest = rest
        self._reconcile_on_start = reconcile_on_start
        self._resync_after = resync_after
        self._tick = tick
        self._spawn = spawn  # the feed's: its tasks end with the feed
        self._fills = FillLog(store, SOLANA_CHAIN)
        self._frames = FrameReader(SOLANA_EVENTS, health, log)
        self._limited = LogLimiter(log)
        self._sync = SolanaCatchUp(self, cache, rest, reconcile_limit)
        url = f"{ws_base}/{SOLANA_VERSION}/{SOLANA_CHAIN}"
        self.socket = WebSocketLink(
            url,
            f"order feed {url}",
            options,
            on_frame=self._on_frame,
            on_malformed=lambda why, data: self._frames.malformed(SOLANA_CHAIN, why, data),
            on_connect=self._connected,
            on_lost=self._lost,
        )
        self.makers: frozenset[str] = frozenset()  # by ``address_key``; empty = every maker
        self.synced = False  # this connection's catch-up succeeded
        self.reconciliations = 0  # completed catch-ups
        self._retry_at: float | None = None
        self._expiries: list[tuple[float, str]] = []  # (expires at, order hash), a heap
        self.waiting: dict[str, list[_Waiting]] = {}  # order hash -> events behind its look-up
        self._checking: set[str] = set()  # expiries being confirmed over REST
        self._reconciling: asyncio.Task[None] | None = None
        for entry in cache.candidates(SOLANA_CHAIN, frozenset(), cache.capacity):
            self.watch_expiry(entry)

    def wanted(self, maker: str | None) -> bool:
        return not self.makers or (maker is not None and address_key(maker) in self.makers)

    async def run(self, session: aiohttp.ClientSession) -> None:
        self._rest.start(session)
        self._spawn(self.socket.run(session), "fusion-solana")
        try:
            while True:
                await asyncio.sleep(self._tick)
                self.expire_due(time.time())
                if self._retry_at is not None and time.monotonic() >= self._retry_at:
                    self._retry_at = None
                    self._start_reconcile()
                self._fills.flush()
        finally:
            self._rest.stop()
            self._fills.flush()

    # -- the websocket ----------------------------------------------------------------------

    @asynccontextmanager
    async def _connected(self, ws: Socket) -> AsyncIterator[None]:
        if self.socket.connects > 1 or self._reconcile_on_start:
            self._start_reconcile()
        else:
            self.synced = True
        yield

    def _lost(self) -> None:
        self.synced = False
        self._retry_at = None

    def _on_frame(self, data: str | bytes) -> None:
        found = self._frames.read(SOLANA_CHAIN, data)
        if found is None:
            return
        kind, order_hash, payload = found
        event = TxEvent.parse(kind, order_hash, payload)
        if event is None:
            self._frames.malformed(SOLANA_CHAIN, f"{kind} lacks the fields it needs", data)
            return
        self._on_event(event, payload, time.time())

    def _on_event(self, event: TxEvent, payload: Mapping[str, Any], at: float) -> None:
        waiting = self.waiting.get(event.order_hash)
        if waiting is not None:  # keep the order's events in order behind its look-up
            waiting.append((event, payload, at))
            if len(waiting) > MAX_WAITING_PER_ORDER:
                self._drop(waiting.pop(0)[0], "too many events of one order waiting")
            return
        entry = self._cache.get(SOLANA_CHAIN, event.order_hash)
        if event.info is not None:  # create
            if entry is None:  # else seen already (a second commitment, or a catch-up)
                self.announce(self._cache.put(SOLANA_CHAIN, event.info), payload, at, False)
        elif entry is not None:
            self.apply(entry, event, payload, at)
        elif not self.wanted(event.maker):
            self._health.event(at)  # no rule can match an order of another maker
        elif not self._rest.open or len(self.waiting) >= MAX_LOOKUPS:
            self._drop(event, "cannot look the order up now")
        else:
            self.waiting[event.order_hash] = [(event, payload, at)]
            self._spawn(self._look_up(event.order_hash), "fusion-solana-lookup")

    def _drop(self, event: TxEvent, why: str) -> None:
        self._health.errors += 1
        self._limited.warning(
            why,
            "order feed chain %d: %s: %s of unknown order %s dropped",
            SOLANA_CHAIN,
            why,
            event.kind,
            event.order_hash,
        )

    async def _look_up(self, order_hash: str) -> None:
        """The status of an order the cache does not know; retried, then its events dropped."""
        found: SolanaStatus | None = None
        try:
            for delay in LOOKUP_RETRIES:
                await asyncio.sleep(delay)
                found = await self._rest.status_as(SOLANA_CHAIN, order_hash, SolanaStatus.parse)
                if found is not None and found.info is not None:
                    break
        finally:
            waiting = self.waiting.pop(order_hash, [])
        if found is None or found.info is None:
            for event, _, _ in waiting:
                self._drop(event, "order status unavailable")
            return
        entry = self._cache.put(SOLANA_CHAIN, found.info)
        self.watch_expiry(entry)
        live = frozenset(event.fill.tx for event, _, _ in waiting if event.fill is not None)
        self._sync.fills(entry, found, skip=live)
        for event, payload, at in waiting:
            if event.info is None:
                self.apply(entry, event, payload, at)
        self._sync.settle(entry, found)

    # -- events -----------------------------------------------------------------------------

    def announce(
        self, entry: CachedOrder, payload: Mapping[str, Any], at: float, reconciled: bool
    ) -> None:
        """``order_created`` for a newly cached order."""
        self.watch_expiry(entry)
        making = entry.info.making_amount
        result = {**payload, "remainingMakerAmount": str(making)}
        self.emit(entry, "order_created", result, at, reconciled=reconciled, remaining=making)

    def apply(
        self,
        entry: CachedOrder,
        event: TxEvent,
        payload: Mapping[str, Any],
        at: float,
        *,
        reconciled: bool = False,
    ) -> bool:
        """A fill or cancel of a cached order; False when it was seen already."""
        if entry.final:
            return False
        if event.fill is None:
            self.emit(entry, "order_cancelled", dict(payload), at, reconciled=reconciled)
            return True
        order_hash, fill = entry.info.order_hash, event.fill
        if self._fills.seen(order_hash, fill.tx):
            return False
        filled = self._fills.add(order_hash, fill.tx, fill.amount)
        remaining = max(entry.info.making_amount - filled, 0)
        name = "order_filled" if remaining == 0 else "order_filled_partially"
        result = {**payload, "remainingMakerAmount": str(remaining)}
        self.emit(entry, name, result, at, reconciled=reconciled, remaining=remaining)
        return True

    def emit(
        self,
        entry: CachedOrder,
        name: str,
        result: Mapping[str, Any],
        at: float,
        *,
        reconciled: bool,
        remaining: int | None = None,
    ) -> None:
        order_hash = entry.info.order_hash
        final = name in FINAL_ORDER_EVENTS
        self._cache.record(SOLANA_CHAIN, order_hash, state=name, final=final, remaining=remaining)
        if final:
            self._fills.forget(order_hash)
        self._health.event(at)
        self._sink.emit(
            OrderEvent(
                chain=SOLANA_CHAIN,
                event=name,
                order_hash=order_hash,
                result=result,
                order=entry.info,
                at=at,
                reconciled=reconciled,
            )
        )

    # -- expiry -----------------------------------------------------------------------------

    def watch_expiry(self, entry: CachedOrder) -> None:
        at = expires_at(entry.info)
        if at is not None and not entry.final:
            heapq.heappush(self._expiries, (at, entry.info.order_hash))

    def expire_due(self, now: float) -> None:
        """Orders past their ``expirationTime`` (the SDK's ``isExpiredAt``: strictly after)."""
        while self._expiries and self._expiries[0][0] < now:
            _, order_hash = heapq.heappop(self._expiries)
            entry = self._cache.get(SOLANA_CHAIN, order_hash)
            if entry is None or entry.final or order_hash in self.waiting:
                continue
            if order_hash in self._checking:
                continue
            if self.wanted(entry.info.maker) and self._rest.open:
                self._checking.add(order_hash)
                self._spawn(self._confirm_expiry(order_hash), "fusion-solana-expiry")
            else:
                self.expired(entry, now)

    async def _confirm_expiry(self, order_hash: str) -> None:
        """A fill or cancel missed just before the deadline wins over the expiry; without an
        answer from REST the clock decides."""
        try:
            found = await self._rest.status_as(SOLANA_CHAIN, order_hash, SolanaStatus.parse)
        finally:
            self._checking.discard(order_hash)
        entry = self._cache.get(SOLANA_CHAIN, order_hash)
        if entry is None or entry.final:
            return
        if found is None:
            self.expired(entry, time.time())
        else:
            self._sync.fills(entry, found)
            self._sync.settle(entry, found)

    def expired(self, entry: CachedOrder, at: float) -> None:
        if entry.final:
            return
        result = {
            "orderHash": entry.info.order_hash,
            "reason": "expired",
            "expirationTime": entry.info.deadline,
        }
        self.emit(entry, "order_invalid", result, at, reconciled=False)

    # -- catch-up ---------------------------------------------------------------------------

    def _start_reconcile(self) -> None:
        if self._reconciling is not None:
            self._reconciling.cancel()
        self._reconciling = self._spawn(self._reconcile(), "fusion-solana-reconcile")

    async def _reconcile(self) -> None:
        connection = self.socket.connects
        checked, emitted, complete = await self._sync.catch_up(self.makers)
        self._cache.flush()
        self._fills.flush()
        if self.socket.connects == connection and self.socket.ws is not None:
            if complete:
                self.synced = True
            else:
                self._retry_at = time.monotonic() + self._resync_after
        log.info(
            "order feed chain %d: reconciled %d order(s) over REST, %d missed event(s) emitted%s",
            SOLANA_CHAIN,
            checked,
            emitted,
            "" if complete else "; REST failed, will retry",
        )
        self.reconciliations += 1
