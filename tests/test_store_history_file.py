"""The quote history's own SQLite file: saved there, not in notifier.db; taken over from an
older version's notifier.db; started empty when damaged; never waiting for the main store."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from notifier.history.persist import HistoryStore
from notifier.store import Store
from notifier.store.sqlite import DB_FILENAME, HISTORY_FILENAME, SqliteStore
from tests.test_history_persist import START, _book, _play, _restored, _same

STREAM = [(0, 0.05, 101.0), (1, 0.35, 7.5), (2, 61.0, 3.25), (0, 3700.0, 99.0), (1, 1.0, 8.0)]


def open_sqlite(state_dir: Path) -> SqliteStore:
    store = Store.open(state_dir)
    assert isinstance(store, SqliteStore)
    return store


def test_the_history_is_kept_in_its_own_file(tmp_path: Path) -> None:
    store = open_sqlite(tmp_path)
    try:
        history = store.history()
        assert history is not store
        assert history.path == tmp_path / HISTORY_FILENAME
        assert store.history() is history  # one owner, opened once
        book = _book()
        _play(book, STREAM, START)
        HistoryStore(history).save(book)
        assert store.read("SELECT count(*) FROM quote_history") == [(0,)]
        _same(book, _restored(history))
    finally:
        store.close()
    reopened = open_sqlite(tmp_path)
    try:
        _same(book, _restored(reopened.history()))
    finally:
        reopened.close()


def test_an_older_versions_history_moves_to_the_new_file(tmp_path: Path) -> None:
    """Before this file existed the history lived in notifier.db: the first start takes it
    over (and clears it there), so an upgrade keeps the windows."""
    store = open_sqlite(tmp_path)
    book = _book()
    _play(book, STREAM, START)
    HistoryStore(store).save(book)  # as an older version saved it
    store.close()
    assert not (tmp_path / HISTORY_FILENAME).exists()

    store = open_sqlite(tmp_path)
    try:
        _same(book, _restored(store.history()))
        assert store.read("SELECT count(*) FROM quote_history") == [(0,)]
        assert store.read("SELECT count(*) FROM quote_history_pairs") == [(0,)]
    finally:
        store.close()


def test_a_damaged_history_file_is_set_aside_and_the_history_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_sqlite(tmp_path)
    store.history()
    store.close()
    (tmp_path / HISTORY_FILENAME).write_bytes(b"not a database, " * 512)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"{HISTORY_FILENAME}{suffix}").unlink(missing_ok=True)

    caplog.set_level(logging.WARNING, logger="notifier.store")
    store = open_sqlite(tmp_path)
    try:
        history = store.history()
        assert history.read("SELECT count(*) FROM quote_history") == [(0,)]
        assert any("history starts empty" in r.getMessage() for r in caplog.records)
        assert list(tmp_path.glob(f"{HISTORY_FILENAME}.damaged-*"))
        assert (tmp_path / DB_FILENAME).exists()
    finally:
        store.close()


def test_a_history_save_in_progress_does_not_hold_up_the_main_store(tmp_path: Path) -> None:
    """The engine's commits on the event loop never wait behind a history batch."""
    store = open_sqlite(tmp_path)
    saving, release = threading.Event(), threading.Event()

    def slow_save() -> None:
        with store.history().transaction(wait=False) as db:
            db.execute("INSERT INTO quote_history_pairs VALUES ('p', '{}', 1.0)")
            saving.set()
            release.wait(30)

    saver = threading.Thread(target=slow_save)
    saver.start()

    def engine_write() -> None:
        with store.transaction(wait=False) as db:  # would wait for the saver's lock if shared
            db.execute("INSERT INTO outbox_sends VALUES ('t', 1.0)")

    writer = threading.Thread(target=engine_write)
    try:
        assert saving.wait(30)
        writer.start()
        writer.join(30)
        assert not writer.is_alive(), "the main store waited for the history save"
        assert store.read("SELECT tag FROM outbox_sends") == [("t",)]
    finally:
        release.set()
        saver.join(30)
        writer.join(30)
        store.close()
