"""End to end: Fusion order events and Changelly intents → rules → real apprise deliveries."""

from __future__ import annotations

import time
from pathlib import Path

from notifier.daemon import running
from notifier.simulator import Simulator
from notifier.sources.fusion import OrderFeed
from tests.conftest import daemon_settings
from tests.receivers import HttpReceiver, wait_until

MAKER = "0x00000000000000000000000000000000000d3e70"
OTHER = "0x1111111111111111111111111111111111111111"

ORDER_RULES = f"""\
rules:
  - id: my-fills
    on: order
    chain: 1
    maker: "{MAKER.upper().replace("0X", "0x")}"
    events: [order_filled, order_filled_partially]
    title: "{{{{ event }}}} {{{{ order_hash[:10] }}}} {{{{ (filled_fraction * 100) | round }}}}%"
"""

INTENT_RULES = """\
rules:
  - id: intent-trouble
    on: intent
    to: [Expired, Refunded]
    title: "{{ label or intent_id }} {{ status }}"
  - id: intent-overdue
    on: intent
    overdue: 3s
    title: "overdue {{ label or intent_id }}"
"""


async def test_partial_and_full_fill_of_my_orders_only(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """One message per partial and per full fill of my maker; none for other makers."""
    settings = daemon_settings(tmp_path, sim, receiver, ORDER_RULES)
    async with running(settings) as daemon:
        await wait_until(lambda: sim.fusion.connection_count(1) == 1, timeout=20)
        mine = sim.fusion.create_order(1, maker=MAKER, making_amount=1000)
        theirs = sim.fusion.create_order(1, maker=OTHER, making_amount=1000)
        sim.fusion.fill_partially(theirs, 500)
        sim.fusion.fill_partially(mine, 600)
        sim.fusion.fill_partially(mine, 250)
        sim.fusion.fill(theirs)
        sim.fusion.fill(mine)
        await receiver.wait_until(lambda: len(receiver.delivered) >= 3, timeout=20)
        await daemon.dispatcher_idle()
        assert sorted(receiver.delivered_titles()) == sorted(
            [
                f"order_filled_partially {mine[:10]} 40.0%",
                f"order_filled_partially {mine[:10]} 75.0%",
                f"order_filled {mine[:10]} 100.0%",
            ]
        )


async def test_fill_while_disconnected_is_notified_once_after_reconnect(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """A fill missed live (feed down) is found over REST after reconnecting, and sent once."""
    settings = daemon_settings(tmp_path, sim, receiver, ORDER_RULES)
    async with running(settings) as daemon:
        await wait_until(lambda: sim.fusion.connection_count(1) == 1, timeout=20)
        order = sim.fusion.create_order(1, maker=MAKER, making_amount=1000)
        feed = next(s for s in daemon.sources if isinstance(s, OrderFeed))
        await wait_until(lambda: feed.cached_order(1, order) is not None, timeout=20)
        sim.fusion.refuse_connections(True)
        sim.fusion.drop_connections(1)
        await wait_until(lambda: sim.fusion.connection_count(1) == 0, timeout=20)
        sim.fusion.fill(order)  # nobody is connected: missed live
        assert sim.fusion.events_missed >= 1
        sim.fusion.refuse_connections(False)
        await receiver.wait_until(lambda: len(receiver.delivered) == 1, timeout=40)
        assert receiver.delivered_titles() == [f"order_filled {order[:10]} 100.0%"]
        # a second reconnect reconciles again but must not notify again
        sim.fusion.drop_connections(1)
        await wait_until(lambda: sim.fusion.connection_count(1) == 1, timeout=40)
        reconciled = feed.reconciliations
        await wait_until(lambda: feed.reconciliations > reconciled, timeout=40)
        await daemon.dispatcher_idle()
        assert len(receiver.delivered) == 1


async def test_expired_and_refunded_intents_notify_once_each(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """Intents moving to Expired and to Refunded each notify once; polling stops after."""
    expiring = sim.intents.add_intent(script=[("Approved", 0.2), ("Expired", 0.3)])
    refunded = sim.intents.add_intent(
        script=[("Approved", 0.2), ("Deposited", 0.2), ("Refunded", 0.3)]
    )
    settings = daemon_settings(
        tmp_path, sim, receiver, INTENT_RULES.replace("3s", "1h"),
        intents={"url": sim.urls.intents, "api_key": "sim-intents-key", "poll_interval": 0.2,
                 "track": [expiring, refunded]},
    )  # fmt: skip
    async with running(settings) as daemon:
        await receiver.wait_until(lambda: len(receiver.delivered) == 2, timeout=30)
        assert sorted(receiver.delivered_titles()) == sorted(
            [f"{expiring} Expired", f"{refunded} Refunded"]
        )
        polls = sim.intents.request_count(expiring)
        await daemon.dispatcher_idle()
        await wait_until(lambda: sim.intents.request_count(refunded) > 0, timeout=5)
        assert sim.intents.request_count(expiring) <= polls + 1  # terminal: no more polling


async def test_overdue_fires_for_a_stuck_intent_not_for_a_finished_one(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """``overdue`` fires on the clock for a stuck intent; a finished one stays quiet."""
    now = time.time()
    stuck = sim.intents.add_intent(status="Deposited", created_at=now)
    done = sim.intents.add_intent(status="Finished", created_at=now)
    settings = daemon_settings(
        tmp_path, sim, receiver, INTENT_RULES,
        intents={"url": sim.urls.intents, "api_key": "sim-intents-key", "poll_interval": 30,
                 "track": [stuck, done]},
    )  # fmt: skip
    async with running(settings) as daemon:
        # the poll interval is long: the overdue timer fires on the clock, not on a poll
        await receiver.wait_until(lambda: len(receiver.delivered) == 1, timeout=30)
        assert receiver.delivered_titles() == [f"overdue {stuck}"]
        await daemon.dispatcher_idle()


async def test_rate_limited_poll_honours_retry_after(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """A 429 with Retry-After: 2 makes the poller wait at least that long before asking again."""
    intent = sim.intents.add_intent(status="Deposited")
    sim.intents.rate_limit_next(1, retry_after=2, intent_id=intent)
    settings = daemon_settings(
        tmp_path, sim, receiver, INTENT_RULES.replace("3s", "1h"),
        intents={"url": sim.urls.intents, "api_key": "sim-intents-key", "poll_interval": 0.1,
                 "track": [intent]},
    )  # fmt: skip
    async with running(settings):
        await wait_until(lambda: sim.intents.request_count(intent) >= 2, timeout=30)
        hits = sim.intents.hits[intent]
        assert hits[0].status == 429
        assert hits[1].at - hits[0].at >= 1.9


async def test_order_created_and_filled_while_disconnected_is_notified_once(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """An order created and filled while the feed is down is listed by maker and sent once."""
    settings = daemon_settings(tmp_path, sim, receiver, ORDER_RULES)
    async with running(settings) as daemon:
        feed = next(s for s in daemon.sources if isinstance(s, OrderFeed))
        await wait_until(lambda: sim.fusion.connection_count(1) == 1, timeout=20)
        await wait_until(lambda: feed.reconciliations >= 1, timeout=20)  # the start's catch-up
        sim.fusion.refuse_connections(True)
        sim.fusion.drop_connections(1)
        await wait_until(lambda: sim.fusion.connection_count(1) == 0, timeout=20)
        order = sim.fusion.create_order(1, maker=MAKER, making_amount=1000)
        sim.fusion.fill(order)  # nobody is connected: both missed live
        theirs = sim.fusion.create_order(1, maker=OTHER, making_amount=1000)
        sim.fusion.fill(theirs)
        assert sim.fusion.events_missed >= 4
        assert feed.cached_order(1, order) is None
        reconciled = feed.reconciliations
        sim.fusion.refuse_connections(False)
        await receiver.wait_until(lambda: len(receiver.delivered) == 1, timeout=40)
        assert receiver.delivered_titles() == [f"order_filled {order[:10]} 100.0%"]
        await wait_until(lambda: feed.reconciliations > reconciled, timeout=40)
        # a second reconnect lists the maker's orders again but must not notify again
        sim.fusion.drop_connections(1)
        await wait_until(lambda: feed.reconciliations > reconciled + 1, timeout=40)
        await daemon.dispatcher_idle()
        assert len(receiver.delivered) == 1
