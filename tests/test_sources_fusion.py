"""OrderFeed against the simulated 1inch Fusion websocket and REST API over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr

from notifier.backoff import BackoffPolicy
from notifier.config import FusionSettings
from notifier.events import Event, FeedEvent, Interest, OrderEvent, OrderInfo
from notifier.metrics import Metrics
from notifier.simulator import SIM_KEYS, Simulator
from notifier.sources import OrderFeed
from notifier.sources.base import FeedHealth
from notifier.sources.fusion import SINCE_MARGIN, OrderCache
from notifier.sources.fusion import lookups as lookups_module
from notifier.sources.fusion.lookups import MAX_WAITING_PER_ORDER
from notifier.sources.fusion.rest import MAX_STATUS_BODY, OrderRest
from notifier.store import Store
from tests.support import in_background, serving

T = TypeVar("T")
FAST = BackoffPolicy(base=0.05, cap=0.2, healthy_after=1.0)
MAKER = "0x6edc317f3208b10c46f4ff97faa04dd632487408"


class Collector:
    """A sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]

    def orders(self, order_hash: str, event: str | None = None) -> list[OrderEvent]:
        return [
            e
            for e in self.of(OrderEvent)
            if e.order_hash == order_hash and event in (None, e.event)
        ]


async def until(condition: Callable[[], object], within: float = 15.0) -> None:
    """Poll ``condition`` until true; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running(
    sim: Simulator,
    store: Store,
    *,
    api_key: str = SIM_KEYS.fusion,
    makers: frozenset[str] = frozenset(),
    **options: Any,
) -> AsyncIterator[tuple[OrderFeed, Collector]]:
    sink = Collector()
    settings = FusionSettings(
        url=sim.urls.fusion_ws,
        rest_url=sim.urls.fusion_rest,
        api_key=SecretStr(api_key),
        chains=[1],
        heartbeat=5,
    )
    feed = OrderFeed(settings, sink, Metrics(), store, backoff=FAST, flush_interval=0.05, **options)
    feed.set_interest(Interest(makers=makers))
    task = asyncio.create_task(feed.run())
    try:
        yield feed, sink
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_order_cache_fills_in_later_events(store: Store) -> None:
    """order_filled carries only a hash; the order from order_created is attached to it."""
    async with Simulator() as sim, running(sim, store) as (feed, sink):
        await until(lambda: sim.fusion.connection_count() == 1)
        order_hash = sim.fusion.create_order(maker=MAKER, making_amount=1000)
        await until(lambda: sink.orders(order_hash, "order_created"))
        sim.fusion.fill_partially(order_hash, remaining=400)
        sim.fusion.fill(order_hash)
        await until(lambda: sink.orders(order_hash, "order_filled"))
        partial, filled = sink.orders(order_hash)[1:]
        assert partial.event == "order_filled_partially"
        assert partial.remaining_maker_amount == 400
        assert filled.order is not None
        assert filled.order.maker == MAKER
        assert filled.order.making_amount == 1000
        assert not filled.reconciled
        assert feed.status().up
        assert [e.up for e in sink.of(FeedEvent)] == [True]
    # Persisted: a new feed on the same database knows the order.
    again = OrderFeed(FusionSettings(), Collector(), Metrics(), store)
    cached = again.cached_order(1, order_hash)
    assert cached is not None
    assert cached.maker == MAKER


async def test_unknown_hash_is_looked_up_over_rest(store: Store) -> None:
    """An event for an order created before we connected gets its order from REST."""
    async with Simulator() as sim:
        order_hash = sim.fusion.create_order(maker=MAKER)  # nobody connected: missed live
        async with running(sim, store) as (_, sink):
            await until(lambda: sim.fusion.connection_count() == 1)
            sim.fusion.cancel(order_hash)
            await until(lambda: sink.orders(order_hash))
            (event,) = sink.orders(order_hash)
            assert event.event == "order_cancelled"
            assert event.order is not None
            assert event.order.maker == MAKER


async def test_failed_look_up_emits_without_order(store: Store) -> None:
    """A hash REST does not know still produces its event, with order=None."""
    async with Simulator() as sim, running(sim, store) as (_, sink):
        await until(lambda: sim.fusion.connection_count() == 1)
        sim.fusion.send_raw(b'{"event":"order_filled","result":{"orderHash":"0xabc-1"}}')
        await until(lambda: sink.orders("0xabc-1"))
        assert sink.orders("0xabc-1")[0].order is None


async def test_missed_fill_is_reconciled_once(store: Store) -> None:
    """A fill while connections are refused is emitted once, reconciled, after reconnecting."""
    async with Simulator() as sim:
        async with running(sim, store, makers=frozenset({MAKER})) as (feed, sink):
            await until(lambda: sim.fusion.connection_count() == 1)
            mine = sim.fusion.create_order(maker=MAKER)
            other = sim.fusion.create_order()
            await until(lambda: sink.orders(mine) and sink.orders(other))
            sim.fusion.refuse_connections(True)
            sim.fusion.drop_connections()
            await until(lambda: not feed.status().up)
            sim.fusion.fill(mine)
            sim.fusion.fill_partially(other, remaining=5)
            assert sim.fusion.events_missed == 2
            sim.fusion.refuse_connections(False)
            await until(lambda: feed.reconciliations == 1)
            (event,) = sink.orders(mine, "order_filled")
            assert event.reconciled
            assert event.order is not None
            assert event.order.maker == MAKER
            assert not sink.orders(other, "order_filled_partially")  # not a maker we watch
            # A second reconnect finds nothing new.
            sim.fusion.drop_connections()
            await until(lambda: feed.reconciliations == 2)
            assert len(sink.orders(mine, "order_filled")) == 1
            assert [e.up for e in sink.of(FeedEvent)] == [True, False, True, False, True]
        # Nor does a restart that reconciles on start.
        async with running(sim, store, makers=frozenset({MAKER}), reconcile_on_start=True) as (
            feed,
            sink,
        ):
            await until(lambda: feed.reconciliations == 1)
            assert not sink.of(OrderEvent)


async def test_missed_partial_fill_and_cancel_are_reconciled(store: Store) -> None:
    """With no maker filter every cached open order is checked; each change is emitted once."""
    async with Simulator() as sim, running(sim, store) as (feed, sink):
        await until(lambda: sim.fusion.connection_count() == 1)
        partly = sim.fusion.create_order(making_amount=100)
        gone = sim.fusion.create_order()
        await until(lambda: sink.orders(partly) and sink.orders(gone))
        sim.fusion.refuse_connections(True)
        sim.fusion.drop_connections()
        await until(lambda: not feed.status().up)
        sim.fusion.fill_partially(partly, remaining=60)
        sim.fusion.cancel(gone)
        sim.fusion.refuse_connections(False)
        await until(lambda: feed.reconciliations == 1)
        (partial,) = sink.orders(partly, "order_filled_partially")
        assert partial.reconciled
        assert partial.remaining_maker_amount == 60
        (cancel,) = sink.orders(gone, "order_cancelled")
        assert cancel.reconciled
        # Filled live later: a normal event; a further reconnect adds nothing.
        sim.fusion.fill(partly)
        await until(lambda: sink.orders(partly, "order_filled"))
        sim.fusion.drop_connections()
        await until(lambda: feed.reconciliations == 2)
        assert len(sink.orders(partly)) == 3
        assert len(sink.orders(gone)) == 2


async def test_malformed_and_unknown_frames_are_skipped(store: Store) -> None:
    """Garbage, unknown events and RPC answers are skipped; ``data`` is accepted for ``result``."""
    async with Simulator() as sim, running(sim, store) as (feed, sink):
        await until(lambda: sim.fusion.connection_count() == 1)
        order_hash = sim.fusion.create_order(maker=MAKER)
        await until(lambda: sink.orders(order_hash))
        sim.fusion.send_raw(b"{oops")
        sim.fusion.send_raw(b'{"event":"order_teleported","result":{"orderHash":"0x1"}}')
        sim.fusion.send_raw(b'{"event":"order_filled","result":{}}')
        sim.fusion.send_raw(b'{"method":"ping","result":"pong"}')
        sim.fusion.send_raw(
            orjson.dumps({"event": "order_filled", "data": {"orderHash": order_hash}})
        )
        await until(lambda: sink.orders(order_hash, "order_filled"))
        assert feed.status().errors == 3
        assert feed.status().reconnects == 0


async def test_auth_key_never_reaches_the_logs(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong key is refused (401) and logged as such, without the key."""
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-fusion-key-123"
    async with Simulator() as sim:
        async with running(sim, store) as (feed, _):
            await until(lambda: feed.status().up)
        async with running(sim, store, api_key=wrong) as (feed, _):
            await until(lambda: feed.status().reconnects >= 1)
            await until(lambda: "HTTP 401" in caplog.text)
            assert not feed.status().up
    assert SIM_KEYS.fusion not in caplog.text
    assert wrong not in caplog.text


