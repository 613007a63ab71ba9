"""Per-channel delivery lanes: a slow or dead channel delays only itself, and a reply that
comes after the timeout is recorded instead of turning into re-sends."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from notifier.dispatch import Dispatcher
from notifier.metrics import Metrics
from notifier.store import Store
from tests.receivers import HttpReceiver, running, write_apprise_yaml
from tests.test_dispatch_delivery import make_settings, note

ROWS = 20
SLOW_REPLY = 30.0  # the slow channel answers this late; apprise waits (rto) up to 60 s


@pytest.mark.parametrize("failure", ["slow", "never-answers"])
async def test_a_slow_or_dead_channel_does_not_delay_a_healthy_one(
    tmp_path: Path, failure: str
) -> None:
    """With one channel answering in 30 s (or never), the healthy channel of the same tag
    gets all 20 notifications at once, each once; the bad one holds no more than its own
    lane's sends."""
    async with HttpReceiver() as good, HttpReceiver() as bad:
        config = write_apprise_yaml(
            tmp_path / "apprise.yml",
            [(good.url("good"), "ops"), (bad.url("bad") + "?rto=60", "ops")],
        )
        if failure == "slow":
            bad.delay = SLOW_REPLY
        else:
            bad.hang_next(10 * ROWS)
        settings = make_settings(tmp_path, config, timeout=5.0)
        dispatcher = Dispatcher(Store.open(tmp_path), settings, Metrics())
        async with running(dispatcher, grace=0.5):
            started = time.monotonic()
            for i in range(ROWS):
                dispatcher.enqueue(note(f"n{i}", None, "ops"))
            try:
                await good.wait_until(lambda: len(good.delivered) == ROWS, timeout=15)
            except TimeoutError:
                pytest.fail(
                    f"healthy channel got {len(good.delivered)} of {ROWS} in "
                    f"{time.monotonic() - started:.0f}s beside a {failure} channel"
                )
            in_lane = bad.arrivals
        assert sorted(good.delivered_titles()) == sorted(f"n{i}" for i in range(ROWS))
        assert in_lane <= settings.delivery.concurrency


async def test_a_reply_after_the_timeout_is_recorded_and_never_sent_again(
    tmp_path: Path,
) -> None:
    """Every send times out (0.5 s) but the channel confirms 2 s later: each message
    reaches it once, the late confirmations mark the rows sent, nothing is re-sent."""
    async with HttpReceiver() as late:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(late.url("late") + "?rto=30", "")])
        late.delay = 2.0
        settings = make_settings(tmp_path, config, timeout=0.5)
        dispatcher = Dispatcher(Store.open(tmp_path), settings, Metrics())
        async with running(dispatcher):
            for i in range(4):
                dispatcher.enqueue(note(f"late{i}"))
            await late.wait_until(lambda: len(late.delivered) == 4, timeout=30)
            for _ in range(50):
                await dispatcher.wait_settled()
                if dispatcher.stats()["sent"] == 4:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # room for any re-send to show up
            stats = dispatcher.stats()
        assert sorted(late.delivered_titles()) == [f"late{i}" for i in range(4)]
        assert late.arrivals == 4
        assert (stats["sent"], stats["pending"]) == (4, 0)
