"""The rule engine: events in, notifications out.

State rules (quote, feed, intent without ``to``) keep a state per key — inactive → pending
(``for``) → firing → resolved — persisted in SQLite so timers and cooldowns survive restarts.
Event rules (order, intent ``to``) notify once per distinct event. The engine is synchronous and
clock-driven: the daemon calls ``handle`` per event and ``tick`` when ``next_due`` passes;
``notifier replay`` drives the same object on a virtual clock.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson

from notifier.events import (
    Event,
    FeedEvent,
    IntentEvent,
    Interest,
    OrderEvent,
    PairKey,
    QuoteEvent,
)
from notifier.metrics import Metrics
from notifier.notification import Notification, Severity
from notifier.rules.compiled import (
    RESOLVED_PREFIX,
    FeedRule,
    IntentRule,
    OrderRule,
    QuoteRule,
    Rule,
)
from notifier.rules.sandbox import SandboxError
from notifier.tokens import TokenTable

if TYPE_CHECKING:
    from notifier.store import Store

__all__ = ["AlertState", "Engine", "NotificationSink", "RuleSet", "StateStore"]

log = logging.getLogger(__name__)

Transition = Literal["firing", "repeat", "resolved", "event"]
PARTIAL_EVENTS = frozenset({"order_filled_partially", "order_balance_or_allowance_change"})


class NotificationSink(Protocol):
    def enqueue(self, notification: Notification) -> bool: ...


@dataclass(slots=True)
class AlertState:
    """One (rule, key) that is pending or firing, or inactive but inside its cooldown."""

    rule_id: str
    key: str
    fingerprint: str
    state: Literal["inactive", "pending", "firing"]
    since: float  # pending: when the condition began; firing: when it fired
    last_notified: float = 0.0
    last_fired: float = 0.0
    repeats: int = 0
    silenced: bool = False  # fired inside its cooldown: no notification was sent
    variables: dict[str, Any] = field(default_factory=dict)


class StateStore:
    """The ``rule_state`` table: one row per non-trivial ``AlertState``. Each write joins the
    caller's ``transaction()`` or commits on its own."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def load(self) -> list[AlertState]:
        rows = self._store.read(
            "SELECT rule_id, key, fingerprint, state, since, last_notified, last_fired, repeats,"
            " silenced, variables FROM rule_state"
        )
        return [
            AlertState(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), orjson.loads(r[9])
            )
            for r in rows
        ]

    def save(self, st: AlertState) -> None:
        with self._store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO rule_state VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    st.rule_id,
                    st.key,
                    st.fingerprint,
                    st.state,
                    st.since,
                    st.last_notified,
                    st.last_fired,
                    st.repeats,
                    int(st.silenced),
                    orjson.dumps(st.variables, default=str),
                ),
            )

    def delete(self, rule_id: str, key: str) -> None:
        with self._store.transaction() as db:
            db.execute("DELETE FROM rule_state WHERE rule_id=? AND key=?", (rule_id, key))

    def transaction(self) -> AbstractContextManager[object]:
        """The store's transaction: a state change and the outbox row it causes commit together."""
        return self._store.transaction()


