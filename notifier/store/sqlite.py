"""The SQLite store: one file in ``state_dir``, in WAL mode.

``SqliteStore`` is the only owner of the connection; the transaction contract (re-entrant
blocks, one writer at a time, ``if_rolled_back``, durability) is ``Store``'s, in ``base.py``.
Commits write the log (``synchronous=NORMAL``); ``WalSync`` (``walsync.py``) makes them durable
— at once for a default transaction, shortly on its own thread for ``wait=False`` — and
checkpoints the log off the committing thread.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from notifier.store.base import Store, StoreError
from notifier.store.migrations import MIGRATIONS, Migration
from notifier.store.walsync import WalSync

__all__ = [
    "DB_FILENAME",
    "HISTORY_FILENAME",
    "DamagedStoreError",
    "SqliteStore",
    "split_statements",
]

log = logging.getLogger(__name__)

DB_FILENAME = "notifier.db"
HISTORY_FILENAME = "history.db"  # the quote history: see SqliteStore.history
_HISTORY_TABLES = (
    ("quote_history_pairs", "pair, state, saved_at"),
    ("quote_history", "pair, level, block, data"),
)
DB_COMPANIONS = ("-wal", "-shm")  # SQLite's files beside the database, named after it
DAMAGED_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
# Failures that starting again may cure (space freed, a lock released, a flaky disk).
TRANSIENT_CODES = {
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_NOMEM,
}
TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM}


class DamagedStoreError(StoreError):
    """The database file is damaged or empty. It was renamed to ``kept_as`` (with its -wal and
    -shm), so nothing overwrites it and the next start begins with an empty database."""

    def __init__(self, message: str, kept_as: Path | None) -> None:
        super().__init__(message)
        self.kept_as = kept_as


class SqliteStore(Store):
    """Owns one SQLite connection: transactions, reads and the schema version."""

    def __init__(self, conn: sqlite3.Connection, *, path: Path | None = None) -> None:
        super().__init__()
        self._conn = conn
        self.path = path
        conn.execute("PRAGMA journal_mode=WAL")
        # A commit writes the log and returns; WalSync fsyncs it (a row the outbox confirmed
        # is still there after a power cut) and runs the checkpoints, not the committer.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        self._disk = WalSync(path or _file_of(conn))
        self._history: SqliteStore | None = None

    def history(self) -> Store:
        """The quote history's own database file beside this one (``history.db``), opened
        once and closed with this store: its saves (megabytes every few seconds with many
        pairs) then never hold this store's lock nor pass through its log, which every send
        fsyncs. A new one takes over the history an older version kept in this file; a
        damaged one is moved aside and the history starts empty."""
        with self._lock:
            if self._history is None and self.path is not None:
                self._history = self._open_history(self.path.parent)
            return self._history or self

    def _open_history(self, state_dir: Path) -> SqliteStore:
        fresh = not (state_dir / HISTORY_FILENAME).exists()
        try:
            history = SqliteStore.open(state_dir, filename=HISTORY_FILENAME)
        except DamagedStoreError as exc:
            log.warning("%s; the quote history starts empty", exc)
            fresh = False
            history = SqliteStore.open(state_dir, filename=HISTORY_FILENAME)
        if fresh and self.read("SELECT 1 FROM quote_history_pairs LIMIT 1"):
            history.take_history_from(self)
        return history

    def take_history_from(self, older: SqliteStore) -> None:
        """Copy the quote history ``older`` holds into this file, then delete it there."""
        assert older.path is not None
        self._conn.execute("ATTACH DATABASE ? AS older", (str(older.path),))
        try:
            with self.transaction() as db:
                for table, columns in _HISTORY_TABLES:
                    db.execute(
                        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM older.{table}"
                    )
        finally:
            self._conn.execute("DETACH DATABASE older")
        with older.transaction() as db:
            for table, _ in _HISTORY_TABLES:
                db.execute(f"DELETE FROM {table}")

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        migrations: Sequence[Migration] | None = None,
        filename: str = DB_FILENAME,
    ) -> SqliteStore:
        """Open (creating) ``state_dir/notifier.db`` and bring its schema up to date.

        Raise ``StoreError`` naming the path; a damaged or empty database is first moved aside
        (``DamagedStoreError``), never opened over or overwritten."""
        _writable_dir(state_dir)
        path = state_dir / filename
        if path.is_dir():
            raise StoreError(f"{path}: is a directory, not the database file")
        if path.exists():
            _check_intact(path)
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            _prove_writable(conn)
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            if exc.sqlite_errorcode & 0xFF in DAMAGED_CODES:
                raise _damaged(path, f"the database is damaged ({exc})") from None
            raise _sqlite_error(path, "cannot open the database", exc) from None
        store = cls(conn, path=path)
        return store.migrated(migrations)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, migrations: Sequence[Migration] | None = None) -> list[int]:
        """Apply every step newer than the database's version, each in its own transaction;
        return the versions applied. A database newer than this program is refused."""
        steps = MIGRATIONS if migrations is None else migrations
        applied: list[int] = []
        current = self.schema_version
        latest = max((m.version for m in steps), default=0)
        if current > latest:
            raise StoreError(
                f"{self.path}: schema version {current} is newer than this notifier's "
                f"({latest}); upgrade notifier or restore an older state directory"
            )
        for step in sorted(steps, key=lambda m: m.version):
            if step.version <= current:
                continue
            try:
                with self.transaction() as db:
                    for statement in split_statements(step.sql):
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version = {int(step.version)}")
            except sqlite3.Error as exc:
                raise _sqlite_error(
                    self.path, f"migration {step.version} ({step.summary}) failed", exc
                ) from None
            applied.append(step.version)
        return applied

    def _begin(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def _joined(self) -> sqlite3.Connection:
        return self._conn

    def _commit(self) -> None:
        self._conn.execute("COMMIT")
        self._disk.committed()

    def sync(self) -> None:
        self._disk.sync()

    @property
    def synced(self) -> bool:
        return self._disk.synced

    def _sync_soon(self) -> None:
        self._disk.soon()

    def _rollback(self) -> None:
        if self._conn.in_transaction:  # SQLite may have rolled back already (disk full)
            self._conn.execute("ROLLBACK")

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        if self._history is not None:
            self._history.close()
        self._disk.close()
        with self._lock:
            self._conn.close()
        self._disk.release()  # only now: see HeldFile


def _file_of(conn: sqlite3.Connection) -> Path:
    """The file of a connection's main database."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return Path(file)
    raise StoreError("the connection has no main database")


