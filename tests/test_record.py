"""``notifier run --record``: events reach the file as they come, so a crash loses at most a
second of them."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import orjson

from notifier.simulator import Simulator
from tests.receivers import HttpReceiver, wait_until
from tests.support import ONE_SOL, SOL, USDC
from tests.test_e2e_ops import PYTHON, clean_env, write_config

FLUSH_BOUND = 1.0  # what the README promises: recorded events are in the file within a second
PRICES = [150_000_000 + i for i in range(5)]  # USDC base units for 1 SOL, all under the rule


async def push_quote(sim: Simulator, amount_out: int) -> None:
    """Quote ``amount_out`` for 1 SOL and wait until the simulator pushed it."""
    sent = sim.quotes.quotes_sent
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, amount_out)
    await wait_until(lambda: sim.quotes.quotes_sent > sent, timeout=10)


async def test_recorded_events_survive_a_sigkill(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """Quotes received more than a second before SIGKILL are all in the recording."""
    config = write_config(tmp_path, sim, receiver.url("alerts"))
    record = tmp_path / "events.jsonl"
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "notifier", "run", "-c", str(config), "--record", str(record),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=clean_env(), cwd=tmp_path,
    )  # fmt: skip
    try:
        await wait_until(lambda: sim.quotes.subscription_count() == 1, timeout=30)
        for amount_out in PRICES:
            await push_quote(sim, amount_out)
        await asyncio.sleep(FLUSH_BOUND + 0.5)  # the last quote's delivery, then one flush
        proc.kill()
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [orjson.loads(line) for line in record.read_bytes().splitlines()]
    recorded = [int(e["amount_out"]) for e in lines if e["type"] == "quote"]
    assert recorded[-len(PRICES) :] == PRICES
