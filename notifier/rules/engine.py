"""The rule engine: events in, notifications out.

State rules (quote, feed, intent without ``to``) keep a state per key — inactive → pending
(``for``) → firing → resolved — persisted by ``StateStore`` (``state.py``) so timers and cooldowns
survive restarts; their variables come from ``variables.py``, their messages from ``messages.py``.
Event rules (order, intent ``to``) notify once per distinct event. The engine is synchronous and
clock-driven: the daemon calls ``handle`` per event and ``tick`` when ``next_due`` passes;
``notifier replay`` drives the same object on a virtual clock.

A rule whose expression or template runs past its budget (``BudgetExceeded``) is disabled: it
leaves routing, keeps its alert states, and stays out until a rule set without that very rule
object is swapped in (its file changed); ``on_disabled`` hears of it once. A rule that fails
at run time counts as false; ``on_failed`` hears of it at most once an hour (``faults.py``).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from notifier.events import Event, FeedEvent, IntentEvent, OrderEvent, PairKey, QuoteEvent
from notifier.history.book import HistoryBook
from notifier.metrics import Metrics
from notifier.rules.announce import Announcer, NotificationSink
from notifier.rules.compiled import FeedRule, IntentRule, QuoteRule, Rule
from notifier.rules.faults import DisabledRule, RuleFaults
from notifier.rules.loader import RuleError
from notifier.rules.messages import Transition
from notifier.rules.ruleset import RuleSet
from notifier.rules.sandbox import SandboxError
from notifier.rules.state import AlertState, StateStore, alert_views
from notifier.rules.variables import (
    QuotePair,
    feed_variables,
    intent_variables,
    order_variables,
    refreshed,
)
from notifier.rules.windowfns import WindowFunctions
from notifier.tokens import TokenTable, address_key

__all__ = ["DisabledRule", "Engine", "NotificationSink"]

log = logging.getLogger(__name__)

PARTIAL_EVENTS = frozenset({"order_filled_partially", "order_balance_or_allowance_change"})
WINDOW_TICK = 1.0  # seconds: rules that read a window are re-evaluated at least this often


def _truthy(
    rule: Rule,
    which: str,
    predicate: Callable[[Mapping[str, Any]], Any],
    variables: Mapping[str, Any],
    on_error: Callable[[Rule, str, Exception], None],
) -> bool:
    try:
        return bool(predicate(variables))
    except SandboxError as exc:
        on_error(rule, which, exc)
        return False


class Engine:
    """Evaluates events against the current ``RuleSet`` and enqueues notifications."""

    def __init__(
        self,
        rules: RuleSet,
        sink: NotificationSink,
        *,
        tokens: TokenTable | None = None,
        store: StateStore | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        on_disabled: Callable[[DisabledRule], None] | None = None,
        on_failed: Callable[[Rule, RuleError], None] | None = None,
        history: HistoryBook | None = None,
    ) -> None:
        self.rules = rules
        self._routing = rules  # ``rules`` without the disabled ones: what events reach
        self._tokens = tokens or TokenTable()
        self._store = store
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._faults = RuleFaults(self._metrics, on_disabled, on_failed, clock)
        # Quotes are the hot path: their counter child is looked up once, not per event.
        self._quote_evaluations = self._metrics.rule_evaluations.labels("quote")
        self._states: dict[tuple[str, str], AlertState] = {}
        self._timers: list[tuple[float, str, str]] = []
        self._last_price: dict[PairKey, float] = {}
        self._quote_pairs: dict[PairKey, QuotePair] = {}  # built lazily for ``_pairs_of``
        self._pairs_of: RuleSet | None = None
        self._last_intent: dict[str, IntentEvent] = {}
        self._announcer = Announcer(sink, store, self._expr_error)
        self.history = history or HistoryBook()
        self._functions = WindowFunctions(self.history, clock)
        self._window_due: float | None = None
        self.on_transition: Callable[[str, str, str, float], None] = lambda *_: None  # dashboard
        self._watch_history(rules)
        if store is not None:
            self._restore(store.load())

    # -- lifecycle -------------------------------------------------------------------------

    def _restore(self, states: list[AlertState]) -> None:
        for st in states:
            rule = self.rules.rules.get(st.rule_id)
            # A feed's "down since" describes this process's connections: a restart resets it.
            if rule is None or rule.fingerprint != st.fingerprint or isinstance(rule, FeedRule):
                continue
            self._states[(st.rule_id, st.key)] = st
            self._schedule_for(rule, st)
        self._update_firing_metric()

    def swap(self, rules: RuleSet) -> None:
        """Install a new rule set; (rule, key) states of unchanged rules carry over."""
        old = self.rules
        self.rules = rules
        self._watch_history(rules)
        self._faults.forget_changed(rules)
        self._routing = self._faults.enabled(rules)
        dropped = [
            k
            for k, st in self._states.items()
            if (r := rules.rules.get(k[0])) is None or r.fingerprint != st.fingerprint
        ]
        for k in dropped:
            del self._states[k]
        if self._store is not None and dropped:
            with self._store.transaction():
                for rule_id, key in dropped:
                    self._store.delete(rule_id, key)
        for (rule_id, _), st in self._states.items():
            if old.rules.get(rule_id) is not rules.rules[rule_id]:
                self._schedule_for(rules.rules[rule_id], st)
        self._update_firing_metric()

    # -- timers ----------------------------------------------------------------------------

    def next_due(self) -> float | None:
        due = self._timers[0][0] if self._timers else None
        window = self._window_due
        if window is not None and (due is None or window < due):
            return window
        return due

    def _schedule(self, at: float, rule_id: str, key: str) -> None:
        heapq.heappush(self._timers, (at, rule_id, key))

    def _schedule_for(self, rule: Rule, st: AlertState) -> None:
        if st.state == "pending":
            self._schedule(st.since + rule.for_, rule.id, st.key)
        elif st.state == "firing" and rule.repeat:
            self._schedule(_repeat_due(rule, st), rule.id, st.key)

    def tick(self) -> None:
        """Run every timer that is due: pending rules whose ``for`` elapsed, repeats."""
        now = self._clock()
        if self._window_due is not None and now >= self._window_due:
            self._window_due = now + WINDOW_TICK
            self._slide_windows(now)
        while self._timers and self._timers[0][0] <= now:
            _, rule_id, key = heapq.heappop(self._timers)
            rule = self._routing.rules.get(rule_id)
            st = self._states.get((rule_id, key))
            if rule is None or st is None:
                continue
            if st.state == "pending" and now >= st.since + rule.for_:
                variables = refreshed(rule, st.variables, now)
                if self._condition(rule, variables):
                    self._fire(rule, st, variables, now)
                else:
                    self._clear(st)
            elif st.state == "firing" and rule.repeat and now >= _repeat_due(rule, st):
                st.repeats += 1
                st.silenced = False  # the user now knows it fires: its resolve is news too
                variables = refreshed(rule, st.variables, now)
                self._notify(rule, st, variables, "repeat", now, save=True)
                self._schedule(_repeat_due(rule, st), rule.id, key)

    # -- history ---------------------------------------------------------------------------

    def _watch_history(self, rules: RuleSet) -> None:
        """Keep the history of every pair the rules read, and their windows' statistics."""
        self.history.watch(rules.pricing)
        self.history.keep_stats(rules.windows)
        self._functions.pairs = rules.pair_names
        self._window_due = self._clock() + WINDOW_TICK if rules.clocked else None

    def _slide_windows(self, now: float) -> None:
        """Evaluate the rules that read a window again with their last event: a window that
        slides past an old price changes their condition without a new quote."""
        self.history.advance(now)
        for rule in self._routing.clocked:
            if isinstance(rule, QuoteRule):
                pair = self._quote_pair(rule.pair)
                if pair is None or pair.last is None:
                    continue
                self._functions.activate(rule.pair)
                self._evaluate_state(rule, pair.key, {**pair.last, "now": now}, now)
            elif isinstance(rule, IntentRule) and rule.to is None:
                self._functions.activate(None)
                for intent_id in rule.intents or list(self._last_intent):
                    event = self._last_intent.get(intent_id)
                    if event is not None:
                        self._evaluate_state(rule, intent_id, intent_variables(event, now), now)

    # -- events ----------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if isinstance(event, QuoteEvent):
            self._on_quote(event)
            return
        self._functions.activate(None)
        if isinstance(event, OrderEvent):
            self._on_order(event)
        elif isinstance(event, IntentEvent):
            self._on_intent(event)
        elif isinstance(event, FeedEvent):
            self._on_feed(event)

    def _on_quote(self, event: QuoteEvent) -> None:
        pair = self._quote_pairs.get(event.pair) if self._pairs_of is self._routing else None
        if pair is None:
            pair = self._quote_pair(event.pair)
            if pair is None:
                return
        variables = pair.variables(event, self._last_price.get(event.pair))
        pair.last = variables
        if pair.reads_history:
            self._functions.activate(event.pair)
        price = variables["price"]
        if price is not None:
            self._last_price[event.pair] = price
        now = self._clock()
        variables["now"] = now
        self._quote_evaluations.inc(len(pair.rules))
        key = pair.key
        states = self._states
        for rule, state_key in pair.rules:
            if state_key in states:
                self._evaluate_state(rule, key, variables, now)
                continue
            # No state: inactive, and a quote rule is its when (``_when``, inlined: per quote).
            when = rule.when
            try:
                holds = when is None or bool(when(variables))
            except SandboxError as exc:
                self._expr_error(rule, "when", exc)
                continue
            if holds:
                self._activate(rule, None, key, variables, now)

    def _quote_pair(self, pair: PairKey) -> QuotePair | None:
        """The pair's rules and constants, built once per rule set; None when no rule wants it."""
        if self._pairs_of is not self._routing:
            self._quote_pairs, self._pairs_of = {}, self._routing
        found = self._quote_pairs.get(pair)
        if found is None:
            rules = self._routing.by_pair.get(pair)
            if not rules:
                return None
            found = self._quote_pairs[pair] = QuotePair(rules)
        return found

    def _on_order(self, event: OrderEvent) -> None:
        maker = event.order.maker if event.order else None
        rules = self._routing.order_rules(event.chain, maker)
        if not rules:
            return
        variables = order_variables(event, self._tokens)
        now = self._clock()
        variables["now"] = now
        self._metrics.rule_evaluations.labels("order").inc(len(rules))
        key = event.order_hash
        event_key = (
            event.event_key
            if event.event in PARTIAL_EVENTS
            else (f"{event.order_hash}:{event.event}")
        )
        for rule in rules:
            if rule.events is not None and event.event not in rule.events:
                continue
            if rule.makers is not None and (maker is None or address_key(maker) not in rule.makers):
                continue
            if rule.when is not None and not _truthy(
                rule, "when", rule.when, variables, self._expr_error
            ):
                continue
            self._event(rule, key, event_key, variables, now)

    def _on_intent(self, event: IntentEvent) -> None:
        self._last_intent[event.intent_id] = event
        intents = self._routing.intents
        rules = [*intents.get(event.intent_id, ()), *intents.get(None, ())]
        if not rules:
            return
        now = self._clock()
        variables = intent_variables(event, now)
        self._metrics.rule_evaluations.labels("intent").inc(len(rules))
        for rule in rules:
            if rule.to is not None:
                moved = event.status != event.previous_status
                if (
                    moved
                    and event.status in rule.to
                    and (
                        rule.when is None
                        or _truthy(rule, "when", rule.when, variables, self._expr_error)
                    )
                ):
                    self._event(
                        rule, event.intent_id, f"{event.intent_id}:{event.status}", variables, now
                    )
            else:
                self._evaluate_state(rule, event.intent_id, variables, now)

    def _on_feed(self, event: FeedEvent) -> None:
        rules = self._routing.feeds.get(event.feed)
        if not rules:
            return
        now = self._clock()
        variables = feed_variables(event, now)
        self._metrics.rule_evaluations.labels("feed").inc(len(rules))
        for rule in rules:
            self._evaluate_state(rule, event.feed, variables, now)

    # -- state machine ---------------------------------------------------------------------

    def _condition(self, rule: Rule, variables: Mapping[str, Any]) -> bool:
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
        return rule.when is None or _truthy(rule, "when", rule.when, variables, self._expr_error)

    def _resolves(self, rule: Rule, variables: Mapping[str, Any]) -> bool:
        if rule.until is not None:
            return _truthy(rule, "until", rule.until, variables, self._expr_error)
        return not self._condition(rule, variables)

    def _evaluate_state(self, rule: Rule, key: str, variables: dict[str, Any], now: float) -> None:
        st = self._states.get((rule.id, key))
        if st is None or st.state == "inactive":
            if isinstance(rule, IntentRule) and rule.overdue is not None:
                self._watch_overdue(rule, key, variables, now, st)
                return
            if not self._condition(rule, variables):
                return
            self._activate(rule, st, key, variables, now)
        elif st.state == "pending":
            if not self._pending_condition(rule, variables):
                self._clear(st)
                return
            st.variables = variables
            if now >= st.since + rule.for_:
                self._fire(rule, st, variables, now)
        elif self._resolves(rule, variables):
            self._resolve(rule, st, variables, now)
        else:
            st.variables = variables

    def _activate(
        self, rule: Rule, st: AlertState | None, key: str, variables: dict[str, Any], now: float
    ) -> None:
        """The condition holds for an inactive key: pending for ``for``, else firing."""
        st = st or AlertState(rule.id, key, rule.fingerprint, "inactive", now)
        self._states[(rule.id, key)] = st
        if rule.for_ > 0:
            st.state, st.since, st.variables = "pending", now, variables
            self._save(st)
            self._schedule(now + rule.for_, rule.id, key)
        else:
            self._fire(rule, st, variables, now)

    def _pending_condition(self, rule: Rule, variables: Mapping[str, Any]) -> bool:
        if isinstance(rule, IntentRule) and rule.overdue is not None:
            return not variables["terminal"] and self._when(rule, variables)
        return self._condition(rule, variables)

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
        self._states[(rule.id, key)] = st
        st.state, st.since, st.variables = "pending", float(created), variables
        if now >= st.since + rule.for_:
            self._fire(rule, st, variables, now)
        else:
            self._save(st)
            self._schedule(st.since + rule.for_, rule.id, key)

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
            self._notify(rule, st, variables, "firing", now, save=True)
        if rule.repeat:
            self._schedule(now + rule.repeat, rule.id, st.key)
        self._update_firing_metric()

    def _resolve(self, rule: Rule, st: AlertState, variables: dict[str, Any], now: float) -> None:
        notify = rule.resolved and not st.silenced
        fired_at = st.since
        st.state, st.variables = "inactive", variables
        self.on_transition(rule.id, st.key, "resolved", now)
        if notify:
            self._notify(rule, st, variables, "resolved", now, save=False, episode=fired_at)
        self._clear(st)
        self._update_firing_metric()

    def _clear(self, st: AlertState) -> None:
        """Back to inactive; the row stays only while a cooldown still needs ``last_fired``."""
        rule = self.rules.rules.get(st.rule_id)
        st.state = "inactive"
        if rule is not None and rule.cooldown and st.last_fired:
            self._save(st)
        else:
            self._states.pop((st.rule_id, st.key), None)
            if self._store is not None:
                self._store.delete(st.rule_id, st.key)

    def _event(
        self, rule: Rule, key: str, event_key: str, variables: dict[str, Any], now: float
    ) -> None:
        if rule.cooldown:
            st = self._states.get((rule.id, key))
            if st is not None and st.last_fired and now - st.last_fired < rule.cooldown:
                return
            st = st or AlertState(rule.id, key, rule.fingerprint, "inactive", now)
            st.last_fired = now
            self._states[(rule.id, key)] = st
        else:
            st = AlertState(rule.id, key, rule.fingerprint, "inactive", now)
        self._notify(
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

    # -- notifications ---------------------------------------------------------------------

    def _notify(
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
        self._announcer.notify(
            rule, st, variables, transition, now, save=save, dedup=dedup, episode=episode
        )

    def _expr_error(self, rule: Rule, which: str, exc: Exception) -> None:
        if rule.history.used and "NoneType" in str(exc):
            return  # a window not reached yet (none) decides nothing: false, and no fault
        if self._faults.report(rule, which, exc, self.rules):
            self._routing = self._faults.enabled(self.rules)

    def disabled(self) -> list[DisabledRule]:
        """Rules stopped for running past their budget, until their file changes."""
        return self._faults.disabled()

    # -- views -----------------------------------------------------------------------------

    def alerts(self) -> list[dict[str, Any]]:
        """Firing and pending (rule, key) states, for status and ``/api/v1/alerts``."""
        return alert_views(self._states.values(), self.rules.rules)

    def last_price(self, pair: PairKey) -> float | None:
        """The last price evaluated for ``pair`` (also ``previous_price`` of the next quote)."""
        return self._last_price.get(pair)

    def firing_count(self) -> int:
        return sum(1 for st in self._states.values() if st.state == "firing")

    def alert_counts(self) -> dict[str, int]:
        """How many (rule, key) states are firing and how many pending."""
        counts = {"firing": 0, "pending": 0}
        for st in self._states.values():
            if st.state != "inactive":
                counts[st.state] += 1
        return counts

    def _update_firing_metric(self) -> None:
        self._metrics.alerts_firing.set(self.firing_count())


def _repeat_due(rule: Rule, st: AlertState) -> float:
    """A repeat is due one period after the later of the firing and the last message."""
    return max(st.last_notified, st.since) + rule.repeat