class RuleSet:
    """An immutable set of compiled rules with the indexes events are routed by."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules: dict[str, Rule] = {r.id: r for r in rules}
        self.by_pair: dict[PairKey, list[QuoteRule]] = defaultdict(list)
        self.orders: dict[tuple[int | None, str | None], list[OrderRule]] = defaultdict(list)
        self.intents: dict[str | None, list[IntentRule]] = defaultdict(list)
        self.feeds: dict[str, list[FeedRule]] = defaultdict(list)
        for rule in self.rules.values():
            if isinstance(rule, QuoteRule):
                self.by_pair[rule.pair].append(rule)
            elif isinstance(rule, OrderRule):
                for chain in rule.chains or (None,):
                    for maker in rule.makers or (None,):
                        self.orders[(chain, maker)].append(rule)
            elif isinstance(rule, IntentRule):
                for intent_id in rule.intents or (None,):
                    self.intents[intent_id].append(rule)
            elif isinstance(rule, FeedRule):
                self.feeds[rule.feed].append(rule)

    def order_rules(self, chain: int, maker: str | None) -> list[OrderRule]:
        found: list[OrderRule] = []
        for c in (chain, None):
            if maker:
                found += self.orders.get((c, maker.lower()), ())
            found += self.orders.get((c, None), ())
        return found

    def interest(self) -> Interest:
        makers: set[str] = set()
        chains: set[int] = set()
        any_maker = False
        intents: set[str] = set()
        for rule in self.rules.values():
            if isinstance(rule, OrderRule):
                if rule.makers is None:
                    any_maker = True
                else:
                    makers |= rule.makers
                chains |= rule.chains or set()
            elif isinstance(rule, IntentRule) and rule.intents:
                intents |= rule.intents
        return Interest(
            pairs=frozenset(self.by_pair),
            intents=frozenset(intents),
            makers=frozenset() if any_maker else frozenset(makers),
            chains=frozenset(chains),
        )


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
    ) -> None:
        self.rules = rules
        self._sink = sink
        self._tokens = tokens or TokenTable()
        self._store = store
        self._clock = clock
        self._metrics = metrics or Metrics()
        # Quotes are the hot path: their counter child is looked up once, not per event.
        self._quote_evaluations = self._metrics.rule_evaluations.labels("quote")
        self._states: dict[tuple[str, str], AlertState] = {}
        self._timers: list[tuple[float, str, str]] = []
        self._last_price: dict[PairKey, float] = {}
        self._quote_pairs: dict[PairKey, _QuotePair] = {}  # built lazily for ``_pairs_of``
        self._pairs_of: RuleSet | None = None
        self._last_intent: dict[str, IntentEvent] = {}
        self._error_logged: dict[str, float] = {}
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
        return self._timers[0][0] if self._timers else None

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
        while self._timers and self._timers[0][0] <= now:
            _, rule_id, key = heapq.heappop(self._timers)
            rule = self.rules.rules.get(rule_id)
            st = self._states.get((rule_id, key))
            if rule is None or st is None:
                continue
            if st.state == "pending" and now >= st.since + rule.for_:
                variables = self._refresh(rule, st.variables, now)
                if self._condition(rule, variables):
                    self._fire(rule, st, variables, now)
                else:
                    self._clear(st)
            elif st.state == "firing" and rule.repeat and now >= _repeat_due(rule, st):
                st.repeats += 1
                st.silenced = False  # the user now knows it fires: its resolve is news too
                variables = self._refresh(rule, st.variables, now)
                self._notify(rule, st, variables, "repeat", now, save=True)
                self._schedule(_repeat_due(rule, st), rule.id, key)

    def _refresh(self, rule: Rule, variables: dict[str, Any], now: float) -> dict[str, Any]:
        """Recompute time-dependent variables (``age``, ``down_seconds``) at timer time."""
        if isinstance(rule, IntentRule) and variables.get("created_at") is not None:
            return {**variables, "age": now - float(variables["created_at"]), "now": now}
        if isinstance(rule, FeedRule) and variables.get("down_since") is not None:
            return {**variables, "down_seconds": now - float(variables["down_since"]), "now": now}
        return {**variables, "now": now}

    # -- events ----------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if isinstance(event, QuoteEvent):
            self._on_quote(event)
        elif isinstance(event, OrderEvent):
            self._on_order(event)
        elif isinstance(event, IntentEvent):
            self._on_intent(event)
        elif isinstance(event, FeedEvent):
            self._on_feed(event)

    def _on_quote(self, event: QuoteEvent) -> None:
        pair = self._quote_pairs.get(event.pair) if self._pairs_of is self.rules else None
        if pair is None:
            pair = self._quote_pair(event.pair)
            if pair is None:
                return
        variables = pair.variables(event, self._last_price.get(event.pair))
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

    def _quote_pair(self, pair: PairKey) -> _QuotePair | None:
        """The pair's rules and constants, built once per rule set; None when no rule wants it."""
        if self._pairs_of is not self.rules:
            self._quote_pairs, self._pairs_of = {}, self.rules
        found = self._quote_pairs.get(pair)
        if found is None:
            rules = self.rules.by_pair.get(pair)
            if not rules:
                return None
            found = self._quote_pairs[pair] = _QuotePair(rules)
        return found

    def _on_order(self, event: OrderEvent) -> None:
        maker = event.order.maker if event.order else None
        rules = self.rules.order_rules(event.chain, maker)
        if not rules:
            return
        variables = _order_variables(event, self._tokens)
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
            if rule.makers is not None and (maker is None or maker.lower() not in rule.makers):
                continue
            if rule.when is not None and not _truthy(
                rule, "when", rule.when, variables, self._expr_error
            ):
                continue
            self._event(rule, key, event_key, variables, now)

    def _on_intent(self, event: IntentEvent) -> None:
        self._last_intent[event.intent_id] = event
        rules = [*self.rules.intents.get(event.intent_id, ()), *self.rules.intents.get(None, ())]
        if not rules:
            return
        now = self._clock()
        variables = _intent_variables(event, now)
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
        rules = self.rules.feeds.get(event.feed)
        if not rules:
            return
        now = self._clock()
        variables: dict[str, Any] = {
            "feed": event.feed,
            "up": event.up,
            "detail": event.detail,
            "now": now,
            "down_since": None if event.up else event.at,
            "down_seconds": 0.0,
        }
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
        variables: Mapping[str, Any],
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
        context = {**variables, **rule.variables_base, "transition": transition, "key": st.key}
        title = self._render(rule, "title", context)
        body = self._render(rule, "body", context)
        severity: Severity = rule.severity
        if transition == "resolved":
            title, severity = RESOLVED_PREFIX + title, "success"
        notification = Notification(
            key=dedup,
            rule_id=rule.id,
            title=title,
            body=body,
            severity=severity,
            tags=rule.tags,
            created_at=now,
            event_at=_float_or_none(variables.get("event_at")),
        )
        st.last_notified = now
        if self._store is None:
            self._sink.enqueue(notification)
            return
        with self._store.transaction():
            if save:
                self._store.save(st)
            self._sink.enqueue(notification)

    def _render(
        self, rule: Rule, which: Literal["title", "body"], context: Mapping[str, Any]
    ) -> str:
        template = rule.title if which == "title" else rule.body
        try:
            return template.render(context)
        except SandboxError as exc:
            self._expr_error(rule, which, exc)
            return f"{rule.id}: ({which} failed to render: {exc})"

    def _expr_error(self, rule: Rule, which: str, exc: Exception) -> None:
        self._metrics.rule_errors.labels(rule.id).inc()
        now = time.monotonic()
        tag = f"{rule.id}:{which}"
        if now - self._error_logged.get(tag, -1e9) >= 60:
            self._error_logged[tag] = now
            where = rule.positions.get(which, rule.location)
            log.warning("%s: %s: %s (counted as false)", where, which, exc)

    # -- views -----------------------------------------------------------------------------

    def alerts(self) -> list[dict[str, Any]]:
        """Firing and pending (rule, key) states, for status and ``/api/v1/alerts``."""
        out = []
        for st in self._states.values():
            if st.state == "inactive":
                continue
            rule = self.rules.rules.get(st.rule_id)
            out.append(
                {
                    "rule": st.rule_id,
                    "key": st.key,
                    "state": st.state,
                    "since": st.since,
                    "silenced": st.silenced,
                    "severity": rule.severity if rule else None,
                    "due": st.since + rule.for_ if rule and st.state == "pending" else None,
                    "value": {
                        k: v
                        for k, v in st.variables.items()
                        if k in {"price", "status", "up", "age", "detail"}
                    },
                }
            )
        return sorted(out, key=lambda a: (a["rule"], a["key"]))

    def last_price(self, pair: PairKey) -> float | None:
        """The last price evaluated for ``pair`` (also ``previous_price`` of the next quote)."""
        return self._last_price.get(pair)

    def firing_count(self) -> int:
        return sum(1 for st in self._states.values() if st.state == "firing")

    def _update_firing_metric(self) -> None:
        self._metrics.alerts_firing.set(self.firing_count())


