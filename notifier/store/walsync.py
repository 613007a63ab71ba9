"""Durability of a WAL database off the committing thread: the fsync and the checkpoint.

SQLite's ``synchronous=FULL`` fsyncs the write-ahead log inside every ``COMMIT``, on the
thread that commits — for notifier that is the event loop, which then stalls for the disk
(0.2 ms here when quiet, 5 to 13 ms when other processes write). With ``synchronous=NORMAL`` a
commit only writes the log; this module makes those writes durable by fsyncing the log file
itself (an fsync of any descriptor of a file flushes that file), either at once on the
caller's thread (``sync``) or shortly on its own thread (``soon``), and runs the checkpoints
there too instead of inside whichever commit crosses SQLite's threshold.

Every commit is counted (``committed``, under the store's lock, after ``COMMIT`` returned),
so a sync that reads the count before its fsync covers every commit counted: concurrent
callers share one fsync.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
import time
from pathlib import Path

__all__ = ["CHECKPOINT_FRAMES", "IDLE_AFTER", "SYNC_DELAY", "HeldFile", "WalSync"]

log = logging.getLogger(__name__)

# The log is copied into the database file once this many of its frames are not (SQLite's own
# threshold, which it applies inside the commit that crosses it).
CHECKPOINT_FRAMES = 1000
# A commit that does not wait for the disk reaches it within this (plus the fsync); a send
# syncs before the channel in any case.
SYNC_DELAY = 0.05
# Seconds without a commit after which the store's thread stops looking every SYNC_DELAY and
# waits to be woken by the next commit.
IDLE_AFTER = 1.0
RETRY_AFTER = 1.0  # a background sync that failed is tried again after this long


class WalSync:
    """Makes the commits of one WAL database durable; one per ``SqliteStore``."""

    def __init__(self, db_path: Path) -> None:
        self._db_path = db_path
        self._wal = HeldFile(db_path.with_name(db_path.name + "-wal"))
        self._shm = HeldFile(db_path.with_name(db_path.name + "-shm"))
        self._fsync_lock = threading.Lock()  # one fsync at a time; the others share it
        self._wake = threading.Condition()
        self._committed = 0  # commits whose log writes are done
        self._synced = 0  # commits known to be on disk
        self._wanted = False  # commits wait for the thread's next sync
        self._idle = False  # the thread waits to be woken (else it looks every SYNC_DELAY)
        self._closed = False
        self._checkpointer: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="notifier-store-sync", daemon=True)
        self._thread.start()

    @property
    def synced(self) -> bool:
        """True when every commit counted so far is on disk."""
        return self._synced >= self._committed

    def committed(self) -> None:
        """Count one commit (called by the committing thread right after ``COMMIT``)."""
        self._committed += 1

    def sync(self) -> None:
        """Return once every commit counted before the call is on disk; raise
        ``sqlite3.OperationalError`` if the disk refuses (as a failing ``COMMIT`` would)."""
        wanted = self._committed
        if self._synced >= wanted or self._closed:
            return
        with self._fsync_lock:
            if self._synced >= wanted or self._closed:
                return
            upto = self._committed  # read before the fsync: it covers all of these
            self._fsync()
            self._synced = max(self._synced, upto)

    def soon(self) -> None:
        """Have the commits counted so far synced on the store's own thread within
        ``SYNC_DELAY`` (and the log checkpointed when it is due). Usually just a flag: while
        commits keep coming the thread looks every ``SYNC_DELAY`` by itself, and only a thread
        gone idle is woken, so a commit (the event loop's, on the way to a send) seldom hands
        the GIL to this thread."""
        if self._wanted:  # the thread's next sync reads the commit count after this one
            return
        with self._wake:  # never between ``_next``'s read of the flag and its reset
            self._wanted = True
            if self._idle:  # set under ``_wake`` before it waits: see ``_next``
                self._wake.notify()

    def close(self) -> None:
        """Stop the thread (a sync in progress finishes first). The store then closes its
        connection, which checkpoints and syncs whatever is left, and then ``release``."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=30)

    def release(self) -> None:
        """Close the files, once the store's connection is closed (see ``HeldFile``)."""
        with self._fsync_lock:
            self._wal.close()
            self._shm.close()

    def _fsync(self) -> None:
        try:
            fd = self._wal.fd()
            if fd is not None:
                os.fsync(fd)
        except OSError as exc:
            raise sqlite3.OperationalError(
                f"disk I/O error: cannot sync {self._wal.path.name}: {exc.strerror or exc}"
            ) from None

    def _next(self, quiet_since: float) -> bool | None:
        """Wait for the next look: True when commits want a sync, False when none came, None
        once closed. Ticks every ``SYNC_DELAY``; after ``IDLE_AFTER`` without a commit, waits
        to be woken instead (``_idle`` is set under the lock before the flag is tested, so a
        ``soon`` either sees it and wakes the thread, or set the flag before the test)."""
        with self._wake:
            if time.monotonic() - quiet_since >= IDLE_AFTER:
                self._idle = True
                while not self._wanted and not self._closed:
                    self._wake.wait()
                self._idle = False
            if not self._closed:  # gather the commits of the next moment into one sync
                self._wake.wait(SYNC_DELAY)
            if self._closed:
                return None
            wanted, self._wanted = self._wanted, False
            return wanted

    def _run(self) -> None:
        failing = False
        quiet_since = time.monotonic()
        while True:
            wanted = self._next(quiet_since)
            if wanted is None:
                break
            if not wanted:
                continue
            quiet_since = time.monotonic()
            try:
                self.sync()
                if self._frames_behind() >= CHECKPOINT_FRAMES:
                    self._checkpoint()
            except sqlite3.Error as exc:
                if not failing:  # once, not every second: the store's users report it too
                    log.error("store: %s; trying again every %gs", exc, RETRY_AFTER)  # noqa: TRY400
                failing = True
                with self._wake:
                    self._wanted = True
                    self._wake.wait(RETRY_AFTER)
            else:
                if failing:
                    log.warning("store: syncs and checkpoints work again")
                failing = False
        if self._checkpointer is not None:
            self._checkpointer.close()

    def _frames_behind(self) -> int:
        """Frames of the log not yet copied into the database file, from the wal-index header
        in the -shm file (SQLite's documented WAL format: ``mxFrame`` at byte 16,
        ``nBackfill`` at byte 96, native byte order); 0 when it cannot be read."""
        try:
            fd = self._shm.fd()
            header = b"" if fd is None else os.pread(fd, 100, 0)
        except OSError:
            return 0
        if len(header) < 100:
            return 0
        frames = int(struct.unpack_from("=I", header, 16)[0])
        backfilled = int(struct.unpack_from("=I", header, 96)[0])
        return max(0, frames - backfilled)

    def _checkpoint(self) -> None:
        """Copy the log into the database file, on this thread and its own connection;
        PASSIVE never waits for the writer."""
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(self._db_path, isolation_level=None, timeout=10)
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


class HeldFile:
    """A descriptor of one of SQLite's files, opened once and kept until the store's connection
    is closed. Closing any descriptor of a file drops every POSIX lock the process holds on it
    — SQLite's own included: a -shm opened and closed beside a live connection lets another
    connection think the wal-index unused and reset it under the first one's mapping
    (SIGBUS). So a file is opened again only when SQLite replaced it (another inode)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._inode = 0

    def fd(self) -> int | None:
        """A descriptor of the file as it is now; None when there is none."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            return None
        if self._fd is not None and inode != self._inode:
            self.close()  # SQLite's locks are on the new file, not this one
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            self._inode = os.fstat(self._fd).st_ino
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
