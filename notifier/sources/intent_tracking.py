"""Which intents the poller tracks, and where each comes from: the config's ``track``, the
rules' intents, or ``track`` at run time. Ids added at run time, labels and last statuses
persist in the ``intent_tracking`` table, so a restart resumes without re-announcing statuses
already seen."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from notifier.backoff import Backoff, BackoffPolicy
from notifier.events import TERMINAL_INTENT_STATUSES, validate_intent_id
from notifier.store import Store

__all__ = ["IntentTracking", "PolledIntent", "TrackedIntent", "valid_id"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrackedIntent:
    """One tracked intent as ``notifier status`` shows it."""

    intent_id: str
    label: str | None
    status: str | None
    polling: bool  # False once terminal
    origins: tuple[str, ...]  # "config", "rules", "api"
    last_polled_at: float | None
    detail: str


class PolledIntent:
    """Poll state of one intent."""

    def __init__(self, intent_id: str, policy: BackoffPolicy) -> None:
        self.intent_id = intent_id
        self.label: str | None = None  # set through ``track``
        self.pinned = False  # added through ``track``; survives restarts
        self.status: str | None = None
        self.due = 0.0  # loop time of the next poll
        self.in_flight = False
        self.not_found = False
        self.last_polled_at: float | None = None
        self.detail = "not polled yet"
        self.backoff: Backoff = policy.start()

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_INTENT_STATUSES


class IntentTracking:
    """The tracked intents (the union of config, rules and ``track``), loaded from and saved
    to the store."""

    def __init__(self, store: Store, from_config: Iterable[str], policy: BackoffPolicy) -> None:
        self._store = store
        self._policy = policy
        self._intents: dict[str, PolledIntent] = {}
        self._from_config = frozenset(from_config)
        self._from_rules: frozenset[str] = frozenset()
        self._rule_labels: Mapping[str, str] = {}
        for intent_id, label, pinned, status in store.read(
            "SELECT intent_id, label, pinned, last_status FROM intent_tracking"
        ):
            if not valid_id(intent_id):
                continue
            intent = self._intent(intent_id)
            intent.label, intent.pinned, intent.status = label, bool(pinned), status

    def set_rules(self, intents: Iterable[str], labels: Mapping[str, str]) -> None:
        # The rule model validates ids already; this keeps any other caller off the URL path.
        self._from_rules = frozenset(i for i in intents if valid_id(i))
        self._rule_labels = dict(labels)

    def track(self, intent_id: str, label: str | None) -> bool:
        """Track ``intent_id`` across restarts; True when it was not tracked through ``track``
        before. A new label replaces the old."""
        validate_intent_id(intent_id)
        intent = self._intent(intent_id)
        created = not intent.pinned
        intent.pinned = True
        if label is not None:
            intent.label = label
        self.save(intent)
        return created

    def untrack(self, intent_id: str) -> bool:
        """Forget a ``track``; True if it was tracked that way."""
        intent = self._intents.get(intent_id)
        if intent is None or not intent.pinned:
            return False
        intent.pinned = False
        self.save(intent)
        return True

    def views(self) -> list[TrackedIntent]:
        """Every tracked intent, terminal ones included, sorted by id."""
        return [
            TrackedIntent(
                intent_id=intent.intent_id,
                label=self.label(intent),
                status=intent.status,
                polling=not intent.terminal,
                origins=self._origins(intent),
                last_polled_at=intent.last_polled_at,
                detail=intent.detail,
            )
            for intent in sorted(self.tracked(), key=lambda i: i.intent_id)
        ]

    def tracked(self) -> list[PolledIntent]:
        for intent_id in self._from_config | self._from_rules:
            self._intent(intent_id)
        return [i for i in self._intents.values() if self._origins(i)]

    def label(self, intent: PolledIntent) -> str | None:
        return intent.label or self._rule_labels.get(intent.intent_id)

    def save(self, intent: PolledIntent) -> None:
        try:
            with self._store.transaction() as db:
                db.execute(
                    """INSERT INTO intent_tracking
                        (intent_id, label, pinned, last_status, updated_at)
                    VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (intent_id) DO UPDATE SET label = excluded.label,
                        pinned = excluded.pinned, last_status = excluded.last_status,
                        updated_at = excluded.updated_at""",
                    (
                        intent.intent_id,
                        intent.label,
                        int(intent.pinned),
                        intent.status,
                        time.time(),
                    ),
                )
        except sqlite3.Error:
            log.exception("intent %s: could not persist its state", intent.intent_id)

    def _intent(self, intent_id: str) -> PolledIntent:
        intent = self._intents.get(intent_id)
        if intent is None:
            intent = self._intents[intent_id] = PolledIntent(intent_id, self._policy)
        return intent

    def _origins(self, intent: PolledIntent) -> tuple[str, ...]:
        found = (
            ("config", intent.intent_id in self._from_config),
            ("rules", intent.intent_id in self._from_rules),
            ("api", intent.pinned),
        )
        return tuple(name for name, present in found if present)


def valid_id(intent_id: str) -> bool:
    """Whether ``intent_id`` may go into a URL; a bad one is logged (ids come from the store
    or a caller, both of which should have validated it)."""
    try:
        validate_intent_id(intent_id)
    except ValueError as exc:
        reason = str(exc)
    else:
        return True
    log.error("intent id skipped: %s", reason)
    return False
