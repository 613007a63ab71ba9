"""Turning a transition into a notification: its ``why``, its dedup key, its message, and the
one transaction in which the alert's state and the outbox row commit together."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from notifier.durations import format_duration
from notifier.notification import Notification
from notifier.rules.compiled import FeedRule, IntentRule, OrderRule, Rule
from notifier.rules.messages import Transition, notification
from notifier.rules.state import AlertState, StateStore
from notifier.rules.why import number

__all__ = ["Announcer", "NotificationSink", "why"]

log = logging.getLogger(__name__)


class NotificationSink(Protocol):
    def enqueue(self, notification: Notification) -> bool: ...


def why(rule: Rule, st: AlertState, variables: Mapping[str, Any], transition: Transition) -> str:
    """One line with the values that decided this transition (SPEC §8)."""
    if transition == "resolved":
        if rule.explain_until is not None:
            return "until " + rule.explain_until.explain(variables)
        if rule.explain_when is not None:
            return "no longer " + rule.explain_when.explain(variables, holding=False)
        return _event_why(rule, variables) + " no longer holds"
    said = _event_why(rule, variables)
    if rule.explain_when is not None:
        condition = rule.explain_when.explain(variables)
        said = f"{said}; {condition}" if said else condition
    overdue = isinstance(rule, IntentRule) and rule.overdue is not None
    if transition == "firing" and rule.for_ > 0 and not overdue:
        said += f" for {format_duration(rule.for_)}"
    elif transition == "repeat":
        firing = max(0.0, float(variables.get("now") or st.since) - st.since)
        said += f", firing for {format_duration(firing)}"
    return said


def _event_why(rule: Rule, variables: Mapping[str, Any]) -> str:
    """What the event itself says, for kinds whose condition is more than ``when``."""
    if isinstance(rule, OrderRule):
        fraction = variables.get("filled_fraction")
        filled = f", {number(round(fraction * 100, 1))}% filled" if fraction is not None else ""
        return f"{variables.get('event')} of {str(variables.get('order_hash'))[:10]}{filled}"
    if isinstance(rule, IntentRule):
        said = f"status {variables.get('status')}"
        if rule.overdue is not None and variables.get("age") is not None:
            age, limit = format_duration(variables["age"]), format_duration(rule.overdue)
            said += f" after {age} (overdue past {limit})"
        return said
    if isinstance(rule, FeedRule):
        return f"{variables.get('feed')} feed down: {variables.get('detail')}"
    return ""


class Announcer:
    """Makes each transition's notification and hands it to the sink, with the state saved
    in the same transaction when the engine has a store."""

    def __init__(
        self,
        sink: NotificationSink,
        store: StateStore | None,
        on_error: Callable[[Rule, str, Exception], None],
    ) -> None:
        self._sink = sink
        self._store = store
        self._on_error = on_error

    def notify(
        self,
        rule: Rule,
        st: AlertState,
        variables: dict[str, Any],
        transition: Transition,
        now: float,
        *,
        save: bool,
        dedup: str | None = None,
        episode: float | None = None,
    ) -> None:
        if dedup is None:
            episode = st.since if episode is None else episode
            dedup = f"{rule.id}|{st.key}|{transition}|{episode:.6f}"
            if transition == "repeat":
                dedup += f"|{st.repeats}"
        # Its own copy: the rules of a pair share one quote's dict, and the state keeps it.
        variables = {**variables, "why": why(rule, st, variables, transition)}
        if transition != "event":
            st.variables = variables
        message = notification(
            rule, st.key, variables, transition,
            now=now, dedup=dedup, on_error=self._on_error, episode=episode,
        )  # fmt: skip
        st.last_notified = now
        if self._store is None:
            self._sink.enqueue(message)
        else:
            with self._store.transaction():  # waits for no disk; synced before the send
                if save:
                    self._store.save(st)
                self._sink.enqueue(message)
        log.info(
            "rule %s %s for %s because %s, to %s: %r",
            rule.id, transition, st.key, variables["why"],
            ", ".join(rule.tags) or "every channel", message.title,
        )  # fmt: skip