def _writable_dir(state_dir: Path) -> None:
    """Create ``state_dir`` if needed and prove a file can be created in it."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=state_dir):
            pass
    except (FileExistsError, NotADirectoryError):
        raise StoreError(f"{state_dir}: the state directory is not a directory") from None
    except OSError as exc:
        raise StoreError(
            f"{state_dir}: cannot write the state directory ({exc.strerror or exc}); "
            "it must be a directory notifier's user can write",
            retryable=exc.errno in TRANSIENT_ERRNOS,
        ) from None


def _check_intact(path: Path) -> None:
    """Raise ``DamagedStoreError`` for an empty, foreign or corrupt database file. Read-only:
    a read-write connection would checkpoint the -wal into the damaged file and delete it."""
    if path.stat().st_size == 0:
        raise _damaged(path, "the database file is empty (0 bytes), its state is lost")
    try:
        probe = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            problems = [row[0] for row in probe.execute("PRAGMA quick_check(3)")]
        finally:
            probe.close()
    except sqlite3.Error as exc:
        if exc.sqlite_errorcode & 0xFF in DAMAGED_CODES:
            raise _damaged(path, f"the database is damaged ({exc})") from None
        raise _sqlite_error(path, "cannot read the database", exc) from None
    if problems != ["ok"]:
        found = " ".join("; ".join(problems).split())  # quick_check's lines, on one line
        raise _damaged(path, f"the database is damaged ({found})")


def _prove_writable(conn: sqlite3.Connection) -> None:
    """Rewrite the schema version in a transaction rolled back: a read-only file fails here,
    at start, instead of at the first delivery."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(f"PRAGMA user_version = {version}")
    finally:
        conn.execute("ROLLBACK")


def _sqlite_error(path: Path | None, what: str, exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_READONLY:
        return StoreError(f"{path}: {what}: {exc}; it must be writable by notifier's user")
    transient = code is None or code & 0xFF in TRANSIENT_CODES
    return StoreError(f"{path}: {what}: {exc}", retryable=transient)


def _damaged(path: Path, problem: str) -> DamagedStoreError:
    """Rename a damaged database and its companions to ``<name>.damaged-<UTC time>``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    serial = 1
    while kept.exists():  # never rename over an earlier damaged copy
        serial += 1
        kept = path.with_name(f"{path.name}.damaged-{stamp}-{serial}")
    moved: list[str] = []
    try:
        for suffix in ("", *DB_COMPANIONS):
            source = path.with_name(path.name + suffix)
            with suppress(FileNotFoundError):
                source.rename(kept.with_name(kept.name + suffix))
                moved.append(suffix)
    except OSError as exc:
        return DamagedStoreError(
            f"{path}: {problem}; it could not be moved aside ({exc.strerror or exc}): move it "
            "and its -wal/-shm files away, then start notifier again (docs/install.md)",
            None,
        )
    companions = _with([suffix for suffix in moved if suffix])
    return DamagedStoreError(
        f"{path}: {problem}; kept as {kept.name}{companions}; start notifier again to begin "
        "with an empty database, after recovering unsent notifications from it if needed "
        "(docs/install.md, 'Damaged database')",
        kept,
    )


def _with(companions: list[str]) -> str:
    return f" (with its {'/'.join(companions)})" if companions else ""


def split_statements(script: str) -> Iterator[str]:
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
