"""End to end: hostile rules next to a healthy one in the real daemon, against the simulator.

The hostile titles are stopped at their budget and disabled with a located error in the log,
``status`` and one ``errors_to`` message; the healthy rule keeps notifying, the event loop keeps
its cadence and the systemd watchdog keeps being pinged (issue 11, item 1).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from notifier.daemon import running
from notifier.simulator import Simulator
from notifier.statusreport import render_status
from tests.receivers import HttpReceiver, wait_until
from tests.support import ONE_SOL, SOL, USDC, daemon_settings, set_price
from tests.test_rules_budget import BIG_INTEGERS_UNDER_THE_CAP, WIDE_FORMATS_IN_A_LOOP, quote_rules

STALL_AT_MOST = 1.0  # seconds; a budget is 50 ms, the bound only allows for a loaded machine
WATCHDOG_USEC = 1_000_000  # pings every 0.5 s

RULES = quote_rules(
    {
        "healthy": "healthy at {{ price }}",
        "hostile-cpu": BIG_INTEGERS_UNDER_THE_CAP,
        "hostile-memory": WIDE_FORMATS_IN_A_LOOP,
    }
)


class LoopTicker:
    """Measures the longest time the event loop went without running this task."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.longest = 0.0

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.period)
            self.longest = max(self.longest, time.perf_counter() - started - self.period)


class Watchdog:
    """A datagram socket standing in for systemd's: records when ``WATCHDOG=1`` arrives."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.pings: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            datagram = await loop.sock_recv(self.sock, 65536)
            if b"WATCHDOG=1" in datagram.split(b"\n"):
                self.pings.append(time.monotonic())


@pytest.fixture
def watchdog(monkeypatch: pytest.MonkeyPatch) -> Iterator[Watchdog]:
    """``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` as systemd sets them, for this process."""
    with tempfile.TemporaryDirectory(prefix="sd", dir="/tmp") as short:  # sun_path: 108 bytes
        server = Watchdog(f"{short}/notify.sock")
        monkeypatch.setenv("NOTIFY_SOCKET", f"{short}/notify.sock")
        monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield server
        server.sock.close()


@asynccontextmanager
async def background(*jobs: LoopTicker | Watchdog) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(job.run()) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def disabled_titles(receiver: HttpReceiver) -> list[str]:
    return [t for t in receiver.delivered_titles() if t.endswith(" disabled")]


@pytest.mark.timeout(180)
async def test_hostile_rules_are_disabled_and_the_healthy_one_keeps_notifying(
    tmp_path: Path,
    sim: Simulator,
    receiver: HttpReceiver,
    watchdog: Watchdog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both hostile titles stop at their budget once; each is disabled at its ``title:`` key
    (log, status, one errors_to message), the healthy rule fires on every crossing, no loop
    stall reaches a second and the watchdog pings keep their period throughout."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    settings = daemon_settings(tmp_path, sim, receiver, RULES)
    path = settings.rules_dir / "rules.yaml"
    ticker = LoopTicker()
    async with running(settings) as daemon, background(ticker, watchdog):
        await set_price(sim, daemon, 201.0)
        await receiver.wait_until(lambda: "healthy at 201.0" in receiver.delivered_titles())
        await receiver.wait_until(lambda: len(disabled_titles(receiver)) == 2)
        disabled_at = time.monotonic()
        for price in (190.0, 205.0, 190.0, 206.0):
            await set_price(sim, daemon, price)
        await receiver.wait_until(lambda: "healthy at 206.0" in receiver.delivered_titles())
        await wait_until(lambda: sum(p > disabled_at for p in watchdog.pings) >= 3, timeout=30)
        await daemon.dispatcher_idle()

        files = daemon.status()["rules"]["files"]
        [errors] = [f["errors"] for f in files]
        assert [e.split(": title: ")[0] for e in errors] == [f"{path}:11:12", f"{path}:16:12"]
        assert "rule 'hostile-cpu' disabled until its file changes: stopped after" in errors[0]
        assert "over the memory budget per evaluation" in errors[1]
        assert errors[0] in render_status(daemon.status())
        assert daemon.summary().endswith("2 rule(s) disabled")
        assert {d.rule.id for d in daemon.engine.disabled()} == {"hostile-cpu", "hostile-memory"}

    healthy = [t for t in receiver.delivered_titles() if t.startswith("healthy")]
    assert healthy == ["healthy at 201.0", "healthy at 205.0", "healthy at 206.0"]
    assert sorted(disabled_titles(receiver)) == [
        "notifier: rule hostile-cpu disabled",
        "notifier: rule hostile-memory disabled",
    ]
    logged = [r.getMessage() for r in caplog.records if " disabled until " in r.getMessage()]
    assert [line.split(": title: ")[0] for line in logged] == [f"{path}:11:12", f"{path}:16:12"]
    assert ticker.longest < STALL_AT_MOST
    assert len(watchdog.pings) >= 3
    gaps = [b - a for a, b in zip(watchdog.pings, watchdog.pings[1:], strict=False)]
    assert max(gaps) < WATCHDOG_USEC / 1e6  # never near systemd's WatchdogSec


@pytest.mark.timeout(180)
async def test_a_rule_disabled_at_start_up_does_not_stop_the_daemon(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """Started with the price already above 200, the first quote disables the hostile rules
    during start-up; the daemon runs, the healthy rule notifies, and a restart with the same
    file does not message errors_to again."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 210_000_000)
    settings = daemon_settings(tmp_path, sim, receiver, RULES)
    healthy = "healthy at 212.0"
    for starts in (1, 2):  # the second start restores the firing states: a crossing re-renders
        async with running(settings) as daemon:
            await set_price(sim, daemon, 190.0)
            await set_price(sim, daemon, 212.0)
            await wait_until(lambda: len(daemon.engine.disabled()) == 2, timeout=30)
            await daemon.dispatcher_idle()
        assert receiver.delivered_titles().count(healthy) == starts  # once per start
    assert len(disabled_titles(receiver)) == 2


async def test_a_rule_failing_at_run_time_tells_errors_to_once_an_hour(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """A title that raises on every firing (SPEC §12): the rule keeps notifying with the
    failure as its title, and ``errors_to`` hears of it once, located, however often it fails
    within the hour."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    rules = quote_rules({"fragile": "{{ 1 // (price - price) }}"})
    settings = daemon_settings(tmp_path, sim, receiver, rules)
    path = settings.rules_dir / "rules.yaml"
    async with running(settings) as daemon:
        for price in (201.0, 190.0, 205.0, 190.0, 206.0):
            await set_price(sim, daemon, price)
        await receiver.wait_until(
            lambda: sum("title failed to render" in t for t in receiver.delivered_titles()) == 3
        )
        await daemon.dispatcher_idle()
    reports = [p for p in receiver.delivered if p.title == "notifier: rule fragile failed"]
    assert len(reports) == 1
    assert reports[0].message.startswith(f"{path}:6:12: title: ")
