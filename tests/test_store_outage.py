"""A full disk under the state store: the real daemon on a 2 MB tmpfs sends nothing it
cannot record, keeps its decisions in memory, says it is not ready, and catches up once
space is free."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from notifier.daemon import Daemon, running
from notifier.dispatch import Dispatcher, Notification
from notifier.dispatch.outage import HELD_LIMIT, Outage
from notifier.dispatch.outbox import NewRow
from notifier.metrics import Metrics
from notifier.simulator import Simulator
from notifier.store import Store
from tests.receivers import HttpReceiver, wait_until, write_apprise_yaml
from tests.receivers import running as delivering
from tests.support import ONE_SOL, SOL, USDC, daemon_settings, set_price
from tests.test_dispatch_delivery import make_settings, note

RULE = """\
rules:
  - id: sol-band
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 200
    until: price < 198
    resolved: true
    notify: [phone]
    title: "SOL at {{ price }}"
"""
PENDING = 5  # swings (a firing and a resolved decision each) while the channel fails
STEPS_WHILE_FULL = 10  # swings while the disk is full


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` for the block (root only)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    mounted = subprocess.run(  # noqa: S603 - fixed arguments
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(f"mount -t tmpfs not permitted here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)  # noqa: S603, S607


def fill(directory: Path) -> Path:
    """Write a ballast file until the filesystem is full; returns it."""
    ballast = directory / "ballast"
    with ballast.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return ballast


async def readyz(http: aiohttp.ClientSession, daemon: Daemon) -> tuple[int, list[str]]:
    assert daemon.http is not None
    async with http.get(f"{daemon.http.bound_url}/readyz") as response:
        return response.status, list((await response.json())["down"])


async def swing(sim: Simulator, daemon: Daemon, i: int) -> list[str]:
    """Fire and resolve once; the titles of the two decisions."""
    high, low = round(201 + i / 100, 2), round(197 - i / 100, 2)
    await set_price(sim, daemon, high)
    await set_price(sim, daemon, low)
    return [f"SOL at {high}", f"RESOLVED SOL at {low}"]


@pytest.mark.system
async def test_a_full_disk_sends_nothing_unrecorded_and_loses_no_decision(
    tmp_path: Path,
    sim: Simulator,
    receiver: HttpReceiver,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rows pending when the store's filesystem fills are not sent again and again while
    their sent mark cannot be written; decisions made meanwhile wait in memory; /readyz
    answers 503 saying why; the outage is logged once; once space is freed every decision
    is delivered and errors_to hears of the outage."""
    caplog.set_level(logging.INFO, logger="notifier")
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    with tiny_filesystem(tmp_path / "state") as state:
        settings = daemon_settings(
            tmp_path,
            sim,
            receiver,
            RULE,
            errors_to=["admin"],
            delivery={
                "backoff_cap": 0.5,
                "timeout": 5.0,
                "rate_limit": {"count": 10_000, "per": "1m"},
            },
        )
        decided: list[str] = []
        async with running(settings) as daemon:
            decided += await swing(sim, daemon, 0)
            await receiver.wait_until(lambda: len(receiver.delivered) == 2, timeout=30)
            receiver.fail_status = 500  # rows pile up, retrying, as the disk fills
            for i in range(1, PENDING + 1):
                decided += await swing(sim, daemon, i)

            ballast = fill(state)
            mark = len(receiver.posts)
            receiver.fail_status = None  # sends succeed; marking them sent cannot
            for i in range(PENDING + 1, PENDING + STEPS_WHILE_FULL + 1):
                decided += await swing(sim, daemon, i)
            await asyncio.sleep(3.0)  # time for a spammer to show itself
            status, down = await readyz(http, daemon)
            while_full = Counter(p.title for p in receiver.posts[mark:])

            ballast.unlink()
            await wait_until(lambda: daemon.dispatcher.store_problem is None, timeout=60)
            ready_after = await readyz(http, daemon)
            await receiver.wait_until(
                lambda: set(decided) <= set(receiver.delivered_titles()), timeout=60
            )
            await receiver.wait_until(
                lambda: any("state store" in t for t in receiver.delivered_titles()), timeout=30
            )
            await daemon.dispatcher_idle()

    delivered = Counter(receiver.delivered_titles())
    print(  # the figures for the closing note
        f"\n{len(decided)} decisions, {STEPS_WHILE_FULL * 2} made while full; POSTs while "
        f"full: {sum(while_full.values())}, per row max {max(while_full.values(), default=0)}; "
        f"deliveries per row max {max(delivered[t] for t in decided)}; "
        f"lost {len(set(decided) - set(delivered))}"
    )
    assert status == 503
    assert any("state store cannot write" in d and "full" in d for d in down)
    assert ready_after[0] == 200
    assert max(while_full.values(), default=0) <= 1  # no row sent again and again
    assert max(delivered[t] for t in decided) <= 2  # at least once, never thousands
    assert set(decided) <= set(delivered)  # nothing decided was lost
    outage_lines = [r for r in caplog.records if "state store cannot write" in r.getMessage()]
    assert len(outage_lines) == 1
    assert sum("state store writes again" in r.getMessage() for r in caplog.records) == 1
    report = [p for p in receiver.delivered if "state store could not write" in p.title]
    assert len(report) == 1
    assert "were written" in report[0].message