# -- variables -------------------------------------------------------------------------------


def _human(raw: int | None, decimals: int | None) -> float | None:
    if raw is None or decimals is None:
        return None
    return raw / float(10) ** decimals


class _QuotePair:
    """What every quote of one pair shares, computed once per rule set: its rules with their
    state keys, and the constants its variables come from (the first rule's tokens)."""

    __slots__ = ("amount", "exact_in", "key", "name", "rules", "scale_in", "scale_out", "symbols")

    def __init__(self, rules: list[QuoteRule]) -> None:
        first = rules[0]
        self.key = first.key
        self.rules = [(rule, (rule.id, self.key)) for rule in rules]
        self.amount = int(first.pair[2])
        self.exact_in = first.pair[3]
        self.scale_in = _scale(first.decimals_in)
        self.scale_out = _scale(first.decimals_out)
        self.symbols = (first.symbol_in, first.symbol_out)
        self.name = f"{first.symbol_in}/{first.symbol_out}"

    def variables(self, event: QuoteEvent, previous: float | None) -> dict[str, Any]:
        """A new dict per quote: a state keeps the variables it fired or resolved with."""
        amount_out = event.amount_out
        exact_in = self.exact_in
        raw_in, raw_out = (self.amount, amount_out) if exact_in else (amount_out, self.amount)
        scale_in, scale_out = self.scale_in, self.scale_out
        human_in = None if scale_in is None else raw_in / scale_in
        human_out = None if scale_out is None else raw_out / scale_out
        if human_in is not None and human_out is not None:
            price: float | None = human_out / human_in if human_in else None
        else:
            price = raw_out / raw_in if raw_in else None
        return {
            "price": price,
            "previous_price": previous,
            "amount_in": human_in if human_in is not None else raw_in,
            "amount_out": human_out if human_out is not None else raw_out,
            "amount_out_raw": amount_out,
            "price_impact_bps": event.price_impact_bps,
            "hops": event.hops,
            "slot": event.slot,
            "pair": self.name,
            "token_in": self.symbols[0],
            "token_out": self.symbols[1],
            "exact_in": exact_in,
            "event_at": event.at,
        }