def _info(n: int) -> OrderInfo:
    return OrderInfo(
        order_hash=f"0x{n:064x}-1",
        maker=MAKER,
        receiver="0x0",
        maker_asset="0xa",
        taker_asset="0xb",
        making_amount=10**30 + n,  # beyond SQLite's 64-bit integers
        taking_amount=n,
    )


def test_order_cache_is_bounded_and_persisted(store: Store) -> None:
    """The least recently used order is evicted; a reload sees the rest with their state."""
    cache = OrderCache(store, capacity=3)
    for n in range(3):
        cache.put(1, _info(n))
    assert cache.get(1, _info(0).order_hash) is not None  # 0 is now the most recent
    cache.put(1, _info(3))
    assert cache.get(1, _info(1).order_hash) is None
    cache.record(1, _info(2).order_hash, state="order_filled", final=True, remaining=0)
    cache.flush()
    assert store.read("SELECT COUNT(*) FROM fusion_orders") == [(3,)]
    reloaded = OrderCache(store, capacity=3)
    entry = reloaded.get(1, _info(2).order_hash)
    assert entry is not None
    assert (entry.state, entry.final, entry.info.remaining_maker_amount) == (
        "order_filled",
        True,
        0,
    )
    restored = reloaded.get(1, _info(3).order_hash)
    assert restored is not None
    assert restored.info.making_amount == 10**30 + 3
    oldest = reloaded.get(1, _info(0).order_hash)
    assert reloaded.candidates(1, frozenset({MAKER}), limit=10) == [oldest, restored]


