"""The alert state machine: each (rule, key) inactive → pending (``for``) → firing → resolved,
its timers (``for`` ends, repeats) and the transitions that notify. ``Engine`` routes events to
it; ``AlertMachine`` owns the states and timers and says each transition through ``Announcer``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Any

from notifier.metrics import Metrics
from notifier.rules.announce import Announcer
from notifier.rules.compiled import FeedRule, IntentRule, Rule
from notifier.rules.ruleset import RuleSet
from notifier.rules.sandbox import SandboxError
from notifier.rules.state import AlertState, StateStore, alert_views
from notifier.rules.thresholds import StateTable
from notifier.rules.variables import refreshed

__all__ = ["AlertMachine", "truthy"]

ErrorHandler = Callable[[Rule, str, Exception], None]


def truthy(
    rule: Rule,
    which: str,
    predicate: Callable[[Mapping[str, Any]], Any],
    variables: Mapping[str, Any],
    on_error: ErrorHandler,
) -> bool:
    """The predicate's truth; a run-time error is reported and counts as false."""
    try:
        return bool(predicate(variables))
    except SandboxError as exc:
        on_error(rule, which, exc)
        return False


class AlertMachine:
    """The (rule, key) states that are pending, firing or inside a cooldown, and their timers."""

    def __init__(
        self,
        rules: Callable[[], RuleSet],
        announcer: Announcer,
        store: StateStore | None,
        metrics: Metrics,
        on_error: ErrorHandler,
    ) -> None:
        self._rules = rules  # the current rule set (a cooldown outlives its alert)
        self._announcer = announcer
        self._store = store
        self._metrics = metrics
        self._on_error = on_error
        self.states = StateTable()
        self.timers: list[tuple[float, str, str]] = []
        self.on_transition: Callable[[str, str, str, float], None] = lambda *_: None

    def next_due(self) -> float | None:
        return self.timers[0][0] if self.timers else None

    def run_timers(self, now: float, routing: RuleSet) -> None:
        """Every timer due by ``now``: pending rules whose ``for`` elapsed, repeats."""
        while self.timers and self.timers[0][0] <= now:
            _, rule_id, key = heapq.heappop(self.timers)
            rule = routing.rules.get(rule_id)
            st = self.states.get((rule_id, key))
            if rule is None or st is None:
                continue
            if st.state == "pending" and now >= st.since + rule.for_:
                variables = refreshed(rule, st.variables, now)
                if self.condition(rule, variables):
                    self._fire(rule, st, variables, now)
                else:
                    self._clear(st)
            elif st.state == "firing" and rule.repeat and now >= _repeat_due(rule, st):
                st.repeats += 1
                st.silenced = False  # the user now knows it fires: its resolve is news too
                variables = refreshed(rule, st.variables, now)
                self._announcer.notify(rule, st, variables, "repeat", now, save=True)
                self.schedule(_repeat_due(rule, st), rule.id, key)

    def schedule(self, at: float, rule_id: str, key: str) -> None:
        heapq.heappush(self.timers, (at, rule_id, key))

    def schedule_for(self, rule: Rule, st: AlertState) -> None:
        if st.state == "pending":
            self.schedule(st.since + rule.for_, rule.id, st.key)
        elif st.state == "firing" and rule.repeat:
            self.schedule(_repeat_due(rule, st), rule.id, st.key)

    def condition(self, rule: Rule, variables: Mapping[str, Any]) -> bool:
        if isinstance(rule, FeedRule):
            base = not variables["up"]
        elif isinstance(rule, IntentRule):
            base = not variables["terminal"]
            if rule.overdue is not None:
                age = variables.get("age")
                base = base and age is not None and age >= rule.overdue
        else:
            base = True
        return base and self._when(rule, variables)

    def _when(self, rule: Rule, variables: Mapping[str, Any]) -> bool:
        return rule.when is None or truthy(rule, "when", rule.when, variables, self._on_error)

    def _resolves(self, rule: Rule, variables: Mapping[str, Any]) -> bool:
        if rule.until is not None:
            return truthy(rule, "until", rule.until, variables, self._on_error)
        return not self.condition(rule, variables)

    def evaluate(self, rule: Rule, key: str, variables: dict[str, Any], now: float) -> None:
        st = self.states.get((rule.id, key))
        if st is None or st.state == "inactive":
            if isinstance(rule, IntentRule) and rule.overdue is not None:
                self._watch_overdue(rule, key, variables, now, st)
                return
            if not self.condition(rule, variables):
                return
            self.activate(rule, st, key, variables, now)
        elif st.state == "pending":
            if not self._pending_condition(rule, variables):
                self._clear(st)
                return
            st.variables = variables
            if now >= st.since + rule.for_:
                self._fire(rule, st, variables, now)
        elif self._resolves(rule, variables):
            self._resolve(rule, st, variables, now)
        else:  # still firing: the latest values (a dict shared by the pair's rules: copied),
            st.variables = {**variables, "why": st.variables.get("why")}  # and why it fired

    def activate(
        self, rule: Rule, st: AlertState | None, key: str, variables: dict[str, Any], now: float
    ) -> None:
        """The condition holds for an inactive key: pending for ``for``, else firing."""
        st = st or AlertState(rule.id, key, rule.fingerprint, "inactive", now)
        self.states[(rule.id, key)] = st
        if rule.for_ > 0:
            st.state, st.since, st.variables = "pending", now, variables
            self._save(st)
            self.schedule(now + rule.for_, rule.id, key)
        else:
            self._fire(rule, st, variables, now)

    def _pending_condition(self, rule: Rule, variables: Mapping[str, Any]) -> bool:
        if isinstance(rule, IntentRule) and rule.overdue is not None:
            return not variables["terminal"] and self._when(rule, variables)
        return self.condition(rule, variables)

    def _watch_overdue(
        self,
        rule: IntentRule,
        key: str,
        variables: dict[str, Any],
        now: float,
        st: AlertState | None,
    ) -> None:
        """An overdue rule is pending from ``created_at``: its timer fires at created + overdue."""
        created = variables.get("created_at")
        if created is None or not self._pending_condition(rule, variables):
            return
        st = st or AlertState(rule.id, key, rule.fingerprint, "inactive", now)
        self.states[(rule.id, key)] = st
        st.state, st.since, st.variables = "pending", float(created), variables
        if now >= st.since + rule.for_:
            self._fire(rule, st, variables, now)
        else:
            self._save(st)
            self.schedule(st.since + rule.for_, rule.id, key)

    def _fire(self, rule: Rule, st: AlertState, variables: dict[str, Any], now: float) -> None:
        in_cooldown = bool(rule.cooldown) and st.last_fired and now - st.last_fired < rule.cooldown
        st.state, st.since, st.variables, st.repeats = "firing", now, variables, 0
        self.on_transition(rule.id, st.key, "firing", now)
        st.silenced = bool(in_cooldown)
        if not in_cooldown:
            st.last_fired = now  # the cooldown counts from the last firing that notified
        if in_cooldown:
            self._save(st)
        else:
            self._announcer.notify(rule, st, variables, "firing", now, save=True)
        if rule.repeat:
            self.schedule(now + rule.repeat, rule.id, st.key)
        self.update_firing_metric()

    def _resolve(self, rule: Rule, st: AlertState, variables: dict[str, Any], now: float) -> None:
        notify = rule.resolved and not st.silenced
        fired_at = st.since
        st.state, st.variables = "inactive", variables
        self.on_transition(rule.id, st.key, "resolved", now)
        if notify:
            self._announcer.notify(
                rule, st, variables, "resolved", now, save=False, episode=fired_at
            )
        self._clear(st)
        self.update_firing_metric()

    def _clear(self, st: AlertState) -> None:
        """Back to inactive; the row stays only while a cooldown still needs ``last_fired``."""
        rule = self._rules().rules.get(st.rule_id)
        st.state = "inactive"
        if rule is not None and rule.cooldown and st.last_fired:
            self._save(st)
        else:
            self.states.pop((st.rule_id, st.key), None)
            if self._store is not None:
                self._store.delete(st.rule_id, st.key)

    def event(
        self, rule: Rule, key: str, event_key: str, variables: dict[str, Any], now: float
    ) -> None:
        if rule.cooldown:
            st = self.states.get((rule.id, key))
            if st is not None and st.last_fired and now - st.last_fired < rule.cooldown:
                return
            st = st or AlertState(rule.id, key, rule.fingerprint, "inactive", now)
            st.last_fired = now
            self.states[(rule.id, key)] = st
        else:
            st = AlertState(rule.id, key, rule.fingerprint, "inactive", now)
        self._announcer.notify(
            rule,
            st,
            variables,
            "event",
            now,
            save=bool(rule.cooldown),
            dedup=f"{rule.id}|{event_key}",
        )

    def _save(self, st: AlertState) -> None:
        if self._store is not None:
            self._store.save(st)

    def alerts(self) -> list[dict[str, Any]]:
        """Firing and pending (rule, key) states, for status and ``/api/v1/alerts``."""
        return alert_views(self.states.values(), self._rules().rules)

    def firing_count(self) -> int:
        return sum(1 for st in self.states.values() if st.state == "firing")

    def alert_counts(self) -> dict[str, int]:
        """How many (rule, key) states are firing and how many pending."""
        counts = {"firing": 0, "pending": 0}
        for st in self.states.values():
            if st.state != "inactive":
                counts[st.state] += 1
        return counts

    def update_firing_metric(self) -> None:
        self._metrics.alerts_firing.set(self.firing_count())


def _repeat_due(rule: Rule, st: AlertState) -> float:
    """A repeat is due one period after the later of the firing and the last message."""
    return max(st.last_notified, st.since) + rule.repeat