def _scale(decimals: int | None) -> float | None:
    """The divisor ``_human`` uses, computed once: ``raw / scale`` is the same float."""
    return None if decimals is None else float(10) ** decimals


def _order_variables(event: OrderEvent, tokens: TokenTable) -> dict[str, Any]:
    order = event.order
    remaining = event.remaining_maker_amount
    making = order.making_amount if order else None
    filled: float | None = None
    if event.event == "order_filled":
        filled = 1.0
    elif making and remaining is not None:
        filled = max(0.0, min(1.0, (making - remaining) / making))
    maker_token = tokens.by_address(order.maker_asset) if order else None
    taker_token = tokens.by_address(order.taker_asset) if order else None
    maker_dec = maker_token.decimals if maker_token else None
    return {
        "event": event.event,
        "order_hash": event.order_hash,
        "chain": event.chain,
        "maker": order.maker if order else None,
        "receiver": order.receiver if order else None,
        "maker_asset": order.maker_asset if order else None,
        "taker_asset": order.taker_asset if order else None,
        "making_amount": making,
        "taking_amount": order.taking_amount if order else None,
        "remaining_maker_amount": remaining,
        "filled_fraction": filled,
        "deadline": order.deadline if order else event.result.get("deadline"),
        "maker_asset_symbol": maker_token.symbol if maker_token else None,
        "taker_asset_symbol": taker_token.symbol if taker_token else None,
        "making_amount_human": _human(making, maker_dec),
        "taking_amount_human": _human(
            order.taking_amount if order else None, taker_token.decimals if taker_token else None
        ),
        "remaining_maker_amount_human": _human(remaining, maker_dec),
        "reconciled": event.reconciled,
        "event_at": event.at,
    }


def _intent_variables(event: IntentEvent, now: float) -> dict[str, Any]:
    return {
        **event.fields,
        "intent_id": event.intent_id,
        "status": event.status,
        "previous_status": event.previous_status,
        "label": event.label,
        "created_at": event.created_at,
        "age": now - event.created_at if event.created_at is not None else None,
        "swap_metadata": dict(event.swap_metadata or {}),
        "terminal": event.terminal,
        "now": now,
        "event_at": event.at,
    }


def _repeat_due(rule: Rule, st: AlertState) -> float:
    """A repeat is due one period after the later of the firing and the last message."""
    return max(st.last_notified, st.since) + rule.repeat


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
