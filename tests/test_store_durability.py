"""When SQLite commits reach the disk: at once for a default transaction, on the store's own
thread for ``wait=False`` (the event loop's writes), and always before a send; the log is
checkpointed off the committing thread."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from notifier.dispatch import Dispatcher
from notifier.metrics import Metrics
from notifier.store import SqliteStore, Store, walsync
from tests.receivers import HttpReceiver, running, wait_until, write_apprise_yaml
from tests.test_dispatch_delivery import make_settings, note


class Fsyncs:
    """Every ``os.fsync`` of the process: the file's inode and the thread that called it."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def of(self, path: Path) -> list[str]:
        inode = path.stat().st_ino
        return [thread for ino, thread in self.calls if ino == inode]


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Fsyncs:
    seen = Fsyncs()
    real = os.fsync

    def fsync(fd: int) -> None:
        seen.calls.append((os.fstat(fd).st_ino, threading.current_thread().name))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def wal_of(store: SqliteStore) -> Path:
    assert store.path is not None
    return store.path.with_name(store.path.name + "-wal")


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def insert(store: Store, text: str, *, wait: bool = True) -> None:
    with store.transaction(wait=wait) as db:
        db.execute("INSERT INTO outbox_sends VALUES (?, ?)", (text, 1.0))


def test_a_default_commit_is_on_disk_when_it_returns(tmp_path: Path, fsyncs: Fsyncs) -> None:
    store = Store.open(tmp_path)
    assert isinstance(store, SqliteStore)
    try:
        before = len(fsyncs.of(wal_of(store)))
        insert(store, "durable")
        assert store.synced
        mine = fsyncs.of(wal_of(store))[before:]
        assert threading.current_thread().name in mine  # the committing thread synced it
        assert b"durable" in wal_of(store).read_bytes()  # what the fsync covered
    finally:
        store.close()


def test_a_commit_that_does_not_wait_is_synced_on_the_stores_thread(
    tmp_path: Path, fsyncs: Fsyncs
) -> None:
    store = Store.open(tmp_path)
    assert isinstance(store, SqliteStore)
    try:
        store.sync()
        fsyncs.calls.clear()
        insert(store, "soon", wait=False)
        wait_for(lambda: store.synced)
        threads = fsyncs.of(wal_of(store))
        assert threads, "nothing synced the log"
        assert threading.current_thread().name not in threads
        assert set(threads) == {"notifier-store-sync"}
        assert store.read("SELECT tag FROM outbox_sends") == [("soon",)]
    finally:
        store.close()


@pytest.mark.parametrize("idle_after", [0.05, 3600.0])
def test_commits_are_synced_whether_the_stores_thread_ticks_or_sleeps(
    tmp_path: Path, fsyncs: Fsyncs, monkeypatch: pytest.MonkeyPatch, idle_after: float
) -> None:
    """While commits come, the store's thread looks every SYNC_DELAY without being woken;
    after IDLE_AFTER without one it sleeps until a commit wakes it. Either way a commit that
    does not wait reaches the disk, on that thread."""
    monkeypatch.setattr(walsync, "IDLE_AFTER", idle_after)
    store = Store.open(tmp_path)
    assert isinstance(store, SqliteStore)
    try:
        for n in range(3):
            time.sleep(0.3)  # past IDLE_AFTER = 0.05: asleep; with an hour: still ticking
            fsyncs.calls.clear()
            insert(store, f"after a pause {n}", wait=False)
            wait_for(lambda: store.synced)
            assert set(fsyncs.of(wal_of(store))) == {"notifier-store-sync"}
    finally:
        store.close()


def test_the_log_is_checkpointed_off_the_committing_thread(tmp_path: Path) -> None:
    """SQLite's own checkpoint runs inside the commit that crosses 1,000 pages; here it is off,
    and the store's thread copies the log into the database file instead."""
    store = Store.open(tmp_path)
    assert isinstance(store, SqliteStore)
    assert store.path is not None
    try:
        assert store.read("PRAGMA wal_autocheckpoint") == [(0,)]
        start = store.path.stat().st_size
        blob = "x" * 4000
        for n in range(800):  # ~3.2 MB through the log: past 1,000 frames of 4 KiB
            insert(store, f"{n}:{blob}", wait=False)
        wait_for(lambda: store.path is not None and store.path.stat().st_size - start > 2_000_000)
    finally:
        store.close()
    reopened = Store.open(tmp_path)
    try:
        assert reopened.read("SELECT count(*) FROM outbox_sends") == [(800,)]
    finally:
        reopened.close()


def delivered(http: HttpReceiver, count: int) -> Callable[[], bool]:
    return lambda: len(http.delivered) == count


