"""What delivery keeps in memory while the store cannot write (disk full, I/O errors).

Nothing is sent that could not be marked sent, so the dispatcher starts no send during an
outage. Decisions that could not be written wait here in order, up to ``HELD_LIMIT``; the
confirmations of sends that finished but could not be recorded wait here too, so those
channels are never sent the row again. The store is tried again with a capped doubling
backoff; once a write succeeds, all of it is written.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from notifier.dispatch.outbox import NewRow, Outbox
from notifier.dispatch.ratelimit import Admit
from notifier.durations import format_duration
from notifier.metrics import Metrics
from notifier.timestamps import rfc3339

if TYPE_CHECKING:
    from notifier.store import Store

__all__ = ["HELD_LIMIT", "RETRY_CAP", "Confirmation", "Outage", "StoreOutage"]

log = logging.getLogger("notifier.dispatch")

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


class StoreOutage:
    """The dispatcher's view of the store's health: the current ``Outage``, if any, what
    waits in it, and the tries that end it."""

    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        metrics: Metrics,
        *,
        now: Callable[[], float],
        admit: Admit,
        report_error: Callable[[str, str, str], bool],
        resumed: Callable[[], None],
        wake: Callable[[], None],
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._metrics = metrics
        self._now = now
        self._admit = admit
        self._report_error = report_error
        self._resumed = resumed
        self._wake = wake
        self.current: Outage | None = None

    @property
    def problem(self) -> str | None:
        """Why the store cannot write, or None."""
        if self.current is None:
            return None
        return f"state store cannot write: {self.current.reason}"

    def failed(self, exc: sqlite3.OperationalError) -> None:
        """The store refused a write: an outage starts, unless one is on."""
        if self.current is None:
            self.current = Outage(str(exc), self._now())
            log.error(
                "state store cannot write (%s): nothing is sent until it can; new "
                "decisions wait in memory (up to %d)",
                exc,
                HELD_LIMIT,
            )
        self._wake()

    def lost(self, row: NewRow, exc: BaseException) -> None:
        """The transaction that wrote ``row`` (the engine's) did not commit."""
        if isinstance(exc, sqlite3.OperationalError):
            self.failed(exc)
            self.hold(row)

    def hold(self, row: NewRow) -> bool:
        """Keep ``row`` until the store writes; False when the bound dropped it."""
        outage = self.current
        assert outage is not None
        if outage.holds(row.key):
            return True  # the same decision again (its transaction failed after our write)
        first_drop = not outage.dropped
        if outage.hold(row):
            self._metrics.notifications.labels("queued").inc()
            return True
        if first_drop:
            log.error(
                "%d decisions wait for the state store: dropping new ones until it writes "
                "again, starting with %r (rule %s)",
                HELD_LIMIT,
                row.title,
                row.rule_id,
            )
        return False

    def confirm(self, exc: sqlite3.OperationalError, confirmation: Confirmation) -> None:
        """A send was confirmed but the store refused to record it: keep it until it writes,
        so the channel is never sent the row again."""
        self.failed(exc)
        assert self.current is not None
        self.current.confirm(confirmation)

    def recover(self, now: float) -> None:
        """Try the store again: write what waited, in one transaction, or back off."""
        outage = self.current
        assert outage is not None
        try:
            with self._store.transaction():
                for c in outage.confirmed.values():
                    self._outbox.record_channel(c.row_id, c.key, owed=c.owed, now=now)
                for row in outage.held:
                    row_id = self._outbox.add(row, now)
                    if row_id is not None:
                        self._admit(row_id, row.title, row.tags, now)
                self._outbox.probe()
        except sqlite3.Error as exc:
            outage.reason = str(exc)
            outage.failed_again(now)
            return
        self.current = None
        lasted = format_duration(max(now - outage.since, 0.0))
        log.warning("state store writes again after %s; %s", lasted, outage.summary())
        self._report_error(
            f"store-outage|{outage.since}",
            f"notifier: the state store could not write for {lasted}",
            f"From {rfc3339(outage.since)} the state store refused writes ({outage.reason}); "
            f"nothing was sent meanwhile. {outage.summary()}.",
        )
        self._resumed()

    def stopping(self) -> None:
        """Shutdown: one last try of the store, then say what is lost if it still refuses."""
        if self.current is not None:
            self.recover(self._now())
        if self.current is not None and (self.current.held or self.current.confirmed):
            log.error(
                "stopping while the state store cannot write: %d decision(s) and %d "
                "confirmation(s) kept in memory are lost",
                len(self.current.held),
                len(self.current.confirmed),
            )
