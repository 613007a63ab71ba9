"""The order feed (UPSTREAMS §1): one websocket per chain, events filled in from the order cache.

Most order events carry only ``orderHash``. Orders seen in ``order_created`` are kept in a
bounded cache persisted to the store, unknown hashes are looked up over REST off the reader, and
after a reconnect (and on start) each chain is caught up over REST (``reconcile``).

Nothing an upstream sends grows memory without bound: frames are at most ``MAX_FRAME`` bytes,
and events waiting for a look-up are bounded by ``OrderLookups`` (``lookups.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any, Self

from notifier.backoff import BackoffPolicy
from notifier.config import FusionSettings
from notifier.events import (
    FINAL_ORDER_EVENTS,
    ORDER_EVENTS,
    SOLANA_CHAIN,
    EventSink,
    Interest,
    OrderEvent,
    OrderInfo,
)
from notifier.metrics import Metrics
from notifier.sources.base import FeedHealth, FeedStatus, SourceContext
from notifier.sources.fusion.frames import FrameReader
from notifier.sources.fusion.lookups import OrderLookups, Pending
from notifier.sources.fusion.reconcile import Reconciler
from notifier.sources.fusion.rest import OrderRest
from notifier.sources.fusion.solana import SolanaOrders
from notifier.sources.fusion.solana_wire import SOLANA_VERSION
from notifier.sources.fusion.store import OrderCache, SyncMarks
from notifier.sources.fusion.wire import int_or_none, order_info, state_key
from notifier.sources.websocket import LinkOptions, Socket, WebSocketLink, open_session
from notifier.store import Store
from notifier.tokens import address_key

__all__ = ["SINCE_MARGIN", "OrderFeed"]

log = logging.getLogger(__name__)

MAX_FRAME = 1 << 20  # an order event is a few KB; a bigger frame drops the connection
FIRST_LOOKBACK = 3600.0  # no watermark yet (first start ever): list orders this far back
# Subtracted from the watermark: server/local clock skew, a loss the heartbeat noticed late, a
# watermark persisted up to WATERMARK_EVERY before a crash. Re-listing costs little: known
# orders are skipped.
SINCE_MARGIN = 300.0
WATERMARK_EVERY = 30.0  # a connected chain's watermark is persisted at most this often


class _Link:
    """One chain's websocket and catch-up state."""

    socket: WebSocketLink  # set by the feed right after construction

    def __init__(self, chain: int, seen_until: float | None) -> None:
        self.chain = chain
        self.synced = False  # this connection's catch-up succeeded: live from here on
        self.retry_at: float | None = None  # monotonic time to retry a failed catch-up
        self.seen_until = seen_until  # the watermark (wall clock), None before the first
        self.saved_at = 0.0  # wall-clock value last persisted


