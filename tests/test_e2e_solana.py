"""End to end: Solana Fusion orders (chain 501) → an order rule with a base58 maker → real
apprise deliveries, through the real daemon and the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from notifier.daemon import running
from notifier.simulator import SIM_KEYS, Simulator
from notifier.sources.fusion import OrderFeed
from tests.conftest import daemon_settings
from tests.receivers import HttpReceiver, wait_until

MAKER = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
CASE_TWIN = "9wzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"  # another base58 address

SOLANA_RULES = f"""\
rules:
  - id: my-solana-orders
    on: order
    chain: 501
    maker: {MAKER}
    events: [order_filled, order_filled_partially, order_cancelled, order_invalid]
    title: >-
      {{{{ event }}}} {{{{ order_hash[:8] }}}} {{{{ remaining_maker_amount }}}}
      {{{{ reason or 'live' }}}} {{{{ 'tx' if tx else 'no-tx' }}}}
"""


def solana_settings(tmp_path: Path, sim: Simulator, receiver: HttpReceiver) -> Any:
    fusion = {
        "url": sim.urls.fusion_ws,
        "rest_url": sim.urls.fusion_rest,
        "api_key": SIM_KEYS.fusion,
        "chains": [1, 501],
        "heartbeat": 2.0,
    }
    return daemon_settings(tmp_path, sim, receiver, SOLANA_RULES, fusion=fusion)


async def test_partial_fill_fill_cancel_and_expiry_notify_once_each(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """Each notifies once, duplicates included; an address differing in case is another maker."""
    solana = sim.fusion.solana
    async with running(solana_settings(tmp_path, sim, receiver)) as daemon:
        await wait_until(lambda: sim.fusion.connection_count(501) == 1, timeout=20)
        filled = solana.create_order(maker=MAKER, src_amount=1000)
        cancelled = solana.create_order(maker=MAKER, src_amount=1000)
        expiring = solana.create_order(maker=MAKER, src_amount=1000, lifetime=1.0)
        twin = solana.create_order(maker=CASE_TWIN, src_amount=1000)
        solana.fill(filled, 400)
        solana.repeat(filled)
        solana.fill(filled)
        solana.repeat(filled)
        solana.cancel(cancelled)
        solana.repeat(cancelled)
        solana.fill(twin)
        await receiver.wait_until(lambda: len(receiver.delivered) >= 4, timeout=30)
        await daemon.dispatcher_idle()
        assert sorted(receiver.delivered_titles()) == sorted(
            [
                f"order_filled_partially {filled[:8]} 600 live tx",
                f"order_filled {filled[:8]} 0 live tx",
                f"order_cancelled {cancelled[:8]} 1000 live tx",
                f"order_invalid {expiring[:8]} 1000 expired no-tx",
            ]
        )


async def test_a_fill_missed_during_a_disconnect_is_notified_once(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """Found over REST after the reconnect, sent once; the next reconnect sends nothing."""
    solana = sim.fusion.solana
    async with running(solana_settings(tmp_path, sim, receiver)) as daemon:
        await wait_until(lambda: sim.fusion.connection_count(501) == 1, timeout=20)
        order = solana.create_order(maker=MAKER, src_amount=1000)
        feed = next(s for s in daemon.sources if isinstance(s, OrderFeed))
        chain = feed.solana
        assert chain is not None
        await wait_until(lambda: feed.cached_order(501, order) is not None, timeout=20)
        sim.fusion.refuse_connections(True)
        sim.fusion.drop_connections(501)
        await wait_until(lambda: sim.fusion.connection_count(501) == 0, timeout=20)
        solana.fill(order)  # nobody listens: missed live
        sim.fusion.refuse_connections(False)
        await receiver.wait_until(lambda: len(receiver.delivered) == 1, timeout=40)
        assert receiver.delivered_titles() == [f"order_filled {order[:8]} 0 live tx"]
        reconciled = chain.reconciliations
        sim.fusion.drop_connections(501)
        await wait_until(lambda: chain.reconciliations > reconciled, timeout=40)
        solana.repeat(order)
        await daemon.dispatcher_idle()
        assert len(receiver.delivered) == 1
