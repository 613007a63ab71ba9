"""The store contract every backend keeps: re-entrant transactions on one connection, reads,
the schema version, and a hook for writers that joined a transaction which did not commit.

Callers see one code path whatever the backend: ``transaction()`` yields a ``Connection``
that takes SQLite's dialect (``?`` placeholders, the portable subset of SQL), and failures
are ``sqlite3`` errors (``sqlite3.OperationalError`` when the store cannot write, which is how
delivery's outage handling recognises them).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

if TYPE_CHECKING:
    from notifier.store.migrations import Migration

__all__ = ["Connection", "Cursor", "Store", "StoreError"]


class StoreError(Exception):
    """The database cannot be opened or migrated; the message names the path (or the store
    address) and what is wrong.

    ``retryable`` is False when starting again cannot help until someone acts (permissions, a
    damaged or too new database), True when it may (a full disk, a lock held elsewhere, a
    server that does not answer yet).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class Cursor(Protocol):
    """What a statement returns: ``sqlite3.Cursor`` has it, so does the PostgreSQL one."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What a transaction yields: ``sqlite3.Connection`` has it, so does the PostgreSQL one."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


class Store(ABC):
    """One connection, one writer at a time: a lock serialises threads (apprise sends finish
    on worker threads), and a block opened inside another on the same thread joins it, which
    is how a rule-state change and the outbox row it causes commit together."""

    # Behind a network connection: every statement waits for a round trip, so a long write
    # (a quote history save) belongs on a worker thread rather than on the event loop.
    remote = False

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction() on the thread holding the lock
        self._if_rolled_back: list[Callable[[BaseException], None]] = []
        self._after_commit: list[Callable[[], None]] = []
        self.path: Path | None = None

    @classmethod
    def open(cls, state_dir: Path, *, migrations: Sequence[Migration] | None = None) -> Store:
        """The embedded default: the SQLite store in ``state_dir`` (see ``sqlite.py``)."""
        from notifier.store.sqlite import SqliteStore  # noqa: PLC0415 - the subclass

        if migrations is None:
            return SqliteStore.open(state_dir)
        return SqliteStore.open(state_dir, migrations=migrations)

    def migrated(self, migrations: Sequence[Migration] | None) -> Self:
        """This store, its schema brought up to date; closed if that fails."""
        try:
            self.migrate(migrations)
        except StoreError:
            self.close()
            raise
        return self

    # -- what a backend provides -----------------------------------------------------------

    @abstractmethod
    def _begin(self) -> Connection:
        """Open a transaction (taking the write lock) and return the connection to use."""

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None:
        """Roll back whatever is open; never raise (the connection may be gone)."""

    @property
    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def migrate(self, migrations: Sequence[Migration] | None = None) -> list[int]:
        """Apply every step newer than the database's version; return the versions applied."""

    @abstractmethod
    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one query, read under the lock (inside a transaction, it sees it)."""

    @abstractmethod
    def close(self) -> None: ...

    # -- the contract ----------------------------------------------------------------------

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[Connection]:
        """Begin … commit around the block (roll back if it raises); a block inside another
        on the same thread joins the outer transaction (whose keyword counts).

        By default the block returns once its commit is on disk. ``wait=False``: the commit
        does not wait for the disk (it survives the process dying at once) — the store syncs
        it on its own thread within milliseconds, and ``sync()`` (which every send calls
        before the channel) waits for it; for the event loop's writes (rule states, outbox
        rows, delivery marks) and the quote history's batches.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._joined()
                finally:
                    self._depth -= 1
                return
            db = self._begin()
            self._depth = 1
            try:
                yield db
                self._depth = 0
                self._commit()
            except BaseException as exc:
                self._depth = 0
                self._rollback()
                self._after_commit.clear()
                hooks, self._if_rolled_back = self._if_rolled_back, []
                for hook in hooks:
                    hook(exc)
                raise
            self._if_rolled_back.clear()
            committed, self._after_commit = self._after_commit, []
        # Outside the lock: other threads may write meanwhile.
        if wait:
            self.sync()
        self._sync_soon()
        for then in committed:
            then()

    def sync(self) -> None:  # noqa: B027 - a backend whose commits are durable has nothing to do
        """Return once every commit made so far is on disk (``sqlite3.OperationalError`` if
        the disk refuses). Here: each commit already is, when it returns."""

    def history(self) -> Store:
        """The store to keep the quote history in: this one (a backend may give it a file of
        its own)."""
        return self

    @property
    def synced(self) -> bool:
        """True when every commit made so far is on disk (``sync()`` would return at once)."""
        return True

    def _sync_soon(self) -> None:  # noqa: B027 - optional, as sync
        """Have the commits made so far reach the disk shortly, without waiting (and do
        whatever else the backend does after commits, off the committing thread)."""

    @abstractmethod
    def _joined(self) -> Connection:
        """The connection of the transaction already open on this thread."""

    def if_rolled_back(self, hook: Callable[[BaseException], None]) -> None:
        """Call ``hook`` with the error if the open transaction does not commit: how a
        writer learns that what it wrote into a caller's transaction was lost."""
        with self._lock:
            if self._depth:
                self._if_rolled_back.append(hook)

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` on this thread once the open transaction committed (now, with none
        open); never if it rolls back. How a writer acts on what is durable at once, without
        waiting for the caller's outer transaction to say so. ``hook`` must not raise."""
        with self._lock:
            if self._depth:
                self._after_commit.append(hook)
                return
        hook()

    @property
    def in_transaction(self) -> bool:
        """True while the calling thread (or another) holds an open transaction."""
        return self._depth > 0
