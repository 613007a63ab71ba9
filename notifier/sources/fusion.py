"""1inch Fusion order feed (UPSTREAMS §1): one websocket per chain, an order cache, REST catch-up.

Most order events carry only ``orderHash``. Orders seen in ``order_created`` are kept in a
bounded cache persisted to SQLite, unknown hashes are looked up over REST off the reader, and
after a reconnect (and on start) the orders the rules care about are reconciled over REST so that
a fill, cancel or invalidation missed while disconnected is emitted once, with ``reconciled=True``.

Reconciling has three steps. (1) Orders of each watched maker created since the chain was last
known connected (a watermark persisted per chain) are listed with orders-by-maker; one the cache
does not know was created while nobody listened, so it is cached and announced with
``order_created`` and then the event its REST status stands for. (2) Active orders of the
watched makers are cached. (3) Every cached open order of those makers is checked by hash.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Self

import aiohttp
import orjson

from notifier.backoff import BackoffPolicy
from notifier.config import FusionSettings
from notifier.events import (
    FINAL_ORDER_EVENTS,
    ORDER_EVENTS,
    EventSink,
    Interest,
    OrderEvent,
    OrderInfo,
)
from notifier.metrics import Metrics
from notifier.sources.base import FeedHealth, FeedStatus, SourceContext, describe_error
from notifier.sources.websocket import LinkOptions, Socket, WebSocketLink, open_session
from notifier.store import Store

__all__ = ["CachedOrder", "OrderCache", "OrderFeed", "SyncMarks"]

log = logging.getLogger(__name__)

# REST order status -> the live event it stands for when the feed missed it. ``expired`` has no
# live counterpart (nothing is emitted, the order just stops being reconciled); ``pending`` and
# ``not-enough-balance-or-allowance`` are not transitions worth a synthetic event.
RECONCILED_EVENTS = {
    "filled": "order_filled",
    "partially-filled": "order_filled_partially",
    "cancelled": "order_cancelled",
    "false-predicate": "order_invalid",
    "invalid-signature": "order_invalid",
    "wrong-permit": "order_invalid",
}
FINAL_STATUSES = frozenset(
    {"filled", "cancelled", "expired", "false-predicate", "invalid-signature", "wrong-permit"}
)

MAX_PENDING_LOOKUPS = 1000  # beyond this, events for unknown hashes go out without order info
MISSING_TTL = 600.0  # a hash REST could not resolve is not asked again for this long
ACTIVE_PAGE_LIMIT = 500
ACTIVE_MAX_PAGES = 20
MAKER_PAGE_LIMIT = 500  # the SDK's PaginationRequest allows 1..500
MAKER_MAX_PAGES = 10
FIRST_LOOKBACK = 3600.0  # no watermark yet (first start ever): list orders this far back
# Subtracted from the watermark: server/local clock skew, a loss the heartbeat noticed late, a
# watermark persisted up to WATERMARK_EVERY before a crash. Re-listing costs little: known
# orders are skipped.
SINCE_MARGIN = 300.0
WATERMARK_EVERY = 30.0  # a connected chain's watermark is persisted at most this often
REST_TIMEOUT = aiohttp.ClientTimeout(total=15)
_HASH = re.compile(r"[0-9A-Za-z_-]{1,200}")
_ADDRESS = re.compile(r"0x[0-9a-f]{40}")


def state_key(event: str, remaining: int | None) -> str | None:
    """The state a fill/cancel/invalidation leaves an order in; None for other events."""
    if event == "order_filled_partially":
        return f"{event}:{'' if remaining is None else remaining}"
    return event if event in FINAL_ORDER_EVENTS else None


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"not an integer: {value!r}")
    return int(value)


def _int_or_none(value: Any) -> int | None:
    try:
        return _as_int(value)
    except (TypeError, ValueError):
        return None


def _created_ms(raw: Any) -> int | None:
    """``createdAt`` as unix ms: an ISO string (Fusion), or already ms (Fusion+)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def listed_info(order_hash: str, maker: str, item: Mapping[str, Any]) -> OrderInfo | None:
    """An ``OrderInfo`` from an orders-by-maker item, which has no ``order`` struct.

    ``OrderFillsByMakerOutput`` gives ``makerAsset``, ``takerAsset``, ``makerAmount`` and
    ``minTakerAmount``; the SDK's fixtures show the latter two equal to the order's
    ``makingAmount`` / ``takingAmount``. Receiver and deadline are not listed.
    """
    try:
        return OrderInfo(
            order_hash=order_hash,
            maker=maker,
            receiver="",
            maker_asset=str(item["makerAsset"]),
            taker_asset=str(item["takerAsset"]),
            making_amount=_as_int(item["makerAmount"]),
            taking_amount=_as_int(item["minTakerAmount"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def order_info(order_hash: str, payload: Mapping[str, Any]) -> OrderInfo | None:
    """An ``OrderInfo`` from an ``order_created`` result, an active order or a REST status."""
    order = payload.get("order")
    if not isinstance(order, Mapping):
        return None
    deadline = payload.get("deadline")
    try:
        return OrderInfo(
            order_hash=order_hash,
            maker=str(order["maker"]),
            receiver=str(order.get("receiver", "")),
            maker_asset=str(order["makerAsset"]),
            taker_asset=str(order["takerAsset"]),
            making_amount=_as_int(order["makingAmount"]),
            taking_amount=_as_int(order["takingAmount"]),
            deadline=deadline if isinstance(deadline, str) else None,
            remaining_maker_amount=_int_or_none(payload.get("remainingMakerAmount")),
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class RestStatus:
    """The parts of ``GET …/order/status/{hash}`` (or of an orders-by-maker item) the feed uses."""

    status: str
    info: OrderInfo | None
    remaining: int | None

    @classmethod
    def parse(
        cls, order_hash: str, body: Mapping[str, Any], maker: str | None = None
    ) -> Self | None:
        """``maker`` (the listed maker) reads an orders-by-maker item's flat fields."""
        status = body.get("status")
        if not isinstance(status, str):
            return None
        remaining = _int_or_none(body.get("remainingMakerAmount"))
        info = order_info(order_hash, body)
        if info is None and maker is not None:
            info = listed_info(order_hash, maker, body)
        fills = body.get("fills")
        if remaining is None and info is not None and isinstance(fills, list):
            filled = sum(
                _int_or_none(f.get("filledMakerAmount")) or 0 for f in fills if isinstance(f, dict)
            )
            remaining = max(info.making_amount - filled, 0)
        if info is not None and remaining is not None:
            info = replace(info, remaining_maker_amount=remaining)
        return cls(status=status, info=info, remaining=remaining)


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
            if makers and entry.info.maker.lower() not in makers:
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
                    """DELETE FROM fusion_orders WHERE rowid NOT IN
                    (SELECT rowid FROM fusion_orders ORDER BY touched DESC LIMIT ?)""",
                    (self.capacity,),
                )


@dataclass(frozen=True, slots=True)
class _Listed:
    """One usable item of ``GET …/order/maker/{address}``."""

    order_hash: str
    created_at: str | None
    created_ms: int | None
    found: RestStatus

    @classmethod
    def parse(cls, maker: str, item: Any) -> Self | None:
        if not isinstance(item, dict):
            return None
        order_hash = item.get("orderHash")
        if not isinstance(order_hash, str) or not _HASH.fullmatch(order_hash):
            return None
        found = RestStatus.parse(order_hash, item, maker)
        if found is None or found.info is None:
            return None
        created = item.get("createdAt")
        return cls(
            order_hash=order_hash,
            created_at=created if isinstance(created, str) else None,
            created_ms=_created_ms(created),
            found=found,
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


@dataclass(frozen=True, slots=True)
class _Pending:
    """A live event waiting for the REST look-up of its order."""

    event: str
    order_hash: str
    result: Mapping[str, Any]
    at: float


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
        self._rest_base = settings.rest_url.rstrip("/")
        self._backoff = backoff or BackoffPolicy()
        self._reconcile_limit = reconcile_limit
        self._reconcile_on_start = reconcile_on_start
        self._rest_concurrency = rest_concurrency
        self._flush_interval = flush_interval
        self._resync_after = resync_after
        self._health = FeedHealth("order", sink, metrics)
        self._cache = OrderCache(store, settings.order_cache_size)
        self._marks = SyncMarks(store)
        marks = self._marks.load()
        self._links = {
            chain: _Link(chain, marks.get(chain)) for chain in dict.fromkeys(settings.chains)
        }
        self._socket_options = LinkOptions(
            log,
            self._health,
            self._backoff,
            settings.heartbeat,
            8 << 20,
            self._refresh_health,
            (self._key,),
        )
        for link in self._links.values():
            link.socket = self._socket(link)
        self._makers: frozenset[str] = frozenset()
        self._bad_makers: set[str] = set()
        self._lookups: dict[tuple[int, str], list[_Pending]] = {}
        self._missing: dict[tuple[int, str], float] = {}
        self._reconciling: dict[int, asyncio.Task[None]] = {}
        self._unknown_events: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.reconciliations = 0  # completed catch-ups after reconnects
        self._rest_slots: asyncio.Semaphore | None = None

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
        self._makers = frozenset(maker.lower() for maker in interest.makers)

    def cached_order(self, chain: int, order_hash: str) -> OrderInfo | None:
        entry = self._cache.get(chain, order_hash)
        return entry.info if entry else None

    def status(self) -> FeedStatus:
        live = sum(1 for link in self._links.values() if link.socket.ws is not None)
        return self._health.status(connections=live, tracked=len(self._cache))

    async def run(self) -> None:
        async with open_session(self._headers) as session:
            self._session = session
            self._rest_slots = asyncio.Semaphore(self._rest_concurrency)
            try:
                for link in self._links.values():
                    self._spawn(link.socket.run(session), f"fusion-chain-{link.chain}")
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
                self._session = None
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

    def _refresh_health(self) -> None:
        links = list(self._links.values())
        failed = [link.chain for link in links if link.socket.failed]
        if failed:
            self._health.set(False, f"chain(s) {', '.join(map(str, failed))} disconnected")
        elif links and all(link.socket.connects for link in links):
            self._health.set(True, f"{len(links)} chain(s) connected")

    def _socket(self, link: _Link) -> WebSocketLink:
        url = f"{self._ws_base}/{self._settings.version}/{link.chain}"
        return WebSocketLink(
            url,
            f"order feed {url}",
            self._socket_options,
            on_frame=functools.partial(self._on_frame, link.chain),
            on_malformed=functools.partial(self._malformed, link.chain),
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
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._malformed(chain, "not JSON", data)
            return
        if not isinstance(frame, dict):
            self._malformed(chain, "not an object", data)
            return
        if "event" in frame:
            name = frame["event"]
            # types.ts and every fixture say ``result``; the README says ``data``.
            payload = frame.get("result", frame.get("data"))
            if not isinstance(name, str) or not isinstance(payload, dict):
                self._malformed(chain, "event without an object result", data)
            elif name not in ORDER_EVENTS:
                self._unknown(chain, name)
            elif not isinstance(payload.get("orderHash"), str) or not payload["orderHash"]:
                self._malformed(chain, f"{name} without orderHash", data)
            else:
                self._on_event(chain, name, payload["orderHash"], payload)
        elif isinstance(frame.get("method"), str):
            log.debug("order feed chain %d: RPC response to %s", chain, frame["method"])
        else:
            self._malformed(chain, "neither event nor method", data)

    def _on_event(self, chain: int, name: str, order_hash: str, result: Mapping[str, Any]) -> None:
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
            self._look_up_then_deliver(chain, _Pending(name, order_hash, result, at))
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
        remaining = _int_or_none(result.get("remainingMakerAmount"))
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

    def _look_up_then_deliver(self, chain: int, pending: _Pending) -> None:
        key = (chain, pending.order_hash)
        waiting = self._lookups.get(key)
        if waiting is not None:  # keep per-order order: deliver behind the first one
            waiting.append(pending)
            return
        missing_since = self._missing.get(key)
        if missing_since is not None and time.monotonic() - missing_since > MISSING_TTL:
            del self._missing[key]
            missing_since = None
        if (
            self._session is None
            or missing_since is not None
            or len(self._lookups) >= MAX_PENDING_LOOKUPS
            or not _HASH.fullmatch(pending.order_hash)
        ):
            self._deliver(chain, pending.event, pending.order_hash, pending.result, pending.at)
            return
        self._lookups[key] = [pending]
        self._spawn(self._look_up(chain, pending.order_hash), f"fusion-lookup-{chain}")

    async def _look_up(self, chain: int, order_hash: str) -> None:
        key = (chain, order_hash)
        try:
            found = await self._fetch_status(chain, order_hash)
        except asyncio.CancelledError:
            self._lookups.pop(key, None)
            raise
        if found is not None and found.info is not None:
            self._cache.put(chain, found.info)
        else:
            if len(self._missing) >= MAX_PENDING_LOOKUPS:
                self._missing.clear()
            self._missing[key] = time.monotonic()
        for pending in self._lookups.pop(key, []):
            self._deliver(chain, pending.event, pending.order_hash, pending.result, pending.at)

    async def _get_json(self, url: str, params: Mapping[str, int] | None = None) -> Any:
        """GET a JSON body over REST; None (logged) on any failure."""
        session, slots = self._session, self._rest_slots
        if session is None or slots is None:
            return None
        async with slots:
            try:
                async with session.get(url, params=params, timeout=REST_TIMEOUT) as response:
                    if response.status != 200:
                        level = logging.INFO if response.status == 404 else logging.WARNING
                        log.log(level, "order REST %s: HTTP %d", url, response.status)
                        if response.status != 404:
                            self._health.errors += 1
                        return None
                    body = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._health.errors += 1
                log.warning("order REST %s failed: %s", url, describe_error(exc, self._key))
                return None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            self._health.malformed()
            log.warning("order REST %s: body is not JSON", url)
            return None

    async def _fetch_status(self, chain: int, order_hash: str) -> RestStatus | None:
        url = f"{self._rest_base}/orders/{self._settings.version}/{chain}/order/status/{order_hash}"
        body = await self._get_json(url)
        found = RestStatus.parse(order_hash, body) if isinstance(body, dict) else None
        if body is not None and found is None:
            self._health.malformed()
            log.warning("order REST %s: no status in the response", url)
        return found

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
        makers = self._makers
        emitted = 0
        synced = True
        if makers:
            listed = await self._sync_makers(chain, makers, self._since(link))
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
        targets = self._cache.candidates(chain, makers, self._reconcile_limit)
        outcomes = await asyncio.gather(
            *(self._reconcile_one(chain, entry.info.order_hash) for entry in targets)
        )
        emitted += sum(outcomes)
        self._cache.flush()  # what was announced is on disk before the watermark moves
        if link.socket.connects == connection and link.socket.ws is not None:
            if synced:
                link.synced = True
                self._mark_seen(link, time.time(), persist=True)
            else:
                link.retry_at = time.monotonic() + self._resync_after
        log.info(
            "order feed chain %d: reconciled %d order(s) over REST, %d missed event(s) emitted%s",
            chain,
            len(targets),
            emitted,
            "" if synced else "; listing by maker failed, will retry",
        )
        self.reconciliations += 1

    def _since(self, link: _Link) -> float:
        """Where orders-by-maker starts: the watermark less a margin, or a bounded look-back."""
        if link.seen_until is None:
            return time.time() - FIRST_LOOKBACK
        return link.seen_until - SINCE_MARGIN

    async def _sync_makers(self, chain: int, makers: frozenset[str], since: float) -> int | None:
        """List each maker's orders created since ``since``; adopt the unknown ones.

        Answers the number of events emitted, or None when any maker's listing failed.
        """
        since_ms = int(since * 1000)
        emitted = 0
        complete = True
        for maker in sorted(makers):
            if not _ADDRESS.fullmatch(maker):
                if maker not in self._bad_makers:
                    self._bad_makers.add(maker)
                    log.warning("order feed: maker %r is not an address; not listed", maker)
                continue
            listed = await self._list_maker(chain, maker, since_ms)
            if listed is None:
                complete = False
                continue
            emitted += await self._adopt_all(chain, listed)
        return emitted if complete else None

    async def _list_maker(self, chain: int, maker: str, since_ms: int) -> list[_Listed] | None:
        """Every page of ``maker``'s orders created since ``since_ms``; None on any failure.

        fusion-sdk ``getOrdersByMaker``: ``GET {url}/orders/v2.0/{chain}/order/maker/{address}/``
        with ``limit`` and ``page``, answering ``{items, meta}``. ``timestampFrom`` (ms) is not
        in the EVM SDK but is in 1inch's sibling endpoints; the ``createdAt`` check below keeps
        the result right if the server ignores it.
        """
        version = self._settings.version
        # The trailing slash is the SDK's (``…/maker/${address}/${queryParams}``).
        url = f"{self._rest_base}/orders/{version}/{chain}/order/maker/{maker}/"
        found: list[_Listed] = []
        page = 1
        for _ in range(MAKER_MAX_PAGES):
            params = {"limit": MAKER_PAGE_LIMIT, "page": page, "timestampFrom": since_ms}
            body = await self._get_json(url, params)
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                if body is not None:
                    self._health.malformed()
                    log.warning("order REST %s: no items in the response", url)
                return None
            for item in items:
                listed = _Listed.parse(maker, item)
                if listed is None:
                    self._health.malformed()
                    log.warning("order REST %s: skipped an unusable item: %.200r", url, item)
                elif listed.created_ms is None or listed.created_ms >= since_ms:
                    found.append(listed)
            meta = body.get("meta") if isinstance(body, dict) else None
            current = _int_or_none(meta.get("currentPage")) if isinstance(meta, dict) else None
            total = _int_or_none(meta.get("totalPages")) if isinstance(meta, dict) else None
            if current is None or total is None or current >= total:
                return found
            page = current + 1
        log.warning(
            "order REST %s: more than %d pages since the last sync; the rest are not checked",
            url,
            MAKER_MAX_PAGES,
        )
        return found

    def _unknown_order(self, chain: int, order_hash: str) -> bool:
        key = (chain, order_hash)
        return key not in self._lookups and self._cache.get(chain, order_hash) is None

    async def _adopt_all(self, chain: int, listed: list[_Listed]) -> int:
        """Cache and announce the listed orders the feed never saw, oldest first."""
        fresh = [entry for entry in listed if self._unknown_order(chain, entry.order_hash)]
        # The full order (receiver, deadline) comes from the status by hash, as for any unknown
        # hash; past the reconcile limit the listing's own fields have to do.
        looked_up = await asyncio.gather(
            *(self._fetch_status(chain, e.order_hash) for e in fresh[: self._reconcile_limit])
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

    def _adopt(self, chain: int, listed: _Listed, found: RestStatus) -> int:
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
        self._deliver(chain, "order_created", order_hash, created, time.time(), reconciled=True)
        entry = self._cache.get(chain, order_hash)
        return 1 + (entry is not None and self._catch_up(chain, entry, found))

    async def _reconcile_one(self, chain: int, order_hash: str) -> bool:
        found = await self._fetch_status(chain, order_hash)
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
        self._deliver(chain, event, order_hash, result, time.time(), reconciled=True)
        return True

    async def _sync_active(self, chain: int) -> None:
        """Cache active orders of the wanted makers created while the feed was away."""
        url = f"{self._rest_base}/orders/{self._settings.version}/{chain}/order/active"
        page = 1
        while page <= ACTIVE_MAX_PAGES:
            body = await self._get_json(url, {"page": page, "limit": ACTIVE_PAGE_LIMIT})
            if not isinstance(body, dict):
                return
            items = body.get("items")
            for item in items if isinstance(items, list) else []:
                order_hash = item.get("orderHash") if isinstance(item, dict) else None
                if not isinstance(order_hash, str) or self._cache.get(chain, order_hash):
                    continue
                info = order_info(order_hash, item)
                if info is not None and info.maker.lower() in self._makers:
                    self._cache.put(chain, info)
            meta = body.get("meta")
            current = _int_or_none(meta.get("currentPage")) if isinstance(meta, dict) else None
            total = _int_or_none(meta.get("totalPages")) if isinstance(meta, dict) else None
            if current is None or total is None or current >= total:
                return
            page = current + 1

    def _unknown(self, chain: int, name: str) -> None:
        self._health.malformed()
        if name not in self._unknown_events:
            self._unknown_events.add(name)
            log.warning("order feed chain %d: skipping unknown event %r", chain, name)

    def _malformed(self, chain: int, why: str, data: str | bytes) -> None:
        self._health.malformed()
        log.warning("order feed chain %d: skipped malformed frame (%s): %.200r", chain, why, data)
