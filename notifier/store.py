"""The SQLite database in ``state_dir``: one file, WAL, each component owns its tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["DB_FILENAME", "open_database"]

DB_FILENAME = "notifier.db"


def open_database(state_dir: Path) -> sqlite3.Connection:
    """Open (creating) ``state_dir/notifier.db`` in WAL mode, autocommit off."""
    state_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        state_dir / DB_FILENAME, isolation_level=None, check_same_thread=False, timeout=10
    )
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a row the outbox confirmed must still be there after a power cut.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn
