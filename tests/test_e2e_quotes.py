"""End to end: simulator quotes → real daemon → real apprise → a local HTTP receiver."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from notifier.daemon import Daemon, running
from notifier.simulator import Simulator
from tests.receivers import HttpReceiver, closed_port_url, wait_until, write_apprise_yaml
from tests.support import ONE_SOL, SOL, SOL_ABOVE_200, USDC, daemon_settings, set_price


@pytest.fixture
async def daemon(tmp_path: Path, sim: Simulator, receiver: HttpReceiver) -> AsyncIterator[Daemon]:
    """A daemon running ``SOL_ABOVE_200``, started with SOL quoted at 100 USDC."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    async with running(daemon_settings(tmp_path, sim, receiver, SOL_ABOVE_200)) as started:
        yield started


async def test_crossing_delivers_exactly_one_notification(
    sim: Simulator, receiver: HttpReceiver, daemon: Daemon
) -> None:
    """A crossing of the threshold sends one message; moves inside the until-band send none."""
    await set_price(sim, daemon, 196.0)
    await set_price(sim, daemon, 201.5)
    await receiver.wait_until(lambda: len(receiver.delivered) == 1)
    assert receiver.delivered_titles() == ["SOL at 201.5"]
    for inside_band in (199.0, 200.5, 198.5, 203.0):
        await set_price(sim, daemon, inside_band)
    await set_price(sim, daemon, 197.0)  # resolves (until), no resolved message asked
    await daemon.dispatcher_idle()
    assert len(receiver.delivered) == 1
    await set_price(sim, daemon, 200.2)  # a new crossing fires again
    await receiver.wait_until(lambda: len(receiver.delivered) == 2)
    assert receiver.delivered_titles()[-1] == "SOL at 200.2"


async def test_each_decision_and_each_delivery_result_is_one_log_line(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A firing logs one line naming the rule, the key, the tags and the title; its delivery
    logs one line per channel saying how that channel answered (privacy URLs only)."""
    caplog.set_level(logging.INFO, logger="notifier")
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    settings = daemon_settings(tmp_path, sim, receiver, SOL_ABOVE_200)
    dead = closed_port_url("down")
    write_apprise_yaml(
        settings.apprise_config, [(receiver.url("alerts"), "phone"), (dead, "phone")]
    )
    async with running(settings) as daemon:
        await set_price(sim, daemon, 201.5)
        await receiver.wait_until(lambda: len(receiver.delivered) == 1)
        await wait_until(lambda: any("not delivered" in r.getMessage() for r in caplog.records))
    lines = [r.getMessage() for r in caplog.records]
    decisions = [line for line in lines if line.startswith("rule sol-above-200 ")]
    assert len(decisions) == 1
    assert decisions[0].startswith("rule sol-above-200 firing for ")
    assert decisions[0].endswith(", to phone: 'SOL at 201.5'")
    delivered = [line for line in lines if line.startswith("delivered 'SOL at 201.5'")]
    failed = [line for line in lines if line.startswith("not delivered 'SOL at 201.5'")]
    assert len(delivered) == 1
    assert len(failed) == 1
    for result in (delivered[0], failed[0]):
        assert "(rule sol-above-200, row 1, attempt 1) to phone: " in result
    assert delivered[0].endswith(f"json://127.0.0.1:{receiver.port}/alerts ok")
    assert "/down failed; retrying" in failed[0]


async def test_dropped_connection_is_resubscribed(
    sim: Simulator, receiver: HttpReceiver, daemon: Daemon
) -> None:
    """After the server drops the socket the daemon reconnects, resubscribes and still alerts."""
    await set_price(sim, daemon, 191.0)
    assert sim.quotes.drop_connections() == 1
    await wait_until(lambda: sim.quotes.subscription_count() == 1, timeout=30)
    await set_price(sim, daemon, 205.0)
    await receiver.wait_until(lambda: len(receiver.delivered) == 1, timeout=30)
    assert receiver.delivered_titles() == ["SOL at 205.0"]
    assert daemon.metrics.feed_reconnects.labels("quote")._value.get() >= 1


async def test_broken_rule_file_is_reported_with_line_and_old_rules_keep_running(
    sim: Simulator, receiver: HttpReceiver, daemon: Daemon
) -> None:
    """Saving a broken file reports path:line:col; the last good version keeps alerting."""
    path = daemon.settings.rules_dir / "rules.yaml"
    await set_price(sim, daemon, 191.0)
    path.write_text(
        SOL_ABOVE_200.replace("above: 200", "above: 200\n    bogus: 1"), encoding="utf-8"
    )
    daemon.reload("test")
    files = daemon.status()["rules"]["files"]
    assert files[0]["errors"] == [f"{path}:6:5: unknown key 'bogus'"]
    assert files[0]["rules"] == ["sol-above-200"]
    await set_price(sim, daemon, 202.0)
    await receiver.wait_until(lambda: "SOL at 202.0" in receiver.delivered_titles())
    # errors_to ("admin") hears about the broken file too
    await receiver.wait_until(lambda: any("rule error" in t for t in receiver.delivered_titles()))
