"""Shared fixtures: the real simulator, a real apprise receiver, an HTTP client session, and
a state database. Plain helpers (daemon settings, SOL/USDC, an event sink) are in ``support``."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from notifier.simulator import Simulator
from notifier.store import Store
from tests.pgserver import PgServer
from tests.pgserver import unmet as pg_unmet
from tests.receivers import HttpReceiver
from tests.support import SOL, USDC, daemon_settings

# Re-exported: tests not yet moved to ``tests.support`` import these from here.
__all__ = ["SOL", "USDC", "daemon_settings"]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=1, random_walk=False, coalesce=0.01) as simulator:
        yield simulator


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with HttpReceiver() as http:
        yield http


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp client session for talking to the simulator or the daemon's API."""
    async with aiohttp.ClientSession() as session:
        yield session


MEMORY_LIMIT = 4_000_000  # bytes: far below what any resource bomb of the sandbox would allocate


@pytest.fixture
def small_memory() -> Iterator[None]:
    """Fail the test if Python allocated more than ``MEMORY_LIMIT`` at its peak."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """The state ``Store`` in ``tmp_path / "state"``, migrated, closed after the test."""
    opened = Store.open(tmp_path / "state")
    yield opened
    opened.close()


# -- under CI, a system test that skips has failed -----------------------------------------------

CI_NO_SKIP = "NOTIFIER_CI"  # .ci/run sets it: CI's machine must have what system tests need


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Turn the skip of a ``@pytest.mark.system`` test into a failure when NOTIFIER_CI is set.

    On a laptop without root or systemd such a test skips with its reason; in CI that reason is
    a broken environment, and a green run must not hide that the test never ran.
    """
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not (report.skipped and os.environ.get(CI_NO_SKIP) and item.get_closest_marker("system")):
        return
    if hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    report.outcome = "failed"
    report.longrepr = f"{CI_NO_SKIP} is set: a system test may not skip ({reason})"


# -- a throw-away PostgreSQL (tests/pgserver.py) -----------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the session; a test that needs it is ``@pytest.mark.system``
    and skips (fails under NOTIFIER_CI) where PostgreSQL is not installed."""
    problem = pg_unmet()
    if problem is not None:
        pytest.skip(problem)
    server = PgServer()
    try:
        server.init()
        server.start()
    except Exception as exc:
        server.destroy()
        pytest.fail(f"cannot start a throw-away PostgreSQL: {exc}\n{server.log()}")
    yield server
    server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a new, empty database on the session's server."""
    return pg_server.create_database()
