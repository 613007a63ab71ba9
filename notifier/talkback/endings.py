"""When a silence or snooze ends: an alert it covered that still fires (unacknowledged, not
muted otherwise) notifies once, with a message of its own dedup key."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from notifier.notification import Notification
from notifier.rules.messages import notification
from notifier.talkback.model import Snooze
from notifier.talkback.store import TalkbackStore

if TYPE_CHECKING:
    from notifier.rules.compiled import Rule
    from notifier.rules.ruleset import RuleSet
    from notifier.rules.state import AlertState
    from notifier.store import Store

__all__ = ["AlertBook", "Endings", "MuteChecks", "Sink"]

log = logging.getLogger("notifier.talkback")

KEEP_ENDED = 7 * 86400.0  # ended silences stay in the store this long

Facts = tuple[str, str | None, tuple[str, ...]]


class AlertBook(Protocol):
    """What the talkback needs of the rule engine (``Engine`` is one)."""

    rules: RuleSet

    def alerts(self) -> list[dict[str, Any]]: ...

    def state_of(self, rule_id: str, key: str) -> AlertState | None: ...


class Sink(Protocol):
    def enqueue(self, notification: Notification) -> bool: ...


class MuteChecks(Protocol):
    """The mutes still in force (``Talkback`` answers)."""

    def rule_facts(
        self, rule_id: str, severity: str, source: str | None, tags: Iterable[str]
    ) -> Facts: ...

    def silenced_by(
        self, rule: str, key: str | None, now: float, facts: Facts | None = None
    ) -> list[str]: ...

    def snoozed(self, rule: str, key: str | None, now: float) -> bool: ...

    def acknowledged(self, rule: str, key: str | None, episode: float | None) -> bool: ...


class Endings:
    """The messages owed when silences and snoozes end; each ending is handled (and marked so
    in the store) in one transaction with its messages."""

    def __init__(
        self, store: Store, db: TalkbackStore, book: AlertBook, sink: Sink, mutes: MuteChecks
    ) -> None:
        self._store = store
        self._db = db
        self._book = book
        self._sink = sink
        self._mutes = mutes

    def silences_ended(self, now: float) -> int:
        """Handle every silence that ended and was not handled yet; how many messages."""
        sent = 0
        for silence in self._db.ended_silences(now):
            with self._store.transaction():
                for rule, key in self._firing():
                    facts = self._mutes.rule_facts(rule, "info", None, ())
                    if not silence.matchers.matches(rule, key, *facts):
                        continue
                    sent += self._still_firing(rule, key, now, f"silence {silence.id}")
                self._db.silence_handled(silence.id)
            self._db.prune_silences(now - KEEP_ENDED)
        return sent

    def snooze_ended(self, snooze: Snooze, now: float) -> int:
        """Handle one snooze that ended; how many messages (an acknowledged alert too)."""
        with self._store.transaction():
            sent = self._still_firing(snooze.rule, snooze.key, now, "snooze", acked_too=True)
            self._db.snooze_handled(snooze)
        return sent

    def _firing(self) -> list[tuple[str, str]]:
        return [
            (str(a["rule"]), str(a["key"])) for a in self._book.alerts() if a["state"] == "firing"
        ]

    def _still_firing(
        self, rule_id: str, key: str, now: float, after: str, *, acked_too: bool = False
    ) -> int:
        """Enqueue one ``firing`` message for an alert whose mute ended, unless it no longer
        fires, is acknowledged or is still muted by something else."""
        rule = self._book.rules.rules.get(rule_id)
        st = self._book.state_of(rule_id, key)
        if rule is None or st is None or st.state != "firing":
            return 0
        mutes = self._mutes
        if not acked_too and mutes.acknowledged(rule_id, key, st.since):
            return 0
        if mutes.snoozed(rule_id, key, now) or mutes.silenced_by(rule_id, key, now):
            return 0
        message = notification(
            rule, key, st.variables, "firing", now=now, episode=st.since,
            dedup=f"{rule_id}|{key}|firing|{st.since:.6f}|after {after} {now:.6f}",
            on_error=_render_failed,
        )  # fmt: skip
        log.info("alert %s %s still firing after its %s ended", rule_id, key, after)
        return int(self._sink.enqueue(message))


def _render_failed(rule: Rule, which: str, exc: Exception) -> None:
    log.warning("rule %s: %s failed to render: %s", rule.id, which, exc)
