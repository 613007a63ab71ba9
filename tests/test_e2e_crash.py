"""Durability of the real ``notifier run`` process: SIGKILL before and after a confirmed send."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from notifier.simulator import Simulator
from notifier.store import DB_FILENAME
from tests.receivers import HttpReceiver, wait_until
from tests.support import ONE_SOL, SOL, SOL_ABOVE_200, USDC
from tests.test_e2e_ops import clean_env, daemon_process, write_config

CANARY = """\
  - id: canary-above-300
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 300
    title: "canary {{ price }}"
"""
RULES = SOL_ABOVE_200 + CANARY


def outbox_states(tmp_path: Path) -> list[str]:
    """What the daemon's outbox says, read from its SQLite file as an operator would."""
    with sqlite3.connect(f"file:{tmp_path / 'state' / DB_FILENAME}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute("SELECT state FROM outbox ORDER BY id")]


async def restart_and_sing_the_canary(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, config: Path
) -> None:
    """Start the daemon again and wait until it evaluated fresh quotes (the canary arrives)."""
    async with daemon_process(config, clean_env()) as proc:
        await wait_until(lambda: sim.quotes.subscription_count() == 1, timeout=30)
        sim.quotes.set_quote(SOL, USDC, ONE_SOL, 301_000_000)
        await receiver.wait_until(lambda: "canary 301.0" in receiver.delivered_titles(), timeout=40)
        await wait_until(lambda: outbox_states(tmp_path).count("pending") == 0, timeout=30)
        proc.kill()
        await proc.wait()


async def test_killed_between_writing_and_confirming_resends_once_after_restart(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """SIGKILL while the send is in flight: the restarted daemon sends it, once."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 150_000_000)
    config = write_config(tmp_path, sim, receiver.url("alerts"), rules=RULES)
    receiver.hang_next(1)  # the first delivery reaches the channel but is never answered
    async with daemon_process(config, clean_env()) as proc:
        await wait_until(lambda: sim.quotes.subscription_count() == 1, timeout=30)
        sim.quotes.set_quote(SOL, USDC, ONE_SOL, 201_500_000)
        await receiver.wait_until(lambda: receiver.hanging == 1, timeout=40)
        assert outbox_states(tmp_path) == ["pending"]
        proc.kill()
        await proc.wait()
    await restart_and_sing_the_canary(tmp_path, sim, receiver, config)
    assert receiver.delivered_titles().count("SOL at 201.5") == 1
    assert outbox_states(tmp_path) == ["sent", "sent"]


async def test_killed_after_confirming_does_not_resend(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """SIGKILL after the outbox recorded the send: the restarted daemon never sends it again."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 150_000_000)
    config = write_config(tmp_path, sim, receiver.url("alerts"), rules=RULES)
    async with daemon_process(config, clean_env()) as proc:
        await wait_until(lambda: sim.quotes.subscription_count() == 1, timeout=30)
        sim.quotes.set_quote(SOL, USDC, ONE_SOL, 201_500_000)
        await receiver.wait_until(lambda: len(receiver.delivered) == 1, timeout=40)
        await wait_until(lambda: outbox_states(tmp_path) == ["sent"], timeout=30)
        proc.kill()
        await proc.wait()
    await restart_and_sing_the_canary(tmp_path, sim, receiver, config)
    assert receiver.delivered_titles() == ["SOL at 201.5", "canary 301.0"]