async def test_a_store_at_its_page_limit_stops_sends_and_holds_decisions_until_it_grows(
    tmp_path: Path,
) -> None:
    """The same without root: SQLite's ``max_page_count`` makes the database full. Pending
    rows are not re-sent while their sent mark fails, new decisions wait in memory and are
    written once the limit is raised, and each row reaches the channel once."""
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        store = Store.open(tmp_path)
        dispatcher = Dispatcher(store, make_settings(tmp_path, config, backoff_cap=0.2), Metrics())
        async with delivering(dispatcher):
            http.fail_status = 500
            for i in range(5):
                dispatcher.enqueue(note(f"before{i}"))
            await http.wait_until(lambda: len(http.posts) >= 5)
            (pages,) = store.read("PRAGMA page_count")[0]
            store.read(f"PRAGMA max_page_count = {pages}")
            big = "x" * 20_000  # needs new pages: the insert fails like on a full disk
            for i in range(5):
                dispatcher.enqueue(
                    Notification(key=f"while{i}", rule_id="r", title=f"while{i}", body=big)
                )
            await wait_until(lambda: dispatcher.store_problem is not None)
            mark = len(http.posts)
            http.fail_status = None
            await asyncio.sleep(1.0)
            sent_while_full = len(http.posts) - mark
            stats = dispatcher.stats()
            store.read("PRAGMA max_page_count = 1073741823")
            await wait_until(lambda: dispatcher.store_problem is None, timeout=30)
            await http.wait_until(lambda: len(http.delivered) == 10, timeout=30)
            await dispatcher.wait_settled()
        delivered = Counter(http.delivered_titles())
    assert sent_while_full <= 1
    assert stats["held_in_memory"] == 5
    assert "database or disk is full" in str(stats["store_problem"])
    assert set(delivered) == {f"before{i}" for i in range(5)} | {f"while{i}" for i in range(5)}
    assert max(delivered.values()) == 1
    assert dispatcher.stats()["sent"] == 10


def test_the_memory_queue_is_bounded_and_says_what_it_dropped() -> None:
    """Past ``HELD_LIMIT`` decisions are dropped, counted per rule for the recovery report."""
    outage = Outage("database or disk is full", since=0.0)
    rows = [
        NewRow(key=f"k{i}", kind="rule", rule_id=f"r{i % 2}", title="t", body="b",
               severity="info", tags=(), created_at=0.0)
        for i in range(HELD_LIMIT + 3)
    ]  # fmt: skip
    kept = [outage.hold(row) for row in rows]
    assert kept.count(False) == 3
    assert len(outage.held) == HELD_LIMIT
    assert outage.summary().endswith(f"3 beyond {HELD_LIMIT} were dropped (r0: 2, r1: 1)")
    outage.failed_again(now=100.0)
    outage.failed_again(now=100.0)
    assert outage.retry_at == 102.0  # 0.5 s doubling, capped at RETRY_CAP
