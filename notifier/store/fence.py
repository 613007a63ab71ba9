"""Fencing: what a store shared by an HA group checks before it lets a member write.

The member holding the lease (``notifier.ha``) gives the store a ``Fence``: its holder id, its
epoch and how long its lease is valid on this machine's monotonic clock. The store refuses
every read and transaction once the fence has lapsed or been revoked, without asking the
server (a frozen member that wakes up sends nothing), and every transaction checks the epoch
in the database in the same transaction. ``Fenced`` is an ``sqlite3.OperationalError`` so
the delivery's store-outage path treats it as a store that cannot write: nothing is sent that
cannot be recorded.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

__all__ = ["Fence", "Fenced"]


class Fenced(sqlite3.OperationalError):
    """This member does not hold the lease (any more): it may not write."""


@dataclass(slots=True)
class Fence:
    holder: str
    epoch: int
    valid_until: float = 0.0  # time.monotonic(); the lease keeper moves it on each renewal
    reason: str = field(default="")

    def extend(self, until: float) -> None:
        if not self.reason:
            self.valid_until = max(self.valid_until, until)

    def revoke(self, reason: str) -> None:
        """From now on every check fails with ``reason``."""
        self.reason = reason or "revoked"
        self.valid_until = 0.0

    def check(self) -> None:
        """Raise ``Fenced`` unless the lease is valid here and now."""
        if self.reason:
            raise Fenced(f"not the active member: {self.reason}")
        if time.monotonic() >= self.valid_until:
            raise Fenced(f"not the active member: the lease of epoch {self.epoch} lapsed")
