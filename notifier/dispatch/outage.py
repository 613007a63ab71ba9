"""What delivery keeps in memory while the store cannot write (disk full, I/O errors).

Nothing is sent that could not be marked sent, so the dispatcher starts no send during an
outage. Decisions that could not be written wait here in order, up to ``HELD_LIMIT``; the
confirmations of sends that finished but could not be recorded wait here too, so those
channels are never sent the row again. The store is tried again with a capped doubling
backoff; once a write succeeds, all of it is written.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from notifier.dispatch.outbox import NewRow

__all__ = ["HELD_LIMIT", "RETRY_CAP", "Confirmation", "Outage"]

HELD_LIMIT = 1000  # decisions kept while the store cannot write; later ones are dropped
RETRY_BASE = 0.5
RETRY_CAP = 10.0  # longest wait between two tries of the store


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A channel's confirmation that could not be recorded yet."""

    row_id: int
    key: str
    owed: tuple[str, ...]


@dataclass
class Outage:
    """One period of the store refusing writes, from ``since``."""

    reason: str
    since: float
    retry_at: float = 0.0
    tries: int = 0
    held: deque[NewRow] = field(default_factory=deque)
    confirmed: dict[tuple[int, str], Confirmation] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)  # rule id -> decisions dropped
    _keys: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.retry_at = self.since + RETRY_BASE

    def holds(self, key: str) -> bool:
        return key in self._keys

    def hold(self, row: NewRow) -> bool:
        """Keep ``row`` for later; False when the bound dropped it instead."""
        if len(self.held) >= HELD_LIMIT:
            self.dropped[row.rule_id] += 1
            return False
        self._keys.add(row.key)
        self.held.append(row)
        return True

    def confirm(self, confirmation: Confirmation) -> None:
        self.confirmed[(confirmation.row_id, confirmation.key)] = confirmation

    def failed_again(self, now: float) -> None:
        self.tries += 1
        self.retry_at = now + min(RETRY_BASE * 2**self.tries, RETRY_CAP)

    def summary(self) -> str:
        """What the outage cost, for the log line and the report when it ends."""
        kept = f"{len(self.held)} decision(s) kept in memory were written"
        if not self.dropped:
            return kept
        lost = ", ".join(f"{rule}: {n}" for rule, n in sorted(self.dropped.items()))
        return f"{kept}; {sum(self.dropped.values())} beyond {HELD_LIMIT} were dropped ({lost})"