class OrderFeed:
    """Every order event of the configured chains, with ``order`` filled in when it can be."""

    name = "order"

    def __init__(
        self,
        settings: FusionSettings,
        sink: EventSink,
        metrics: Metrics,
        store: Store,
        *,
        backoff: BackoffPolicy | None = None,
        reconcile_limit: int = 200,
        reconcile_on_start: bool = False,
        rest_concurrency: int = 4,
        flush_interval: float = 1.0,
        resync_after: float = 60.0,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._key = settings.api_key.get_secret_value()
        self._headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self._ws_base = re.sub(r"^http", "ws", settings.url.rstrip("/"))
        self._backoff = backoff or BackoffPolicy()
        self._reconcile_on_start = reconcile_on_start
        self._flush_interval = flush_interval
        self._resync_after = resync_after
        self._health = FeedHealth("order", sink, metrics)
        self._cache = OrderCache(store, settings.order_cache_size)
        self._marks = SyncMarks(store)
        marks = self._marks.load()
        self._links = {
            chain: _Link(chain, marks.get(chain))
            for chain in dict.fromkeys(settings.chains)
            if chain != SOLANA_CHAIN
        }
        self._frames = FrameReader(ORDER_EVENTS, self._health, log)
        self._socket_options = LinkOptions(
            log,
            self._health,
            self._backoff,
            settings.heartbeat,
            MAX_FRAME,
            self._refresh_health,
            (self._key,),
        )
        for link in self._links.values():
            link.socket = self._socket(link)
        self._reconciling: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rest = OrderRest(
            settings.rest_url, settings.version, self._health, self._key, rest_concurrency
        )
        self._lookups = OrderLookups(
            self._cache, self._rest, self._health, self._deliver, self._spawn
        )
        self._reconciler = Reconciler(
            self._cache,
            self._rest,
            functools.partial(self._deliver, reconciled=True),
            self._lookups.queues,
            reconcile_limit,
        )
        self.reconciliations = 0  # completed catch-ups after reconnects
        self.solana: SolanaOrders | None = None  # chain 501, beside the EVM chains
        if SOLANA_CHAIN in settings.chains:
            rest = OrderRest(
                settings.rest_url, SOLANA_VERSION, self._health, self._key, rest_concurrency
            )
            self.solana = SolanaOrders(
                self._ws_base, sink, health=self._health, cache=self._cache, rest=rest,
                store=store, options=self._socket_options, spawn=self._spawn,
                reconcile_on_start=reconcile_on_start,
                reconcile_limit=reconcile_limit, resync_after=resync_after, tick=flush_interval,
            )  # fmt: skip

    @classmethod
    def create(cls, context: SourceContext) -> Self | None:
        settings = context.settings.fusion
        if not settings.enabled:
            return None
        # The daemon reconciles on start too: fills while it was stopped are still notified
        # (once: the persisted order state and the outbox dedup key guard repeats).
        return cls(settings, context.sink, context.metrics, context.store, reconcile_on_start=True)

    def set_interest(self, interest: Interest) -> None:
        """Only the makers matter: they choose which orders are listed and reconciled."""
        self._reconciler.makers = frozenset(map(address_key, interest.makers))
        if self.solana is not None:
            self.solana.makers = self._reconciler.makers

    @property
    def dropped_waiting(self) -> int:
        """Events dropped because the look-up waiting room was full."""
        return self._lookups.dropped

    def cached_order(self, chain: int, order_hash: str) -> OrderInfo | None:
        entry = self._cache.get(chain, order_hash)
        return entry.info if entry else None

    def status(self) -> FeedStatus:
        live = sum(1 for socket in self._sockets().values() if socket.ws is not None)
        return self._health.status(connections=live, tracked=len(self._cache))

    async def run(self) -> None:
        async with open_session(self._headers) as session:
            self._rest.start(session)
            try:
                for link in self._links.values():
                    self._spawn(link.socket.run(session), f"fusion-chain-{link.chain}")
                if self.solana is not None:
                    self._spawn(self.solana.run(session), f"fusion-chain-{SOLANA_CHAIN}")
                while True:
                    await asyncio.sleep(self._flush_interval)
                    self._cache.flush()
                    self._tick()
            finally:
                now = time.time()
                for link in self._links.values():
                    if link.socket.ws is not None and link.synced:
                        self._mark_seen(link, now, persist=True)
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                self._rest.stop()
                self._cache.flush()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _tick(self) -> None:
        """Advance the watermark of caught-up chains; retry a failed catch-up when due."""
        now, mono = time.time(), time.monotonic()
        for link in self._links.values():
            if link.socket.ws is None:
                continue
            if link.synced:
                self._mark_seen(link, now, persist=now - link.saved_at >= WATERMARK_EVERY)
            elif link.retry_at is not None and mono >= link.retry_at:
                running = self._reconciling.get(link.chain)
                if running is None or running.done():
                    link.retry_at = None
                    self._start_reconcile(link.chain)

    def _mark_seen(self, link: _Link, at: float, *, persist: bool) -> None:
        link.seen_until = at
        if persist and self._marks.save(link.chain, at):
            link.saved_at = at

    def _sockets(self) -> dict[int, WebSocketLink]:
        sockets = {chain: link.socket for chain, link in self._links.items()}
        if self.solana is not None:
            sockets[SOLANA_CHAIN] = self.solana.socket
        return sockets

    def _refresh_health(self) -> None:
        sockets = self._sockets()
        failed = [chain for chain, socket in sockets.items() if socket.failed]
        if failed:
            self._health.set(False, f"chain(s) {', '.join(map(str, failed))} disconnected")
        elif sockets and all(socket.connects for socket in sockets.values()):
            self._health.set(True, f"{len(sockets)} chain(s) connected")

    def _socket(self, link: _Link) -> WebSocketLink:
        url = f"{self._ws_base}/{self._settings.version}/{link.chain}"
        return WebSocketLink(
            url,
            f"order feed {url}",
            self._socket_options,
            on_frame=functools.partial(self._on_frame, link.chain),
            on_malformed=functools.partial(self._frames.malformed, link.chain),
            on_connect=functools.partial(self._connected, link),
            on_lost=functools.partial(self._lost, link),
        )

    @asynccontextmanager
    async def _connected(self, link: _Link, ws: Socket) -> AsyncIterator[None]:
        """Catch up on what was missed, unless this is the first connection and no catch-up
        on start was asked for: then the chain is live from here on."""
        if link.socket.connects > 1 or self._reconcile_on_start:
            self._start_reconcile(link.chain)
        else:
            link.synced = True
        yield

    def _lost(self, link: _Link) -> None:
        if link.synced:  # everything up to the loss was seen live
            self._mark_seen(link, time.time(), persist=True)
        link.synced = False
        link.retry_at = None

    def _on_frame(self, chain: int, data: str | bytes) -> None:
        """Parse one frame; never awaits, so the reader is never the slow one."""
        found = self._frames.read(chain, data)
        if found is not None:
            self._on_event(chain, *found, len(data))

    def _on_event(
        self, chain: int, name: str, order_hash: str, result: Mapping[str, Any], size: int
    ) -> None:
        at = time.time()
        if name == "order_created":
            info = order_info(order_hash, result)
            if info is None:
                log.warning(
                    "order feed chain %d: order_created %s lacks order fields", chain, order_hash
                )
            else:
                self._cache.put(chain, info)
        elif self._cache.get(chain, order_hash) is None:
            self._lookups.submit(chain, Pending(name, order_hash, result, at, size))
            return
        self._deliver(chain, name, order_hash, result, at)

    def _deliver(
        self,
        chain: int,
        name: str,
        order_hash: str,
        result: Mapping[str, Any],
        at: float,
        *,
        reconciled: bool = False,
    ) -> None:
        remaining = int_or_none(result.get("remainingMakerAmount"))
        if name == "order_filled":
            remaining = 0
        key = state_key(name, remaining)
        entry = self._cache.get(chain, order_hash)
        if entry is not None and key is not None and key == entry.state and not key.endswith(":"):
            # Already emitted, e.g. reconciled from REST just before the live frame came in.
            log.debug("order feed chain %d: %s %s already emitted", chain, name, order_hash)
            return
        self._cache.record(
            chain, order_hash, state=key, final=name in FINAL_ORDER_EVENTS, remaining=remaining
        )
        self._health.event()
        self._sink.emit(
            OrderEvent(
                chain=chain,
                event=name,
                order_hash=order_hash,
                result=result,
                order=entry.info if entry else None,
                at=at,
                reconciled=reconciled,
            )
        )

    def _start_reconcile(self, chain: int) -> None:
        previous = self._reconciling.get(chain)
        if previous is not None:
            previous.cancel()
        self._reconciling[chain] = self._spawn(self._reconcile(chain), f"fusion-reconcile-{chain}")

    async def _reconcile(self, chain: int) -> None:
        """Catch up on what the feed missed while this chain was disconnected (or stopped).

        A REST failure leaves the chain unsynced: its watermark stays put, and the catch-up is
        retried after ``resync_after`` and on the next reconnect.
        """
        link = self._links[chain]
        connection = link.socket.connects
        done = await self._reconciler.catch_up(chain, self._since(link))
        self._cache.flush()  # what was announced is on disk before the watermark moves
        if link.socket.connects == connection and link.socket.ws is not None:
            if done.synced:
                link.synced = True
                self._mark_seen(link, time.time(), persist=True)
            else:
                link.retry_at = time.monotonic() + self._resync_after
        log.info(
            "order feed chain %d: reconciled %d order(s) over REST, %d missed event(s) emitted%s",
            chain,
            done.checked,
            done.emitted,
            "" if done.synced else "; listing by maker failed, will retry",
        )
        self.reconciliations += 1

    def _since(self, link: _Link) -> float:
        """Where orders-by-maker starts: the watermark less a margin, or a bounded look-back."""
        if link.seen_until is None:
            return time.time() - FIRST_LOOKBACK
        return link.seen_until - SINCE_MARGIN
