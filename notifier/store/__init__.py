"""The daemon's state: one ``Store`` owns the database, hands out transactions and migrates
the schema at start. SQLite (``sqlite.py``) is the embedded default; PostgreSQL
(``postgres.py``, imported on demand: it needs psycopg) is the store an HA group shares."""

from __future__ import annotations

from notifier.store.base import Connection, Cursor, Store, StoreError
from notifier.store.fence import Fence, Fenced
from notifier.store.migrations import MIGRATIONS, Migration
from notifier.store.sqlite import DB_FILENAME, DamagedStoreError, SqliteStore

__all__ = [
    "DB_FILENAME",
    "MIGRATIONS",
    "Connection",
    "Cursor",
    "DamagedStoreError",
    "Fence",
    "Fenced",
    "Migration",
    "SqliteStore",
    "Store",
    "StoreError",
]
