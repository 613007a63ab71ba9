"""End to end, windows over the quote history (SPEC §8): the simulator's quotes → the real
daemon → apprise → a local receiver, on the wall clock."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from notifier.daemon import Daemon, running
from notifier.events import PairKey
from notifier.simulator import Simulator
from tests.receivers import HttpReceiver, wait_until
from tests.support import ONE_SOL, SOL, SOL_USDC, USDC, daemon_settings, set_price

DROP_IN_4S = """\
rules:
  - id: sol-drop
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    when: pct_change('4s') < -3
    resolved: true
    notify: [phone]
    title: "SOL fell {{ pct_change('4s') | round(1) }}% in 4s"
"""

DROP_IN_6S = DROP_IN_4S.replace("4s", "6s")

USDC_SOL: PairKey = (USDC, SOL, "100000000", True)  # 100 USDC in, exact in
CROSS_PAIR = """\
rules:
  - id: cheap-sol
    on: quote
    pair: {in: USDC, out: SOL, amount: 100}
    when: price_of('SOL/USDC') < 180
    notify: [phone]
    title: "SOL is {{ price_of('SOL/USDC') }} while 100 USDC buys {{ amount_out }} SOL"
"""


async def _history_reaches(daemon: Daemon, pair: PairKey, seconds: float) -> None:
    """Wait (on the wall clock) until ``pair``'s history reaches ``seconds`` back."""
    series = daemon.history.series[pair]
    await wait_until(lambda: series.first_at is not None, timeout=20)
    assert series.first_at is not None
    await asyncio.sleep(max(0.0, series.first_at + seconds + 0.3 - time.time()))


async def test_a_drop_inside_the_window_fires_once_and_resolves_as_the_window_slides(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """-3.5 % within 4 s fires once, its message saying why with the values; with no new
    quote, the window slides past the old price and the alert resolves by itself."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    async with running(daemon_settings(tmp_path, sim, receiver, DROP_IN_4S)) as daemon:
        await _history_reaches(daemon, SOL_USDC, 4.0)
        await set_price(sim, daemon, 96.5)
        await receiver.wait_until(lambda: len(receiver.delivered) >= 1)
        first = receiver.delivered[0]
        assert first.title == "SOL fell -3.5% in 4s"
        assert "why: pct_change('4s') = \u22123.5 < \u22123" in first.message
        firing = daemon.alerts()
        assert [a["why"] for a in firing] == ["pct_change('4s') = \u22123.5 < \u22123"]
        await receiver.wait_until(lambda: len(receiver.delivered) >= 2, timeout=30)
        resolved = receiver.delivered[1]
        assert resolved.title.startswith("RESOLVED ")
        assert "why: no longer pct_change('4s') = 0 < \u22123" in resolved.message
        await daemon.dispatcher_idle()
        assert len(receiver.delivered) == 2  # fired once, resolved once
        assert daemon.alerts() == []


async def test_a_restart_inside_the_window_keeps_the_history(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """The price before a restart is still the window's reference after it."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    settings = daemon_settings(tmp_path, sim, receiver, DROP_IN_6S)
    async with running(settings) as daemon:
        series = daemon.history.series[SOL_USDC]
        await wait_until(lambda: series.first_at is not None, timeout=20)
        first_at = series.first_at
    assert first_at is not None
    async with running(settings) as daemon:
        restored = daemon.history.series[SOL_USDC]
        assert restored.first_at == first_at  # not the first quote of this process
        await asyncio.sleep(max(0.0, first_at + 6.3 - time.time()))
        await set_price(sim, daemon, 96.0)
        await receiver.wait_until(lambda: len(receiver.delivered) >= 1)
        assert receiver.delivered[0].title == "SOL fell -4.0% in 6s"


async def test_a_cross_pair_rule_subscribes_the_pair_it_reads_and_shows_it(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """A rule on USDC/SOL that reads SOL/USDC gets it subscribed, reads it when its own quote
    comes, and status lists both pairs."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 200_000_000)
    sim.quotes.set_quote(USDC, SOL, "100000000", 500_000_000)
    async with running(daemon_settings(tmp_path, sim, receiver, CROSS_PAIR)) as daemon:
        await wait_until(lambda: SOL_USDC in sim.quotes.subscribed_pairs(), timeout=20)
        await wait_until(lambda: daemon.history.price(SOL_USDC) == 200.0, timeout=20)
        await daemon.settled()
        assert receiver.delivered == []  # 200 is not below 180
        sim.quotes.set_quote(SOL, USDC, ONE_SOL, 175_000_000)
        await wait_until(lambda: daemon.history.price(SOL_USDC) == 175.0, timeout=20)
        sim.quotes.set_quote(USDC, SOL, "100000000", 571_000_000)  # its own event
        await receiver.wait_until(lambda: len(receiver.delivered) == 1)
        delivered = receiver.delivered[0]
        assert delivered.title == "SOL is 175.0 while 100 USDC buys 0.571 SOL"
        assert "why: price_of('SOL/USDC') = 175 < 180" in delivered.message
        pairs = {p["pair"]: p for p in daemon.status()["pairs"]}
        assert set(pairs) == {"SOL/USDC", "USDC/SOL"}
        assert pairs["SOL/USDC"]["price"] == 175.0
