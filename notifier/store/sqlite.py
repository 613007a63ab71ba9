"""The SQLite store: one file in ``state_dir``, WAL, ``synchronous=FULL``.

``Store`` is the only owner of the connection. Writers take ``transaction()``; a block opened
inside another on the same thread joins it, which is how a rule-state change and the outbox
row it causes commit together. Reads outside a transaction go through ``read()``. A lock
serialises threads (apprise sends finish on worker threads), so no one ever checks whether
somebody else's transaction happens to be open.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from notifier.store.migrations import MIGRATIONS, Migration

__all__ = ["DB_FILENAME", "Store", "StoreError", "open_database"]

DB_FILENAME = "notifier.db"


class StoreError(Exception):
    """The database cannot be opened or migrated; the message says which and where."""


class Store:
    """Owns one SQLite connection: transactions, reads and the schema version."""

    def __init__(self, conn: sqlite3.Connection, *, path: Path | None = None) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction() on the thread holding the lock
        self._if_rolled_back: list[Callable[[BaseException], None]] = []

    @classmethod
    def open(cls, state_dir: Path, *, migrations: Sequence[Migration] = MIGRATIONS) -> Store:
        """Open (creating) ``state_dir/notifier.db`` and bring its schema up to date."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / DB_FILENAME
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a row the outbox confirmed must still be there after a power cut.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: {exc}") from None
        store = cls(conn, path=path)
        store.migrate(migrations)
        return store

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
        """Apply every step newer than the database's version, each in its own transaction;
        return the versions applied. A database newer than this program is refused."""
        applied: list[int] = []
        current = self.schema_version
        latest = max((m.version for m in migrations), default=0)
        if current > latest:
            raise StoreError(
                f"{self.path}: schema version {current} is newer than this notifier's "
                f"({latest}); upgrade notifier or restore an older state directory"
            )
        for step in sorted(migrations, key=lambda m: m.version):
            if step.version <= current:
                continue
            try:
                with self.transaction() as db:
                    for statement in _statements(step.sql):
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version = {int(step.version)}")
            except sqlite3.Error as exc:
                raise StoreError(
                    f"{self.path}: migration {step.version} ({step.summary}) failed: {exc}"
                ) from None
            applied.append(step.version)
        return applied

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` around the block (``ROLLBACK`` if it raises); a
        block inside another on the same thread joins the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
                self._depth = 0
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._depth = 0
                if self._conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    self._conn.execute("ROLLBACK")
                hooks, self._if_rolled_back = self._if_rolled_back, []
                for hook in hooks:
                    hook(exc)
                raise
            self._if_rolled_back.clear()

    def if_rolled_back(self, hook: Callable[[BaseException], None]) -> None:
        """Call ``hook`` with the error if the open transaction does not commit: how a
        writer learns that what it wrote into a caller's transaction was lost."""
        with self._lock:
            if self._depth:
                self._if_rolled_back.append(hook)

    @property
    def connection(self) -> sqlite3.Connection:
        """Transitional: the raw connection, for components not yet on ``transaction()``."""
        return self._conn

    @property
    def in_transaction(self) -> bool:
        """True while the calling thread (or another) holds an open transaction."""
        return self._depth > 0

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one query, read under the lock (inside a transaction, it sees it)."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _statements(script: str) -> Iterator[str]:
    """Split a migration script into statements (``executescript`` would commit first)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            if statement:
                yield statement
            buffer = ""
    if buffer.strip():
        yield buffer.strip()


def open_database(state_dir: Path) -> sqlite3.Connection:
    """Transitional: ``Store.open(state_dir).connection``."""
    return Store.open(state_dir).connection
