"""The PostgreSQL store: the same contract as SQLite's, over one psycopg 3 connection.

Why psycopg 3 (sync) and not asyncpg: the store is synchronous by contract — the rule engine
writes from the event loop inside a short transaction and apprise's worker threads record
answers — so a blocking driver under the store's lock is the same shape as sqlite3, one code
path for every caller; an async driver would make every writer a coroutine.

Callers' SQL is SQLite's portable dialect; ``dialect.py`` rewrites it (placeholders, DDL
types). Errors come out as ``sqlite3`` errors: a lost or unreachable server is
``StoreUnavailable`` (an ``sqlite3.OperationalError``), which delivery already treats as a
store that cannot write. The next transaction after a lost connection connects again.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from notifier.store.base import Store, StoreError
from notifier.store.dialect import DialectError, translate_ddl, translate_sql
from notifier.store.fence import Fence, Fenced
from notifier.store.migrations import MIGRATIONS, Migration
from notifier.store.sqlite import split_statements

__all__ = [
    "PASSWORD_CREDENTIAL",
    "PgConnection",
    "PostgresStore",
    "StoreUnavailable",
    "is_postgres_url",
    "store_password",
]

PASSWORD_CREDENTIAL = "store_password"  # noqa: S105 - the name of a file in $CREDENTIALS_DIRECTORY
MIGRATION_LOCK = 0x6E6F7469  # advisory lock: two members starting together migrate one by one
CONNECT_TIMEOUT = 5  # seconds
FENCE_SQL = (
    "SELECT epoch FROM ha_lease WHERE name = 'active' AND holder = %s AND epoch = %s FOR SHARE"
)


class StoreUnavailable(sqlite3.OperationalError):
    """The PostgreSQL server cannot be reached or the connection broke: nothing was written
    by the statement (or transaction) that raised it."""


class _PgIntegrityError(sqlite3.IntegrityError):
    pass


class _PgDatabaseError(sqlite3.DatabaseError):
    pass


def is_postgres_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def store_password() -> str | None:
    """``$CREDENTIALS_DIRECTORY/store_password`` if set and not empty; else None, and libpq
    reads ``PGPASSWORD`` (or ``~/.pgpass``) itself."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / PASSWORD_CREDENTIAL
        if path.is_file():
            value = path.read_text(encoding="utf-8").strip()
            if value:
                return value
    return None


def address(url: str) -> str:
    """The store's address for messages: ``postgresql://user@host:port/db``, never a password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _unavailable(where: str, exc: BaseException) -> StoreUnavailable:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnavailable(f"{where}: {first}")


def translate_error(where: str, exc: psycopg.Error) -> sqlite3.Error:
    """A psycopg error as the ``sqlite3`` error callers already handle."""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return _unavailable(where, exc)
    message = f"{where}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
    if isinstance(exc, psycopg.IntegrityError):
        return _PgIntegrityError(message)
    return _PgDatabaseError(message)


class PgCursor:
    """The part of ``sqlite3.Cursor`` callers use, over a psycopg cursor."""

    def __init__(self, cursor: psycopg.Cursor[Any], where: str) -> None:
        self._cursor = cursor
        self._where = where

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        """The id the last INSERT drew from a sequence (an identity column), as SQLite's."""
        try:
            found = self._cursor.connection.execute("SELECT lastval()").fetchone()
        except psycopg.Error:
            return None
        return None if found is None else int(found[0])

    def fetchone(self) -> Any:
        if self._cursor.description is None:
            return None
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        if self._cursor.description is None:
            return []
        return self._cursor.fetchall()


def _adapt(params: Sequence[Any]) -> tuple[Any, ...]:
    # SQLite stores booleans as 0/1 in INTEGER columns; PostgreSQL would refuse a boolean.
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


class PgConnection:
    """What a PostgreSQL transaction yields: ``execute`` and ``executemany`` in SQLite's
    dialect, errors as ``sqlite3`` errors."""

    def __init__(self, conn: psycopg.Connection[Any], where: str) -> None:
        self._conn = conn
        self._where = where

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PgCursor:
        try:
            cursor = self._conn.execute(translate_sql(sql), _adapt(parameters))
        except psycopg.Error as exc:
            raise translate_error(self._where, exc) from None
        return PgCursor(cursor, self._where)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> PgCursor:
        rows = [_adapt(p) for p in parameters]
        cursor = self._conn.cursor()
        try:
            if rows:
                cursor.executemany(translate_sql(sql), rows)
        except psycopg.Error as exc:
            raise translate_error(self._where, exc) from None
        return PgCursor(cursor, self._where)