class UnsyncedStore(SqliteStore):
    """A store whose own thread never syncs: only an explicit ``sync()`` does. Counts its
    commits, and how many of them the last sync covered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commits = 0
        self.synced_upto = 0
        self.synced_on: set[int] = set()  # the threads that called ``sync``
        self.syncs_needed = 0  # calls of ``sync`` that found commits not on disk yet

    def _commit(self) -> None:
        super()._commit()
        self.commits += 1

    def sync(self) -> None:
        upto = self.commits
        self.synced_on.add(threading.get_ident())
        if self.synced_upto < upto:
            self.syncs_needed += 1
        super().sync()
        self.synced_upto = max(self.synced_upto, upto)

    def _sync_soon(self) -> None:
        pass


class SyncedAtArrival(HttpReceiver):
    """Notes, for every request, how many of the store's commits were on disk then."""

    def __init__(self) -> None:
        super().__init__()
        self.store: UnsyncedStore | None = None
        self.synced_at_arrival: list[int] = []

    async def _handle(self, request: web.Request) -> web.Response:
        assert self.store is not None
        self.synced_at_arrival.append(self.store.synced_upto)
        return await super()._handle(request)


async def test_rows_committed_together_start_together_after_one_sync(tmp_path: Path) -> None:
    """Rows committed in one stretch of the loop's work (the engine's batch of events) start
    their sends as soon as it lets the loop run, in the next turn and before the delivery
    loop looks, after one sync on the loop for them all; before, nothing is in flight."""
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        Store.open(tmp_path).close()
        store = UnsyncedStore.open(tmp_path)
        assert isinstance(store, UnsyncedStore)
        dispatcher = Dispatcher(store, make_settings(tmp_path, config), Metrics())
        async with running(dispatcher):
            await dispatcher.wait_settled()
            store.synced_on.clear()
            needed = store.syncs_needed
            assert dispatcher.enqueue(note("alone"))
            with store.transaction(wait=False):  # as the rule engine does (``StateStore``)
                assert dispatcher.enqueue(note("joined"))
                assert dispatcher.stats()["in_flight"] == 0
            assert dispatcher.stats()["in_flight"] == 0  # the committing code still runs
            assert store.synced_upto < store.commits
            await asyncio.sleep(0)  # one turn of the loop
            assert dispatcher.stats()["in_flight"] == 2
            assert store.synced_upto == store.commits
            assert store.syncs_needed == needed + 1  # one sync for both rows
            assert threading.get_ident() in store.synced_on  # the loop's, before the hand-off
            await http.wait_until(lambda: len(http.delivered) == 2)
            await dispatcher.wait_settled()
        store.close()
    assert sorted(http.delivered_titles()) == ["alone", "joined"]
    assert http.arrivals == 2


async def test_nothing_reaches_a_channel_before_its_commit_is_on_disk(tmp_path: Path) -> None:
    """The outbox's commits do not wait for the disk (the event loop makes them); the send
    syncs first, so a channel never hears of a row a power cut could still take back."""
    async with SyncedAtArrival() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        Store.open(tmp_path).close()
        store = UnsyncedStore.open(tmp_path)
        assert isinstance(store, UnsyncedStore)
        http.store = store
        dispatcher = Dispatcher(store, make_settings(tmp_path, config), Metrics())
        written: list[int] = []
        async with running(dispatcher):
            await dispatcher.wait_settled()
            for n in range(3):
                store.synced_on.clear()
                assert dispatcher.enqueue(note(f"n{n}"))
                assert threading.get_ident() not in store.synced_on  # the enqueue did not wait
                written.append(store.commits)  # the commit that wrote the row
                await http.wait_until(delivered(http, n + 1))
            await dispatcher.wait_settled()
        store.close()
    assert len(http.synced_at_arrival) == 3
    for row_commit, synced in zip(written, http.synced_at_arrival, strict=True):
        assert synced >= row_commit


class RefusingStore(UnsyncedStore):
    """An ``UnsyncedStore`` whose disk refuses every sync while ``refuse`` is set."""

    refuse = False

    def sync(self) -> None:
        if self.refuse:
            raise sqlite3.OperationalError("disk I/O error")
        super().sync()


async def test_a_row_the_disk_will_not_sync_reaches_no_channel_until_it_does(
    tmp_path: Path,
) -> None:
    """The loop's sync before a send fails, and so does the worker's: the attempt fails
    (retried after a backoff) and the channel hears nothing. Once the disk syncs again the
    row goes, on disk first."""
    async with SyncedAtArrival() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        Store.open(tmp_path).close()
        store = RefusingStore.open(tmp_path)
        assert isinstance(store, RefusingStore)
        http.store = store
        dispatcher = Dispatcher(store, make_settings(tmp_path, config), Metrics())
        async with running(dispatcher):
            await dispatcher.wait_settled()
            store.refuse = True
            assert dispatcher.enqueue(note("held"))  # its commit does not wait for the disk
            written = store.commits
            await wait_until(lambda: dispatcher.stats()["failed"] == 1)
            assert http.posts == []
            store.refuse = False
            await http.wait_until(delivered(http, 1))
            await dispatcher.wait_settled()
        store.close()
    assert http.synced_at_arrival[0] >= written