def test_order_cache_keeps_recency_across_a_reload(store: Store) -> None:
    """Rows written in one flush reload in the order they were last changed."""
    cache = OrderCache(store, capacity=5)
    for n in (4, 2, 3):
        cache.put(1, _info(n))
    cache.flush()
    reloaded = OrderCache(store, capacity=5)
    newest_first = [e.info.order_hash for e in reloaded.candidates(1, frozenset(), limit=5)]
    assert newest_first == [_info(n).order_hash for n in (3, 2, 4)]


def _seen_until(store: Store) -> float:
    rows = store.read("SELECT seen_until FROM fusion_sync WHERE chain = 1")
    return float(rows[0][0]) if rows else 0.0


def _maker_listings(sim: Simulator, maker: str = MAKER) -> list[dict[str, list[str]]]:
    """Query strings of the orders-by-maker requests the feed made, oldest first."""
    prefix = f"/fusion/orders/v2.0/1/order/maker/{maker}/"
    return [
        parse_qs(urlsplit(request).query)
        for request in sim.fusion.rest_requests
        if request.startswith(prefix)
    ]


async def test_order_created_and_filled_while_disconnected_is_emitted_once(
    store: Store,
) -> None:
    """An order never seen live is listed by maker after a reconnect: created, filled, once."""
    async with Simulator() as sim:
        async with running(sim, store, makers=frozenset({MAKER})) as (feed, sink):
            await until(lambda: sim.fusion.connection_count() == 1)
            sim.fusion.refuse_connections(True)
            dropped_at = time.time()
            sim.fusion.drop_connections()
            await until(lambda: not feed.status().up)
            mine = sim.fusion.create_order(maker=MAKER, making_amount=1000, taking_amount=9)
            sim.fusion.fill(mine)
            partly = sim.fusion.create_order(maker=MAKER, making_amount=100)
            sim.fusion.fill_partially(partly, remaining=30)
            waiting = sim.fusion.create_order(maker=MAKER)
            theirs = sim.fusion.create_order()
            sim.fusion.fill(theirs)
            sim.fusion.refuse_connections(False)
            await until(lambda: feed.reconciliations == 1)
            assert [(e.event, e.reconciled) for e in sink.orders(mine)] == [
                ("order_created", True),
                ("order_filled", True),
            ]
            created, filled = sink.orders(mine)
            assert created.order is not None
            assert (created.order.maker, created.order.receiver) == (MAKER, "0x" + "0" * 40)
            assert (created.order.making_amount, created.order.taking_amount) == (1000, 9)
            assert created.remaining_maker_amount == 1000
            assert filled.remaining_maker_amount == 0
            assert [e.event for e in sink.orders(partly)] == [
                "order_created",
                "order_filled_partially",
            ]
            assert sink.orders(partly)[1].remaining_maker_amount == 30
            assert [e.event for e in sink.orders(waiting)] == ["order_created"]
            assert not sink.orders(theirs)  # not a maker we watch
            # Listed from the moment the chain was lost, less the safety margin.
            (query,) = _maker_listings(sim)
            since = int(query["timestampFrom"][0]) / 1000
            assert dropped_at - SINCE_MARGIN - 1 <= since <= time.time() - SINCE_MARGIN
            assert (query["limit"], query["page"]) == (["500"], ["1"])
            # A second reconnect lists again and finds nothing new.
            sim.fusion.drop_connections()
            await until(lambda: feed.reconciliations == 2)
            assert len(_maker_listings(sim)) == 2
            assert len(sink.orders(mine)) == 2
            assert len(sink.orders(partly)) == 2
            assert len(sink.orders(waiting)) == 1
        # Nor does a restart on the same database that reconciles on start.
        async with running(sim, store, makers=frozenset({MAKER}), reconcile_on_start=True) as (
            feed,
            sink,
        ):
            await until(lambda: feed.reconciliations == 1)
            assert not sink.of(OrderEvent)
            assert len(_maker_listings(sim)) == 3