class PostgresStore(Store):
    """Owns one psycopg connection (autocommit; transactions are explicit ``BEGIN``s)."""

    remote = True

    def __init__(self, url: str, *, password: str | None = None, idle_timeout: float = 5.0) -> None:
        super().__init__()
        self.url = url
        self.address = address(url)
        self._password = password
        self._idle_ms = max(int(idle_timeout * 1000), 500)
        self._pg: psycopg.Connection[Any] | None = None
        self._db: PgConnection | None = None
        self.fence: Fence | None = None  # set by the HA group on the active member

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        password: str | None = None,
        idle_timeout: float = 5.0,
        migrations: Sequence[Migration] | None = None,
    ) -> PostgresStore:
        """Connect and bring the schema up to date; ``StoreError`` names the address."""
        store = cls(url, password=password, idle_timeout=idle_timeout)
        try:
            with store._lock:
                store._connection()
        except StoreUnavailable as exc:
            raise StoreError(f"cannot connect to the store: {exc}", retryable=True) from None
        return store.migrated(migrations)

    def _connection(self) -> psycopg.Connection[Any]:
        """The open connection, connecting again after a loss (under the lock)."""
        conn = self._pg
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            conn.close()
        self._pg = None
        try:
            # A member frozen inside a transaction must not hold the lease row locked past
            # the takeover: the server ends an idle transaction after ``idle_timeout``.
            self._pg = psycopg.connect(
                self.url,
                autocommit=True,
                password=self._password,
                connect_timeout=CONNECT_TIMEOUT,
                application_name="notifier",
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=2,
                tcp_user_timeout=10_000,
                options=f"-c idle_in_transaction_session_timeout={self._idle_ms}",
            )
        except psycopg.Error as exc:
            raise _unavailable(self.address, exc) from None
        return self._pg

    def _fresh_connection(self) -> psycopg.Connection[Any]:
        """The connection with a transaction begun: a server restart is noticed here, before
        anything is written, and answered by connecting once more (the old one is gone)."""
        conn = self._connection()
        try:
            conn.execute("BEGIN")
        except psycopg.OperationalError:
            conn.close()
            conn = self._connection()
            conn.execute("BEGIN")
        return conn

    @property
    def schema_version(self) -> int:
        rows = self.read("SELECT version FROM schema_version")
        return int(rows[0][0]) if rows else 0

    def migrate(self, migrations: Sequence[Migration] | None = None) -> list[int]:
        """Apply every step newer than the database's version in ONE transaction (PostgreSQL
        has transactional DDL: all or nothing), under an advisory lock, so members starting
        together migrate once. A database newer than this program is refused."""
        steps = sorted(MIGRATIONS if migrations is None else migrations, key=lambda m: m.version)
        applied: list[int] = []
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                self._apply(conn, steps, applied)
                conn.execute("COMMIT")
            except (psycopg.Error, DialectError) as exc:
                self._rollback()
                failed = next((m for m in steps if m.version not in applied), None)
                what = "the schema" if failed is None else f"migration {failed.version}"
                what += f" ({failed.summary})" if failed is not None and applied else ""
                raise StoreError(
                    f"{self.address}: {what} failed: {str(exc).strip().splitlines()[0]}",
                    retryable=isinstance(exc, psycopg.OperationalError),
                ) from None
            except BaseException:
                self._rollback()
                raise
        return applied

    def _apply(
        self, conn: psycopg.Connection[Any], steps: Sequence[Migration], applied: list[int]
    ) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        found = conn.execute("SELECT version FROM schema_version").fetchone()
        if found is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        current = 0 if found is None else int(found[0])
        latest = max((m.version for m in steps), default=0)
        if current > latest:
            raise StoreError(
                f"{self.address}: schema version {current} is newer than this "
                f"notifier's ({latest}); upgrade notifier"
            )
        for step in steps:
            if step.version <= current:
                continue
            for statement in split_statements(step.sql):
                conn.execute(translate_ddl(statement).encode())
            applied.append(step.version)
        if applied:
            conn.execute("UPDATE schema_version SET version = %s", (applied[-1],))

    def _begin(self) -> PgConnection:
        fence = self.fence
        if fence is not None:
            fence.check()
        try:
            conn = self._fresh_connection()
            if fence is not None:
                _check_epoch(conn, fence)
        except psycopg.Error as exc:
            self._rollback()
            raise translate_error(self.address, exc) from None
        except Fenced:
            self._rollback()
            raise
        self._db = PgConnection(conn, self.address)
        return self._db

    def _joined(self) -> PgConnection:
        assert self._db is not None
        return self._db

    def _commit(self) -> None:
        conn = self._pg
        try:
            if conn is None:
                raise psycopg.OperationalError("the connection was closed")
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            raise translate_error(self.address, exc) from None
        finally:
            self._db = None

    def _rollback(self) -> None:
        self._db = None
        conn = self._pg
        if conn is None or conn.closed or conn.broken:
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            conn.close()  # in an unknown state: the next transaction connects afresh

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        fence = self.fence
        if fence is not None:  # a lapsed member does not even look for work
            fence.check()
        with self._lock:
            if self._db is not None:  # inside this thread's transaction
                return self._db.execute(sql, params).fetchall()
            try:
                return self._connection().execute(translate_sql(sql), _adapt(params)).fetchall()
            except psycopg.OperationalError:
                pass  # the server ended the connection (a restart): a read may be tried again
            except psycopg.Error as exc:
                raise translate_error(self.address, exc) from None
            return PgConnection(self._connection(), self.address).execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._pg is not None:
                self._pg.close()
                self._pg = None


def _check_epoch(conn: psycopg.Connection[Any], fence: Fence) -> None:
    """Lock the lease row for the transaction (a takeover waits for it) and raise ``Fenced``
    unless it still names this holder and epoch."""
    if conn.execute(FENCE_SQL, (fence.holder, fence.epoch)).fetchone() is None:
        fence.revoke(f"epoch {fence.epoch} was taken over by another member")
        raise Fenced(f"not the active member: {fence.reason}")
