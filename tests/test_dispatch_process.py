"""Crash safety with a real process: SIGKILL before and after the outbox confirmed a send."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from notifier.config import DeliverySettings, Settings
from notifier.dispatch import Dispatcher
from notifier.metrics import Metrics
from notifier.store import Store
from tests.receivers import HttpReceiver, running, write_apprise_yaml

ROOT = Path(__file__).resolve().parents[1]

# The child enqueues one notification, runs the delivery loop, says when the outbox has
# confirmed it, then waits to be killed.
CHILD = """
import asyncio, sys
from pathlib import Path
from notifier.config import DeliverySettings, Settings
from notifier.dispatch import Dispatcher, Notification
from notifier.metrics import Metrics
from notifier.store import Store

async def main(state: str, config: str, key: str) -> None:
    settings = Settings(apprise_config=Path(config), state_dir=Path(state), errors_to=[],
                        delivery=DeliverySettings(timeout=60.0, backoff_cap=0.05))
    dispatcher = Dispatcher(Store.open(Path(state)), settings, Metrics())
    dispatcher.enqueue(Notification(key=key, rule_id="r", title=key, body="from the child"))
    print("ENQUEUED", flush=True)
    loop = asyncio.create_task(dispatcher.run())
    while dispatcher.stats()["sent"] == 0:
        await asyncio.sleep(0.01)
    print("CONFIRMED", flush=True)
    await loop

asyncio.run(main(*sys.argv[1:]))
"""


def settings_for(tmp_path: Path, config: Path) -> Settings:
    return Settings(
        apprise_config=config,
        state_dir=tmp_path / "state",
        errors_to=[],
        delivery=DeliverySettings(timeout=10.0, backoff_cap=0.05),
    )


async def start_child(tmp_path: Path, config: Path, key: str) -> asyncio.subprocess.Process:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(tmp_path / "state"),
        str(config),
        key,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )


async def read_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    return line.decode().strip()


async def kill(process: asyncio.subprocess.Process) -> None:
    process.kill()  # SIGKILL: no cleanup, no drain
    await asyncio.wait_for(process.wait(), 30)


async def test_process_killed_before_confirming_is_resent_once_after_restart(
    tmp_path: Path,
) -> None:
    """The channel took the request but the child died before it could mark the row sent:
    a new Dispatcher on the same file sends it again, once."""
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        http.hang_next(1)
        child = await start_child(tmp_path, config, "unconfirmed")
        assert await read_line(child) == "ENQUEUED"
        await http.wait_until(lambda: http.hanging == 1, timeout=30)
        await kill(child)

        dispatcher = Dispatcher(
            Store.open(tmp_path / "state"), settings_for(tmp_path, config), Metrics()
        )
        assert dispatcher.pending_count() == 1
        async with running(dispatcher):
            await http.wait_until(lambda: len(http.delivered) == 1)
            await dispatcher.wait_settled()
        assert http.delivered_titles() == ["unconfirmed"]
        assert http.arrivals == 2  # the hung attempt and exactly one resend
        assert dispatcher.stats()["sent"] == 1


async def test_process_killed_after_confirming_is_not_resent(tmp_path: Path) -> None:
    """The child confirmed the send (row sent, fsynced), then died: nothing is resent."""
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        child = await start_child(tmp_path, config, "confirmed")
        assert await read_line(child) == "ENQUEUED"
        assert await read_line(child) == "CONFIRMED"
        await kill(child)

        dispatcher = Dispatcher(
            Store.open(tmp_path / "state"), settings_for(tmp_path, config), Metrics()
        )
        assert dispatcher.pending_count() == 0
        async with running(dispatcher):
            await dispatcher.wait_settled()
        assert http.delivered_titles() == ["confirmed"]
        assert http.arrivals == 1
        assert dispatcher.stats()["sent"] == 1