async def test_order_created_and_filled_while_stopped_is_emitted_on_start(
    store: Store,
) -> None:
    """A restart lists from the persisted watermark; a first start looks back one hour only."""
    makers = frozenset({MAKER})
    async with Simulator() as sim:
        long_ago = sim.fusion.create_order(maker=MAKER, created_at=time.time() - 2 * 3600)
        sim.fusion.fill(long_ago)
        recent = sim.fusion.create_order(maker=MAKER, created_at=time.time() - 600)
        sim.fusion.cancel(recent)
        async with running(sim, store, makers=makers, reconcile_on_start=True) as (feed, sink):
            await until(lambda: feed.reconciliations == 1)
            assert [e.event for e in sink.orders(recent)] == ["order_created", "order_cancelled"]
            assert all(e.reconciled for e in sink.of(OrderEvent))
            assert not sink.orders(long_ago)  # before the first start's look-back
        stopped_at = _seen_until(store)
        assert 0 < stopped_at <= time.time()
        while_stopped = sim.fusion.create_order(maker=MAKER, making_amount=50)
        sim.fusion.fill(while_stopped)
        announced = [
            (while_stopped, "order_created", True),
            (while_stopped, "order_filled", True),
        ]
        for expected in (announced, []):  # the second restart has nothing to add
            async with running(sim, store, makers=makers, reconcile_on_start=True) as (feed, sink):
                await until(lambda: feed.reconciliations == 1)
                events = [(e.order_hash, e.event, e.reconciled) for e in sink.of(OrderEvent)]
                assert events == expected
            since = int(_maker_listings(sim)[-1]["timestampFrom"][0]) / 1000
            assert since >= stopped_at - SINCE_MARGIN - 0.001


async def test_failed_listing_is_retried_without_breaking_the_feed(
    store: Store,
) -> None:
    """While REST fails the catch-up emits nothing and the feed stays up; a retry catches up."""
    makers = frozenset({MAKER})
    async with (
        Simulator() as sim,
        running(sim, store, makers=makers, resync_after=0.2) as (
            feed,
            sink,
        ),
    ):
        await until(lambda: sim.fusion.connection_count() == 1)
        sim.fusion.refuse_connections(True)
        sim.fusion.drop_connections()
        await until(lambda: not feed.status().up)
        lost_at = _seen_until(store)
        order_hash = sim.fusion.create_order(maker=MAKER)
        sim.fusion.fill(order_hash)
        sim.fusion.fail_rest(10**6)
        sim.fusion.refuse_connections(False)
        await until(lambda: feed.reconciliations >= 2)  # the reconnect's, then a retry
        assert not sink.of(OrderEvent)
        assert feed.status().up
        live = sim.fusion.create_order(maker=MAKER)  # the websocket still works
        await until(lambda: sink.orders(live))
        assert _seen_until(store) == lost_at  # unsynced: the watermark stays where it was lost
        recovered_at = time.time()
        sim.fusion.fail_rest(0)
        await until(lambda: sink.orders(order_hash, "order_filled"))
        assert [e.event for e in sink.orders(order_hash)] == ["order_created", "order_filled"]
        await until(lambda: _seen_until(store) >= recovered_at)  # caught up: it moves again


