"""Shared fixtures: the real simulator, a real apprise receiver, an HTTP client session, and
a state database. Plain helpers (daemon settings, SOL/USDC, an event sink) are in ``support``."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from notifier.simulator import Simulator
from notifier.store import Store, open_database
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


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """The SQLite state database in ``tmp_path / "state"``, closed after the test."""
    conn = open_database(tmp_path / "state")
    yield conn
    conn.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """The state ``Store`` in ``tmp_path / "state"``, migrated, closed after the test."""
    opened = Store.open(tmp_path / "state")
    yield opened
    opened.close()
