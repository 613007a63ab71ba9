"""The order feed on Solana (chain 501) against the simulated Solana Fusion WS and REST."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr

from notifier.backoff import BackoffPolicy
from notifier.config import FusionSettings
from notifier.events import Interest, OrderEvent
from notifier.metrics import Metrics
from notifier.simulator import SIM_KEYS, Simulator
from notifier.sources import OrderFeed
from notifier.sources.fusion import solana as solana_module
from notifier.store import Store
from tests.receivers import wait_until
from tests.support import Collector

FAST = BackoffPolicy(base=0.05, cap=0.2, healthy_after=1.0)
MAKER = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
OTHER = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"


def orders(sink: Collector, order_hash: str) -> list[tuple[str, Any]]:
    """(event, remaining) of ``order_hash``'s events, in order."""
    return [
        (e.event, e.remaining_maker_amount)
        for e in sink.of(OrderEvent)
        if e.order_hash == order_hash
    ]


@asynccontextmanager
async def solana_feed(
    sim: Simulator, store: Store, *, makers: frozenset[str] = frozenset({MAKER}), **options: Any
) -> AsyncIterator[tuple[OrderFeed, Collector]]:
    sink = Collector()
    settings = FusionSettings(
        url=sim.urls.fusion_ws,
        rest_url=sim.urls.fusion_rest,
        api_key=SecretStr(SIM_KEYS.fusion),
        chains=[501],
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


async def test_partial_fill_fill_cancel_and_expiry_once_each(sim: Simulator, store: Store) -> None:
    """Fills tell partial from full by the remaining amount; a cancel and an expiry end orders."""
    async with solana_feed(sim, store) as (feed, sink):
        await wait_until(lambda: sim.fusion.connection_count(501) == 1)
        filled = sim.fusion.solana.create_order(maker=MAKER, src_amount=1000)
        cancelled = sim.fusion.solana.create_order(maker=MAKER, src_amount=1000)
        expiring = sim.fusion.solana.create_order(maker=MAKER, src_amount=1000, lifetime=1.0)
        sim.fusion.solana.fill(filled, 400)
        sim.fusion.solana.fill(filled, 250)
        sim.fusion.solana.fill(filled)
        sim.fusion.solana.fill(cancelled, 100)
        sim.fusion.solana.cancel(cancelled)
        await wait_until(lambda: len(orders(sink, expiring)) == 2, timeout=20)
        assert orders(sink, filled) == [
            ("order_created", 1000),
            ("order_filled_partially", 600),
            ("order_filled_partially", 350),
            ("order_filled", 0),
        ]
        assert orders(sink, cancelled) == [
            ("order_created", 1000),
            ("order_filled_partially", 900),
            ("order_cancelled", 900),
        ]
        assert orders(sink, expiring) == [("order_created", 1000), ("order_invalid", 1000)]
        invalid = next(e for e in sink.of(OrderEvent) if e.event == "order_invalid")
        assert invalid.result["reason"] == "expired"
        assert feed.status().up
        fill = [e for e in sink.of(OrderEvent) if e.order_hash == filled][1]
        assert fill.chain == 501
        assert fill.order is not None
        assert fill.order.maker == MAKER  # base58, exactly as sent
        first_tx = sim.fusion.solana.orders[filled].fills[0]["txSignature"]
        assert fill.result["transactionSignature"] == first_tx
        assert isinstance(fill.result["slotNumber"], int)
        assert fill.result["resolver"]
        await asyncio.sleep(0.3)  # the clock keeps ticking: the expiry is not repeated
        assert len(orders(sink, expiring)) == 2


async def test_duplicate_events_notify_once(sim: Simulator, store: Store) -> None:
    """The same transaction seen again (``finalized`` after ``confirmed``) is not an event."""
    async with solana_feed(sim, store) as (_, sink):
        await wait_until(lambda: sim.fusion.connection_count(501) == 1)
        order = sim.fusion.solana.create_order(maker=MAKER, src_amount=1000)
        sim.fusion.solana.repeat(order)
        sim.fusion.solana.fill(order, 300)
        sim.fusion.solana.repeat(order)
        sim.fusion.solana.fill(order)
        sim.fusion.solana.repeat(order)
        last = sim.fusion.solana.create_order(maker=MAKER)  # a barrier: events arrive in order
        await wait_until(lambda: orders(sink, last))
        assert orders(sink, order) == [
            ("order_created", 1000),
            ("order_filled_partially", 700),
            ("order_filled", 0),
        ]


async def test_a_fill_missed_while_disconnected_is_recovered_once(
    sim: Simulator, store: Store
) -> None:
    """Fills while the socket was down come back over REST after the reconnect, once each."""
    async with solana_feed(sim, store) as (feed, sink):
        await wait_until(lambda: sim.fusion.connection_count(501) == 1)
        order = sim.fusion.solana.create_order(maker=MAKER, src_amount=1000)
        await wait_until(lambda: feed.cached_order(501, order) is not None)
        sim.fusion.refuse_connections(True)
        sim.fusion.drop_connections(501)
        await wait_until(lambda: sim.fusion.connection_count(501) == 0)
        sim.fusion.solana.fill(order, 200)
        sim.fusion.solana.fill(order)
        created_away = sim.fusion.solana.create_order(maker=MAKER, src_amount=50)
        sim.fusion.solana.create_order(maker=OTHER)  # not watched: not adopted
        assert sim.fusion.events_missed >= 4
        solana = feed.solana
        assert solana is not None
        before = solana.reconciliations
        sim.fusion.refuse_connections(False)
        await wait_until(lambda: solana.reconciliations > before, timeout=20)
        assert orders(sink, order) == [
            ("order_created", 1000),
            ("order_filled_partially", 800),
            ("order_filled", 0),
        ]
        recovered = [e for e in sink.of(OrderEvent) if e.order_hash == order][1:]
        assert all(e.reconciled for e in recovered)
        assert orders(sink, created_away) == [("order_created", 50)]
        # Another reconnect reconciles again and emits nothing new; a late duplicate neither.
        sim.fusion.drop_connections(501)
        await wait_until(lambda: solana.reconciliations > before + 1, timeout=20)
        sim.fusion.solana.repeat(order)
        barrier = sim.fusion.solana.create_order(maker=MAKER)
        await wait_until(lambda: orders(sink, barrier))
        assert len(orders(sink, order)) == 3


async def test_an_unknown_order_is_looked_up_and_rest_failures_retried(
    sim: Simulator, store: Store, monkeypatch: Any
) -> None:
    """A fill of an order created before the feed started waits for its status by hash; the
    fills REST lists before it are announced too, and a failed look-up is retried."""
    monkeypatch.setattr(solana_module, "LOOKUP_RETRIES", (0.0, 0.2, 0.2, 0.2))
    order = sim.fusion.solana.create_order(maker=MAKER, src_amount=1000)  # nobody listens
    sim.fusion.solana.fill(order, 100)
    async with solana_feed(sim, store) as (_, sink):
        await wait_until(lambda: sim.fusion.connection_count(501) == 1)
        sim.fusion.fail_rest(2)
        sim.fusion.solana.fill(order, 300)
        await wait_until(lambda: len(orders(sink, order)) == 2, timeout=20)
        assert orders(sink, order) == [
            ("order_filled_partially", 900),
            ("order_filled_partially", 600),
        ]
        first, second = [e for e in sink.of(OrderEvent) if e.order_hash == order]
        assert first.reconciled
        assert not second.reconciled


async def test_expiration_in_milliseconds_and_an_order_filled_before_its_deadline(
    sim: Simulator, store: Store
) -> None:
    """``expirationTime`` in ms expires on time; REST's fill wins over the clock."""
    async with solana_feed(sim, store) as (_, sink):
        await wait_until(lambda: sim.fusion.connection_count(501) == 1)
        in_ms = sim.fusion.solana.create_order(
            maker=MAKER, src_amount=10, lifetime=1.0, expiration_millis=True
        )
        raced = sim.fusion.solana.create_order(maker=MAKER, src_amount=10, lifetime=1.0)
        await wait_until(lambda: orders(sink, raced))
        sim.fusion.refuse_connections(True)
        sim.fusion.drop_connections(501)
        sim.fusion.solana.fill(raced)  # missed live, just before the deadline
        await wait_until(lambda: len(orders(sink, in_ms)) == 2, timeout=20)
        await wait_until(lambda: len(orders(sink, raced)) == 2, timeout=20)
        assert orders(sink, in_ms)[1] == ("order_invalid", 10)
        assert orders(sink, raced)[1] == ("order_filled", 0)


async def test_fills_survive_a_restart(sim: Simulator, store: Store) -> None:
    """A duplicate arriving after a restart is still recognised (``fusion_fills``)."""
    async with solana_feed(sim, store) as (feed, sink):
        await wait_until(lambda: sim.fusion.connection_count(501) == 1)
        order = sim.fusion.solana.create_order(maker=MAKER, src_amount=1000)
        sim.fusion.solana.fill(order, 500)
        await wait_until(lambda: len(orders(sink, order)) == 2)
    async with solana_feed(sim, store) as (feed, sink):
        await wait_until(lambda: sim.fusion.connection_count(501) == 1)
        solana = feed.solana
        assert solana is not None
        sim.fusion.solana.repeat(order)
        sim.fusion.solana.fill(order, 100)
        await wait_until(lambda: orders(sink, order))
        assert orders(sink, order) == [("order_filled_partially", 400)]
        cached = feed.cached_order(501, order)
        assert cached is not None
        assert cached.remaining_maker_amount == 400
