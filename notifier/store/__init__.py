"""The daemon's state: one ``Store`` owns the database, hands out transactions and migrates
the schema at start. SQLite (``sqlite.py``) is the embedded default."""

from __future__ import annotations

from notifier.store.migrations import MIGRATIONS, Migration
from notifier.store.sqlite import (
    DB_FILENAME,
    DamagedStoreError,
    Store,
    StoreError,
)

__all__ = [
    "DB_FILENAME",
    "MIGRATIONS",
    "DamagedStoreError",
    "Migration",
    "Store",
    "StoreError",
]
