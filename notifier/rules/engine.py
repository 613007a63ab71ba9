"""The rule engine: events in, notifications out.

The engine routes each event to the rules that can match it, with their variables
(``variables.py``) and the quote history's functions (``windowfns.py``). State rules (quote,
feed, intent without ``to``) keep a state per key — inactive → pending (``for``) → firing →
resolved — in ``AlertMachine`` (``machine.py``), persisted by ``StateStore`` (``state.py``) so
timers and cooldowns survive restarts; each transition is said by ``Announcer`` (``announce.py``).
Event rules (order, intent ``to``) notify once per distinct event. The engine is synchronous and
clock-driven: the daemon calls ``handle`` per event and ``tick`` when ``next_due`` passes;
``notifier replay`` drives the same object on a virtual clock.

A rule whose expression or template runs past its budget (``BudgetExceeded``) is disabled: it
leaves routing, keeps its alert states, and stays out until a rule set without that very rule
object is swapped in (its file changed); ``on_disabled`` hears of it once. A rule that fails
at run time counts as false; ``on_failed`` hears of it at most once an hour (``faults.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from notifier.events import Event, FeedEvent, IntentEvent, OrderEvent, PairKey, QuoteEvent
from notifier.history.book import HistoryBook
from notifier.metrics import Metrics
from notifier.rules.announce import Announcer, NotificationSink
from notifier.rules.compiled import FeedRule, IntentRule, QuoteRule, Rule
from notifier.rules.faults import DisabledRule, RuleFaults
from notifier.rules.loader import RuleError
from notifier.rules.machine import AlertMachine, truthy
from notifier.rules.ruleset import RuleSet
from notifier.rules.sandbox import SandboxError
from notifier.rules.state import AlertState, StateStore
from notifier.rules.variables import (
    QuotePair,
    feed_variables,
    intent_variables,
    order_variables,
)
from notifier.rules.windowfns import WindowFunctions
from notifier.tokens import TokenTable, address_key

__all__ = ["DisabledRule", "Engine", "NotificationSink"]

log = logging.getLogger(__name__)

PARTIAL_EVENTS = frozenset({"order_filled_partially", "order_balance_or_allowance_change"})
WINDOW_TICK = 1.0  # seconds: rules that read a window are re-evaluated at least this often


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
        index_thresholds: bool = True,
    ) -> None:
        self.rules = rules
        self._indexed = index_thresholds  # False: every quote scans all its pair's rules
        self._routing = rules  # ``rules`` without the disabled ones: what events reach
        self._tokens = tokens or TokenTable()
        self._store = store
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._faults = RuleFaults(self._metrics, on_disabled, on_failed, clock)
        # Quotes are the hot path: their counter child is looked up once, not per event.
        self._quote_evaluations = self._metrics.rule_evaluations.labels("quote")
        self._last_price: dict[PairKey, float] = {}
        self._quote_pairs: dict[PairKey, QuotePair] = {}  # built lazily for ``_pairs_of``
        self._stale_pairs: dict[PairKey, QuotePair] = {}  # those of the rule set before
        self._pairs_of: RuleSet | None = None
        self._last_intent: dict[str, IntentEvent] = {}
        announcer = Announcer(sink, store, self._expr_error)
        self._machine = AlertMachine(
            lambda: self.rules, announcer, store, self._metrics, self._expr_error
        )
        self.history = history or HistoryBook()
        self._functions = WindowFunctions(self.history, clock)
        self._window_due: float | None = None
        self._watch_history(rules)
        if store is not None:
            self._restore(store.load())

    def observe_transitions(self, hook: Callable[[str, str, str, float], None]) -> None:
        """``hook(rule_id, key, "firing" | "resolved", at)`` on each transition (the dashboard)."""
        self._machine.on_transition = hook

    # -- lifecycle -------------------------------------------------------------------------

    def _restore(self, states: list[AlertState]) -> None:
        for st in states:
            rule = self.rules.rules.get(st.rule_id)
            # A feed's "down since" describes this process's connections: a restart resets it.
            if rule is None or rule.fingerprint != st.fingerprint or isinstance(rule, FeedRule):
                continue
            self._machine.states[(st.rule_id, st.key)] = st
            self._machine.schedule_for(rule, st)
        self._machine.update_firing_metric()

    def swap(self, rules: RuleSet) -> None:
        """Install a new rule set; (rule, key) states of unchanged rules carry over."""
        old = self.rules
        self.rules = rules
        self._watch_history(rules)
        self._faults.forget_changed(rules)
        self._routing = self._faults.enabled(rules)
        states = self._machine.states
        dropped = [
            k
            for k, st in states.items()
            if (r := rules.rules.get(k[0])) is None or r.fingerprint != st.fingerprint
        ]
        for k in dropped:
            del states[k]
        if self._store is not None and dropped:
            with self._store.transaction():
                for rule_id, key in dropped:
                    self._store.delete(rule_id, key)
        for (rule_id, _), st in states.items():
            if old.rules.get(rule_id) is not rules.rules[rule_id]:
                self._machine.schedule_for(rules.rules[rule_id], st)
        self._machine.update_firing_metric()

    # -- timers ----------------------------------------------------------------------------

    def next_due(self) -> float | None:
        due = self._machine.next_due()
        window = self._window_due
        if window is not None and (due is None or window < due):
            return window
        return due

    def tick(self) -> None:
        """Run every timer that is due: pending rules whose ``for`` elapsed, repeats."""
        now = self._clock()
        if self._window_due is not None and now >= self._window_due:
            self._window_due = now + WINDOW_TICK
            self._slide_windows(now)
        self._machine.run_timers(now, self._routing)

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
                self._machine.evaluate(rule, pair.key, {**pair.last, "now": now}, now)
            elif isinstance(rule, IntentRule) and rule.to is None:
                self._functions.activate(None)
                for intent_id in rule.intents or list(self._last_intent):
                    event = self._last_intent.get(intent_id)
                    if event is not None:
                        self._machine.evaluate(rule, intent_id, intent_variables(event, now), now)

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
        machine = self._machine
        states = machine.states
        rules, state_keys = pair.rules, pair.state_keys
        for i in pair.index.visit(price, states.by_key.get(key)):
            rule = rules[i]
            if state_keys[i] in states:
                machine.evaluate(rule, key, variables, now)
                continue
            # No state: inactive, and a quote rule is its when (``_when``, inlined: per quote).
            when = rule.when
            try:
                holds = when is None or bool(when(variables))
            except SandboxError as exc:
                self._expr_error(rule, "when", exc)
                continue
            if holds:
                machine.activate(rule, None, key, variables, now)

    def _quote_pair(self, pair: PairKey) -> QuotePair | None:
        """The pair's rules and constants, built once per rule set; None when no rule wants it."""
        if self._pairs_of is not self._routing:  # a new rule set: unchanged pairs carry over
            self._stale_pairs, self._quote_pairs = self._quote_pairs, {}
            self._pairs_of = self._routing
        found = self._quote_pairs.get(pair)
        if found is None:
            rules = self._routing.by_pair.get(pair)
            if not rules:
                return None
            old = self._stale_pairs.pop(pair, None)
            found = QuotePair.carried(old, rules, indexed=self._indexed)
            self._quote_pairs[pair] = found
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
            if rule.when is not None and not truthy(
                rule, "when", rule.when, variables, self._expr_error
            ):
                continue
            self._machine.event(rule, key, event_key, variables, now)

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
                        or truthy(rule, "when", rule.when, variables, self._expr_error)
                    )
                ):
                    self._machine.event(
                        rule, event.intent_id, f"{event.intent_id}:{event.status}", variables, now
                    )
            else:
                self._machine.evaluate(rule, event.intent_id, variables, now)

    def _on_feed(self, event: FeedEvent) -> None:
        rules = self._routing.feeds.get(event.feed)
        if not rules:
            return
        now = self._clock()
        variables = feed_variables(event, now)
        self._metrics.rule_evaluations.labels("feed").inc(len(rules))
        for rule in rules:
            self._machine.evaluate(rule, event.feed, variables, now)

    # -- notifications ---------------------------------------------------------------------

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
        return self._machine.alerts()

    def state_of(self, rule_id: str, key: str) -> AlertState | None:
        """The live state of one (rule, key), for the talkback actions; None when inactive."""
        return self._machine.states.get((rule_id, key))

    def last_price(self, pair: PairKey) -> float | None:
        """The last price evaluated for ``pair`` (also ``previous_price`` of the next quote)."""
        return self._last_price.get(pair)

    def firing_count(self) -> int:
        return self._machine.firing_count()

    def alert_counts(self) -> dict[str, int]:
        """How many (rule, key) states are firing and how many pending."""
        return self._machine.alert_counts()