async def test_no_maker_filter_does_not_list_by_maker(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a maker filter nothing is listed by maker: only cached orders are reconciled."""
    caplog.set_level(logging.INFO)
    async with Simulator() as sim, running(sim, store) as (feed, sink):
        await until(lambda: sim.fusion.connection_count() == 1)
        sim.fusion.refuse_connections(True)
        sim.fusion.drop_connections()
        await until(lambda: not feed.status().up)
        unseen = sim.fusion.create_order(maker=MAKER)
        sim.fusion.fill(unseen)
        sim.fusion.refuse_connections(False)
        await until(lambda: feed.reconciliations == 1)
        assert not sink.orders(unseen)
        assert not any("/order/maker/" in r for r in sim.fusion.rest_requests)
        assert "paging every maker's orders is not feasible" in caplog.text


def _filled(order_hash: str, n: int) -> bytes:
    return orjson.dumps(
        {"event": "order_filled_partially", "result": {"orderHash": order_hash, "n": n}}
    )


@asynccontextmanager
async def hanging_rest(
    sim: Simulator, store: Store
) -> AsyncIterator[tuple[OrderFeed, Collector, list[str]]]:
    """The simulator's websocket with an order REST API that never answers a status look-up."""
    asked: list[str] = []

    async def hang(request: web.Request) -> web.Response:
        asked.append(request.match_info["order_hash"])
        await asyncio.Event().wait()
        raise AssertionError

    async with serving(web.get("/orders/{v}/{chain}/order/status/{order_hash}", hang)) as url:
        sink = Collector()
        settings = FusionSettings(
            url=sim.urls.fusion_ws,
            rest_url=url,
            api_key=SecretStr(SIM_KEYS.fusion),
            chains=[1],
            heartbeat=5,
        )
        feed = OrderFeed(settings, sink, Metrics(), store, backoff=FAST, flush_interval=0.05)
        feed.set_interest(Interest())
        async with in_background(feed.run()):
            await until(lambda: sim.fusion.connection_count() == 1)
            yield feed, sink, asked


async def test_events_waiting_for_a_hanging_look_up_are_bounded(
    store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an order's REST look-up hangs, its events wait in a bounded queue (per order and
    in all), the oldest dropped, counted and logged once; the look-up then times out and what
    is left goes out without order info."""
    monkeypatch.setattr(lookups_module, "LOOKUP_TIMEOUT", 3.0)
    monkeypatch.setattr(lookups_module, "MAX_WAITING", 150)
    async with Simulator() as sim, hanging_rest(sim, store) as (feed, sink, asked):
        for n in range(1000):
            sim.fusion.send_raw(_filled("hung", n))
        await until(lambda: asked == ["hung"] and feed.dropped_waiting == 1000 - 64)
        lookups = feed._lookups
        assert lookups.waiting == len(lookups.queues[1, "hung"]) == MAX_WAITING_PER_ORDER
        for n in range(3):
            for m in range(64):
                sim.fusion.send_raw(_filled(f"other-{n}", m))
        await until(lambda: len(asked) == 4 and feed._lookups.waiting == 150)
        assert feed.dropped_waiting == 1000 - 64 + 3 * 64 + 64 - 150
        assert not feed._lookups.queues[1, "hung"]  # the oldest order's events went first
        await until(lambda: not feed._lookups.queues, within=20)
    kept = [e.result["n"] for e in sink.orders("other-2")]
    assert kept == list(range(64))  # order within an order kept, order info missing
    assert all(e.order is None for e in sink.of(OrderEvent))
    assert caplog.text.count("over the limit") == 1
    assert caplog.text.count("took over 3s") == 1


async def test_an_oversized_order_body_is_refused_unread(store: Store) -> None:
    """A status look-up whose body passes 1 MiB is refused after about that much: None."""
    sent: list[int] = []

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        sent.append(0)
        with contextlib.suppress(ConnectionError):
            for _ in range(400 * 16):  # 400 MiB unless the client goes away
                await response.write(b" " * (1 << 16))
                sent[-1] += 1 << 16
        return response

    health = FeedHealth("order", Collector(), Metrics())
    async with (
        serving(web.get("/orders/{v}/{chain}/order/status/{order_hash}", endless)) as url,
        aiohttp.ClientSession() as session,
    ):
        rest = OrderRest(url, "v2.0", health, "", 1)
        rest.start(session)
        assert await rest.status(1, "big") is None
    assert health.errors == 1
    assert max(sent) < MAX_STATUS_BODY + (32 << 20)
