"""The rule engine on a virtual clock: every state and event semantic of SPEC §4."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notifier.dispatch import Notification
from notifier.events import FeedEvent, IntentEvent, OrderEvent, OrderInfo, PairKey, QuoteEvent
from notifier.metrics import Metrics
from notifier.rules.engine import Engine
from notifier.rules.ruleset import RuleSet
from notifier.rules.state import StateStore
from notifier.store import Store
from tests.receivers import FakeClock
from tests.support import SOL, SOL_USDC, USDC, compile_text

SOL_USDC_10: PairKey = (SOL, USDC, "10000000000", True)
MAKER = "0x00000000000000000000000000000000000d3e70"
OTHER_MAKER = "0x1111111111111111111111111111111111111111"
T0 = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """The state database in ``tmp_path``, closed after the test."""
    opened = Store.open(tmp_path)
    yield opened
    opened.close()


class Sink:
    """Collects notifications and accepts a key once, like the outbox."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def enqueue(self, notification: Notification) -> bool:
        if any(n.key == notification.key for n in self.sent):
            return False
        self.sent.append(notification)
        return True

    @property
    def titles(self) -> list[str]:
        return [n.title for n in self.sent]


def ruleset(text: str, path: str = "rules.yaml") -> RuleSet:
    rules, errors = compile_text(text, path)
    assert errors == []
    return RuleSet(rules)


class Rig:
    """An engine with its clock, sink and metrics; ``restart`` builds a new one on the same DB."""

    def __init__(self, rules: str, store: Store | None = None) -> None:
        self.clock = FakeClock(T0)  # the only fake: time that moves when a test says so
        self.sink = Sink()
        self.metrics = Metrics()
        self.store = store
        self.rules = ruleset(rules)
        self.engine = self._engine(self.rules)

    def _engine(self, rules: RuleSet) -> Engine:
        store = StateStore(self.store) if self.store is not None else None
        return Engine(rules, self.sink, store=store, clock=self.clock, metrics=self.metrics)

    def restart(self, rules: str | None = None) -> None:
        self.metrics = Metrics()
        self.rules = ruleset(rules) if rules is not None else self.rules
        self.engine = self._engine(self.rules)

    def at(self, seconds: float) -> None:
        """Move the clock to ``T0 + seconds`` and run due timers, as the daemon does."""
        self.clock.value = T0 + seconds
        self.engine.tick()

    def quote(self, price: float, pair: PairKey = SOL_USDC, impact: int = 3) -> None:
        raw_in = int(pair[2])
        out = round(price * raw_in / 1000)  # SOL has 9 decimals, USDC 6
        self.engine.handle(QuoteEvent(pair, out, impact, 1, 1, self.clock()))

    def order(
        self,
        event: str,
        order_hash: str = "0xabc",
        *,
        chain: int = 1,
        maker: str = MAKER,
        remaining: int | None = None,
        reconciled: bool = False,
    ) -> None:
        info = OrderInfo(order_hash, maker, maker, "0xa", "0xb", 1000, 2000, None, None)
        result: dict[str, Any] = {"orderHash": order_hash}
        if remaining is not None:
            result["remainingMakerAmount"] = str(remaining)
        self.engine.handle(
            OrderEvent(chain, event, order_hash, result, info, self.clock(), reconciled)
        )

    def intent(
        self, intent_id: str, status: str, previous: str | None, created: float | None = T0
    ) -> None:
        self.engine.handle(
            IntentEvent(intent_id, status, previous, None, {}, None, created, self.clock())
        )

    def feed(self, feed: str, up: bool) -> None:
        self.engine.handle(FeedEvent(feed, up, "up" if up else "connection lost", self.clock()))  # type: ignore[arg-type]

    def evaluations(self, kind: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "notifier_rule_evaluations_total", {"kind": kind}
        )
        return value or 0.0

    @property
    def titles(self) -> list[str]:
        return self.sink.titles


ABOVE = """\
rules:
  - id: sol-above-200
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 200
    title: "up {{ price | round(1) }}"
"""


# -- state rules: edges, for, until, resolve ----------------------------------------------------


def test_state_rule_fires_on_the_false_to_true_edge_only() -> None:
    """A true condition fires once; further true quotes do not notify again."""
    rig = Rig(ABOVE)
    rig.quote(199)
    assert rig.titles == []
    rig.quote(201)
    rig.quote(202)
    rig.quote(250)
    assert rig.titles == ["up 201.0"]
    assert rig.engine.firing_count() == 1


def test_state_rule_that_is_true_at_the_first_evaluation_fires() -> None:
    """The state before the first event is inactive, so a first true quote is an edge."""
    rig = Rig(ABOVE)
    rig.quote(205)
    assert rig.titles == ["up 205.0"]


FOR = """\
rules:
  - id: sol-below-185
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    below: 185
    for: 30s
    title: "down {{ price }}"
"""


def test_for_goes_pending_then_fires_from_tick_without_a_new_event() -> None:
    """``for:`` holds the rule pending; the timer fires it at the due time with no new quote."""
    rig = Rig(FOR)
    rig.quote(184)
    assert rig.titles == []
    assert rig.engine.alerts()[0]["state"] == "pending"
    assert rig.engine.next_due() == T0 + 30
    rig.at(29.9)
    assert rig.titles == []
    rig.at(30)
    assert rig.titles == ["down 184.0"]
    assert rig.engine.alerts()[0]["state"] == "firing"


def test_for_fires_on_a_quote_arriving_after_the_due_time() -> None:
    """A quote that finds the pending time elapsed fires it even before the timer ran."""
    rig = Rig(FOR)
    rig.quote(184)
    rig.clock.advance(31)
    rig.quote(183)
    assert rig.titles == ["down 183.0"]
    rig.engine.tick()
    assert len(rig.titles) == 1


def test_for_does_not_fire_when_the_condition_drops_before_due() -> None:
    """A pending rule whose condition turns false returns to inactive; its timer does nothing."""
    rig = Rig(FOR)
    rig.quote(184)
    rig.at(10)
    rig.quote(186)
    rig.at(30)
    rig.at(100)
    assert rig.titles == []
    assert rig.engine.alerts() == []


def test_for_restarts_its_timer_after_the_condition_dropped() -> None:
    """A second true spell counts ``for`` from its own start, not the first one's."""
    rig = Rig(FOR)
    rig.quote(184)
    rig.at(10)
    rig.quote(190)
    rig.at(20)
    rig.quote(180)
    rig.at(30)  # the first spell's due time
    assert rig.titles == []
    rig.at(50)
    assert rig.titles == ["down 180.0"]


HYSTERESIS = """\
rules:
  - id: sol-above-200
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 200
    until: price < 198
    resolved: true
    severity: warning
    title: "{{ transition }} {{ price | round(1) }}"
"""


def test_until_keeps_the_rule_firing_inside_the_band() -> None:
    """Between ``until`` and ``when`` the rule neither resolves nor fires again."""
    rig = Rig(HYSTERESIS)
    rig.quote(201)
    for price in (199, 200.5, 198.5, 203, 198.01):
        rig.quote(price)
    assert rig.titles == ["firing 201.0"]
    assert rig.engine.firing_count() == 1


def test_until_resolves_and_a_new_crossing_fires_again() -> None:
    """Once ``until`` holds the rule resolves; the next crossing is a new firing."""
    rig = Rig(HYSTERESIS)
    rig.quote(201)
    rig.quote(197.5)
    rig.clock.advance(1)
    rig.quote(199)
    rig.quote(200.5)
    assert rig.titles == ["firing 201.0", "RESOLVED resolved 197.5", "firing 200.5"]


def test_resolved_true_sends_a_resolved_message_with_severity_success() -> None:
    """``resolved: true`` adds a RESOLVED message whose severity is success."""
    rig = Rig(HYSTERESIS)
    rig.quote(201)
    rig.quote(190)
    firing, resolved = rig.sink.sent
    assert firing.severity == "warning"
    assert resolved.title.startswith("RESOLVED ")
    assert resolved.severity == "success"
    assert resolved.rule_id == "sol-above-200"
    assert resolved.key != firing.key


def test_default_resolve_is_not_when_and_sends_nothing_without_resolved() -> None:
    """Without ``until`` the rule resolves as soon as ``when`` is false, silently by default."""
    rig = Rig(ABOVE)
    rig.quote(201)
    rig.at(1)
    rig.quote(199.9)
    assert rig.engine.firing_count() == 0
    rig.at(2)
    rig.quote(200.1)
    assert rig.titles == ["up 201.0", "up 200.1"]


# -- cooldown and repeat ----------------------------------------------------------------------

COOLDOWN = """\
rules:
  - id: sol-above-200
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 200
    cooldown: 5m
    resolved: true
    title: "{{ transition }} {{ price | round(1) }}"
"""


def test_cooldown_suppresses_a_second_firing_notification_within_the_window() -> None:
    """A re-firing inside the cooldown is silent, and so is its resolve."""
    rig = Rig(COOLDOWN)
    rig.quote(201)
    rig.at(60)
    rig.quote(199)
    rig.at(120)
    rig.quote(202)
    assert rig.engine.firing_count() == 1
    assert rig.engine.alerts()[0]["silenced"] is True
    rig.at(130)
    rig.quote(199)
    assert rig.titles == ["firing 201.0", "RESOLVED resolved 199.0"]


def test_cooldown_allows_a_firing_notification_after_the_window() -> None:
    """Once the cooldown has passed since the last firing notification, firing notifies again."""
    rig = Rig(COOLDOWN)
    rig.quote(201)
    rig.at(60)
    rig.quote(199)
    rig.at(301)
    rig.quote(203)
    assert rig.titles == ["firing 201.0", "RESOLVED resolved 199.0", "firing 203.0"]


def test_cooldown_counts_from_the_last_notified_firing_not_silent_ones() -> None:
    """A condition flapping faster than the cooldown still notifies once per cooldown window."""
    rig = Rig(COOLDOWN)
    for minute in range(12):  # fires at every even minute, resolves at every odd one
        rig.at(minute * 60)
        rig.quote(201 + minute if minute % 2 == 0 else 199)
    firings = [t for t in rig.titles if t.startswith("firing")]
    assert firings == ["firing 201.0", "firing 207.0"]  # minutes 0 and 6


def test_cooldown_is_per_key() -> None:
    """A firing of one intent does not put another intent of the same rule in cooldown."""
    rig = Rig(
        """\
rules:
  - id: deposited
    on: intent
    when: status == 'Deposited'
    cooldown: 5m
    title: "{{ intent_id }}"
"""
    )
    rig.intent("a", "Deposited", "Created")
    rig.at(10)
    rig.intent("a", "Verified", "Deposited")
    rig.intent("b", "Deposited", "Created")
    rig.at(20)
    rig.intent("a", "Deposited", "Verified")  # a again, inside a's cooldown
    assert rig.titles == ["a", "b"]
    assert {a["key"]: a["silenced"] for a in rig.engine.alerts()} == {"a": True, "b": False}


REPEAT = """\
rules:
  - id: impact
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    when: price_impact_bps > 100
    repeat: 1h
    title: "{{ transition }} {{ price_impact_bps }}"
"""


def test_repeat_renotifies_while_firing_and_stops_after_resolve() -> None:
    """``repeat`` sends one message per period while firing, none after the resolve."""
    rig = Rig(REPEAT)
    rig.quote(200, impact=150)
    assert rig.engine.next_due() == T0 + 3600
    rig.at(3599)
    rig.at(3600)
    rig.quote(200, impact=170)
    rig.at(7200)
    assert rig.titles == ["firing 150", "repeat 150", "repeat 170"]
    rig.quote(200, impact=50)
    rig.at(10_800)
    rig.at(20_000)
    assert len(rig.titles) == 3
    assert len({n.key for n in rig.sink.sent}) == 3


def test_repeat_of_a_silenced_firing_counts_from_that_firing() -> None:
    """Inside a cooldown a re-firing is silent; its first repeat comes one period after it."""
    rig = Rig(REPEAT.replace("    repeat: 1h", "    repeat: 10m\n    cooldown: 30m"))
    rig.quote(200, impact=150)  # notified at 0
    rig.at(100)
    rig.quote(200, impact=50)  # resolved at 100
    rig.at(200)
    rig.quote(200, impact=160)  # silent re-firing at 200
    rig.at(600)  # the first episode's repeat time: nothing
    assert rig.titles == ["firing 150"]
    rig.at(800)
    assert rig.titles == ["firing 150", "repeat 160"]


def test_a_repeated_silent_firing_announces_its_resolve() -> None:
    """Once a repeat told the user a silent firing is on, its resolve is sent too."""
    rig = Rig(
        REPEAT.replace("    repeat: 1h", "    repeat: 10m\n    cooldown: 30m\n    resolved: true")
    )
    rig.quote(200, impact=150)
    rig.at(100)
    rig.quote(200, impact=50)
    rig.at(200)
    rig.quote(200, impact=160)  # silent
    rig.at(300)
    rig.quote(200, impact=40)  # its resolve is silent too
    rig.at(400)
    rig.quote(200, impact=170)  # silent again
    rig.at(1000)  # repeat
    rig.quote(200, impact=30)
    assert rig.titles == [
        "firing 150",
        "RESOLVED resolved 50",
        "repeat 170",
        "RESOLVED resolved 30",
    ]


# -- keys ---------------------------------------------------------------------------------------


def test_keys_are_independent_for_two_pairs() -> None:
    """Two pairs under the same kind of rule keep separate states."""
    rig = Rig(
        ABOVE
        + """\
  - id: sol10-above-200
    on: quote
    pair: {in: SOL, out: USDC, amount: 10}
    above: 200
    title: "ten {{ price | round(1) }}"
"""
    )
    rig.quote(201)
    rig.quote(199, SOL_USDC_10)
    rig.quote(202, SOL_USDC_10)
    rig.quote(150)
    rig.quote(203, SOL_USDC_10)
    assert rig.titles == ["up 201.0", "ten 202.0"]
    assert [a["rule"] for a in rig.engine.alerts()] == ["sol10-above-200"]


def test_keys_are_independent_for_two_intents() -> None:
    """One intent rule keeps one state per intent id."""
    rig = Rig(
        """\
rules:
  - id: stuck
    on: intent
    when: status == 'Deposited'
    for: 1m
    title: "{{ intent_id }} {{ status }}"
"""
    )
    rig.intent("a", "Deposited", "Created")
    rig.at(30)
    rig.intent("b", "Deposited", "Created")
    rig.at(60)
    assert rig.titles == ["a Deposited"]
    rig.intent("a", "Finished", "Deposited")
    rig.at(90)
    assert rig.titles == ["a Deposited", "b Deposited"]
    assert [a["key"] for a in rig.engine.alerts()] == ["b"]


# -- restart persistence ------------------------------------------------------------------------


def test_a_pending_rule_resumes_after_restart_and_fires_once_at_the_original_due_time(
    store: Store,
) -> None:
    """The pending timer is in SQLite: a new engine fires it at since + for, exactly once."""
    rig = Rig(FOR, store)
    rig.at(5)
    rig.quote(184)
    rig.at(20)
    rig.restart()
    assert rig.engine.next_due() == T0 + 35
    rig.at(34)
    assert rig.titles == []
    rig.at(35)
    rig.at(36)
    rig.quote(183)
    assert rig.titles == ["down 184.0"]
    rig.restart()
    rig.at(100)
    rig.quote(182)
    assert rig.titles == ["down 184.0"]


def test_a_pending_rule_whose_due_time_passed_during_downtime_fires_on_the_first_tick(
    store: Store,
) -> None:
    """Down across the due time: the restored timer is already due and fires once."""
    rig = Rig(FOR, store)
    rig.quote(184)
    rig.clock.value = T0 + 120
    rig.restart()
    rig.engine.tick()
    rig.engine.tick()
    assert rig.titles == ["down 184.0"]


def test_a_firing_alert_does_not_notify_again_after_restart(store: Store) -> None:
    """A restored firing state stays firing without a second message, and resolves later."""
    rig = Rig(HYSTERESIS, store)
    rig.quote(201)
    rig.restart()
    assert rig.engine.firing_count() == 1
    rig.quote(205)
    rig.quote(199)
    assert rig.titles == ["firing 201.0"]
    rig.quote(197)
    assert rig.titles == ["firing 201.0", "RESOLVED resolved 197.0"]


def test_cooldown_survives_a_restart(store: Store) -> None:
    """The last firing time is persisted, so a restart does not reopen the window."""
    rig = Rig(COOLDOWN, store)
    rig.quote(201)
    rig.at(60)
    rig.quote(199)
    rig.restart()
    rig.at(120)
    rig.quote(202)
    assert [t for t in rig.titles if t.startswith("firing")] == ["firing 201.0"]
    rig.quote(199)
    rig.restart()
    rig.at(400)
    rig.quote(204)
    assert [t for t in rig.titles if t.startswith("firing")] == ["firing 201.0", "firing 204.0"]


def test_repeat_survives_a_restart(store: Store) -> None:
    """A firing rule with ``repeat`` keeps its schedule across a restart."""
    rig = Rig(REPEAT, store)
    rig.quote(200, impact=150)
    rig.at(1800)
    rig.restart()
    assert rig.engine.next_due() == T0 + 3600
    rig.at(3600)
    assert rig.titles == ["firing 150", "repeat 150"]


def test_a_changed_rule_starts_fresh_after_restart(store: Store) -> None:
    """State belongs to the rule's text: a different fingerprint drops the pending timer."""
    rig = Rig(FOR, store)
    rig.quote(184)
    rig.restart(FOR.replace("for: 30s", "for: 40s"))
    assert rig.engine.alerts() == []
    assert rig.engine.next_due() is None
    rig.at(30)
    assert rig.titles == []
    rig.quote(184)
    rig.at(70)
    assert rig.titles == ["down 184.0"]


def test_swap_keeps_unchanged_rules_state_and_drops_changed_and_removed(
    store: Store,
) -> None:
    """A reload keeps (rule, key) states whose rule text did not change, in memory and SQLite."""
    below_ten = FOR.removeprefix("rules:\n").replace("amount: 1}", "amount: 10}")
    every_quote = REPEAT.removeprefix("rules:\n").replace("price_impact_bps > 100", "hops >= 1")
    rig = Rig(HYSTERESIS + below_ten + every_quote, store)
    rig.quote(201)  # sol-above-200 and impact fire
    rig.quote(184, SOL_USDC_10)  # sol-below-185 pending
    states = {a["rule"]: a["state"] for a in rig.engine.alerts()}
    assert states == {"impact": "firing", "sol-above-200": "firing", "sol-below-185": "pending"}

    rig.engine.swap(ruleset(HYSTERESIS + below_ten.replace("for: 30s", "for: 45s")))
    assert [(a["rule"], a["state"]) for a in rig.engine.alerts()] == [("sol-above-200", "firing")]
    assert store.read("SELECT rule_id FROM rule_state") == [("sol-above-200",)]
    rig.at(60)
    rig.quote(205)  # still firing: no second firing message after the swap
    rig.quote(197)
    assert rig.titles == ["firing 201.0", "firing 3", "RESOLVED resolved 197.0"]


def test_swap_of_the_same_text_carries_pending_timers_over() -> None:
    """Rules recompiled from unchanged text are new objects but keep their pending timers."""
    rig = Rig(FOR)
    rig.quote(184)
    rig.engine.swap(ruleset(FOR))
    rig.at(30)
    assert rig.titles == ["down 184.0"]


# -- event rules ------------------------------------------------------------------------------

MAKER_MIXED_CASE = "0x" + MAKER[2:].upper()
ORDERS = f"""\
rules:
  - id: fills
    on: order
    chain: 1
    maker: "{MAKER_MIXED_CASE}"
    events: [order_filled, order_filled_partially]
    title: "{{{{ event }}}} {{{{ order_hash }}}} {{{{ remaining_maker_amount }}}}"
"""


def test_order_rule_filters_by_chain_event_and_case_insensitive_maker() -> None:
    """Only the configured chain, events and maker (any letter case) reach the rule."""
    rig = Rig(ORDERS)
    rig.order("order_filled", "0x1", chain=56)
    rig.order("order_filled", "0x2", maker=OTHER_MAKER)
    rig.order("order_created", "0x3")
    rig.order("order_cancelled", "0x4")
    rig.order("order_filled", "0x5", maker=MAKER_MIXED_CASE)
    rig.order("order_filled", "0x6")  # the rule spells the maker in upper case
    assert rig.titles == ["order_filled 0x5 None", "order_filled 0x6 None"]


SOLANA_MAKER = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
SOLANA_ORDERS = f"""\
rules:
  - id: sol-fills
    on: order
    chain: 501
    maker: {SOLANA_MAKER}
    title: "{{{{ event }}}} {{{{ tx }}}} {{{{ slot }}}} {{{{ resolver }}}} {{{{ reason }}}}"
  - id: evm-fills
    on: order
    chain: 1
    maker: "{MAKER}"
    title: "evm {{{{ tx }}}} {{{{ slot }}}} {{{{ resolver }}}} {{{{ reason }}}}"
"""


def test_a_base58_maker_is_compared_exactly_and_solana_variables_are_set() -> None:
    """On chain 501 only the exact base58 spelling matches; ``tx``, ``slot``, ``resolver`` and
    ``reason`` come from the event, and are none on EVM."""
    rig = Rig(SOLANA_ORDERS)
    twin = SOLANA_MAKER[0] + SOLANA_MAKER[1].lower() + SOLANA_MAKER[2:]
    rig.order("order_filled", "S1", chain=501, maker=twin)
    rig.order("order_filled", "S2", chain=501, maker=SOLANA_MAKER.lower())
    info = OrderInfo("S3", SOLANA_MAKER, SOLANA_MAKER, "m1", "m2", 1000, 2000, None, None)
    fill = {"orderHash": "S3", "transactionSignature": "5sig", "slotNumber": 7, "resolver": "R"}
    rig.engine.handle(OrderEvent(501, "order_filled", "S3", fill, info, rig.clock()))
    expired = {"orderHash": "S4", "reason": "expired"}
    rig.engine.handle(OrderEvent(501, "order_invalid", "S4", expired, info, rig.clock()))
    rig.order("order_filled", "0x7", maker=MAKER_MIXED_CASE)
    assert rig.titles == [
        "order_filled 5sig 7 R None",
        "order_invalid None None None expired",
        "evm None None None None",
    ]


def test_order_rule_when_filters_events() -> None:
    """``when`` on an order rule sees the order's variables."""
    rig = Rig(
        """\
rules:
  - id: big-partials
    on: order
    when: filled_fraction is not none and filled_fraction >= 0.5
    title: "{{ order_hash }} {{ filled_fraction }}"
"""
    )
    rig.order("order_filled_partially", "0x1", remaining=800)
    rig.order("order_filled_partially", "0x1", remaining=400)
    rig.order("order_filled", "0x1")
    assert rig.titles == ["0x1 0.6", "0x1 1.0"]


def test_each_partial_fill_with_a_new_remaining_amount_notifies() -> None:
    """A second partial fill is a distinct event; the same one seen twice is not."""
    rig = Rig(ORDERS)
    rig.order("order_filled_partially", remaining=700)
    rig.order("order_filled_partially", remaining=700, reconciled=True)
    rig.order("order_filled_partially", remaining=300)
    assert rig.titles == [
        "order_filled_partially 0xabc 700",
        "order_filled_partially 0xabc 300",
    ]


def test_a_duplicate_order_filled_live_and_reconciled_notifies_once() -> None:
    """The live push and the REST reconcile of one fill are one event."""
    rig = Rig(ORDERS)
    rig.order("order_filled")
    rig.clock.advance(30)
    rig.order("order_filled", reconciled=True)
    assert rig.titles == ["order_filled 0xabc None"]


def test_event_rule_cooldown_is_per_order() -> None:
    """``cooldown`` on an event rule mutes further events of the same order inside it."""
    rig = Rig(ORDERS.replace("    events:", "    cooldown: 1m\n    events:"))
    rig.order("order_filled_partially", remaining=700)
    rig.order("order_filled_partially", remaining=300)
    rig.order("order_filled_partially", "0xdef", remaining=1)
    rig.clock.advance(61)
    rig.order("order_filled")
    assert rig.titles == [
        "order_filled_partially 0xabc 700",
        "order_filled_partially 0xdef 1",
        "order_filled 0xabc None",
    ]


INTENT_TO = """\
rules:
  - id: trouble
    on: intent
    to: [Expired, Refunded]
    title: "{{ intent_id }} {{ previous_status }}->{{ status }}"
"""


def test_intent_to_fires_once_per_status_move() -> None:
    """A move into a ``to`` status notifies once; re-polls in that status do not."""
    rig = Rig(INTENT_TO)
    rig.intent("i1", "Deposited", "Created")
    rig.intent("i1", "Expired", "Deposited")
    rig.intent("i1", "Expired", "Expired")
    rig.intent("i1", "Expired", "Deposited")  # the same move seen again
    rig.intent("i1", "Refunded", "Expired")
    rig.intent("i2", "Expired", "Deposited")
    assert rig.titles == ["i1 Deposited->Expired", "i1 Expired->Refunded", "i2 Deposited->Expired"]


OVERDUE = """\
rules:
  - id: overdue
    on: intent
    overdue: 30m
    resolved: true
    title: "{{ transition }} {{ intent_id }} {{ status }} {{ (age / 60) | round | int }}m"
"""


def test_overdue_fires_on_the_clock_for_a_stuck_intent() -> None:
    """An intent not terminal 30 min after ``created_at`` fires from ``tick``, not from a poll."""
    rig = Rig(OVERDUE)
    rig.at(60)
    rig.intent("i1", "Deposited", "Created", created=T0)
    assert rig.engine.next_due() == T0 + 1800
    rig.at(1799)
    assert rig.titles == []
    rig.at(1800)
    assert rig.titles == ["firing i1 Deposited 30m"]


def test_overdue_does_not_fire_for_an_intent_finished_before_the_deadline() -> None:
    """Finishing in time clears the timer."""
    rig = Rig(OVERDUE)
    rig.intent("i1", "Deposited", "Created")
    rig.at(1000)
    rig.intent("i1", "Finished", "Deposited")
    rig.at(1800)
    rig.at(4000)
    assert rig.titles == []
    assert rig.engine.alerts() == []


def test_overdue_resolves_when_the_intent_finishes() -> None:
    """A fired overdue alert resolves (and says so with ``resolved: true``) at a terminal status."""
    rig = Rig(OVERDUE)
    rig.intent("i1", "Deposited", "Created")
    rig.at(1800)
    rig.at(2400)
    rig.intent("i1", "Verified", "Deposited")
    rig.at(2700)
    rig.intent("i1", "Finished", "Verified")
    assert rig.titles == ["firing i1 Deposited 30m", "RESOLVED resolved i1 Finished 45m"]
    assert rig.engine.firing_count() == 0


def test_overdue_fires_at_once_for_an_intent_first_seen_past_its_deadline() -> None:
    """An intent created long ago and still open is overdue on its first poll."""
    rig = Rig(OVERDUE)
    rig.at(3600)
    rig.intent("old", "Deposited", None, created=T0)
    assert rig.titles == ["firing old Deposited 60m"]


def test_overdue_needs_created_at() -> None:
    """Without ``created_at`` the age is unknown and ``overdue`` never fires."""
    rig = Rig(OVERDUE)
    rig.intent("i1", "Deposited", "Created", created=None)
    rig.at(10_000)
    assert rig.titles == []


def test_overdue_pending_timer_survives_a_restart(store: Store) -> None:
    """The overdue deadline is persisted like any pending timer."""
    rig = Rig(OVERDUE, store)
    rig.intent("i1", "Deposited", "Created")
    rig.at(600)
    rig.restart()
    rig.at(1800)
    assert rig.titles == ["firing i1 Deposited 30m"]


FEED = """\
rules:
  - id: quotes-down
    on: feed
    feed: quote
    down_for: 1m
    resolved: true
    title: "{{ transition }} {{ feed }} {{ down_seconds | int }}s"
"""


def test_feed_rule_fires_after_down_for_and_resolves_when_up() -> None:
    """A feed down for ``down_for`` fires from the clock and resolves when it is back."""
    rig = Rig(FEED)
    rig.feed("order", False)  # another feed
    rig.at(5)
    rig.feed("quote", False)
    rig.at(64)
    assert rig.titles == []
    rig.at(65)
    rig.at(90)
    rig.feed("quote", True)
    assert rig.titles == ["firing quote 60s", "RESOLVED resolved quote 0s"]


def test_feed_rule_does_not_fire_when_the_feed_recovers_in_time() -> None:
    """A short outage below ``down_for`` sends nothing."""
    rig = Rig(FEED)
    rig.feed("quote", False)
    rig.at(30)
    rig.feed("quote", True)
    rig.at(120)
    assert rig.titles == []


# -- the index: an event reaches only the rules that can match it ------------------------------


def unrelated_rules(count: int) -> str:
    """``count`` rules of every kind that no event of the tests below can match."""
    lines = ["rules:"]
    for i in range(count):
        lines += [
            f"  - id: q{i}",
            "    on: quote",
            f"    pair: {{in: SOL, out: USDC, amount: {i + 100}}}",
            "    above: 1",
            f"  - id: o{i}",
            "    on: order",
            f"    chain: {i + 100}",
            f"  - id: m{i}",
            "    on: order",
            f'    maker: "0x{i:040x}"',
            f"  - id: i{i}",
            "    on: intent",
            f"    intents: [other-{i}]",
            "    to: [Finished]",
        ]
    return "\n".join(lines) + "\n"


def test_a_quote_for_a_pair_without_rules_evaluates_nothing() -> None:
    """No rule for the pair: the quote costs no evaluation at all."""
    rig = Rig(unrelated_rules(50))
    rig.quote(250)
    assert rig.evaluations("quote") == 0
    assert rig.titles == []


def test_an_order_for_another_chain_or_maker_reaches_no_rule() -> None:
    """Orders are routed by (chain, maker): unrelated ones are not evaluated."""
    rig = Rig(unrelated_rules(50))
    rig.order("order_filled", chain=1, maker=OTHER_MAKER)
    rig.intent("mine", "Finished", "Deposited")
    assert rig.evaluations("order") == 0
    assert rig.evaluations("intent") == 0


@pytest.mark.parametrize("unrelated", [0, 10, 200])
def test_per_event_cost_does_not_grow_with_unrelated_rules(unrelated: int) -> None:
    """With one matching rule per kind an event costs one evaluation, however many others exist."""
    mine = f"""\
  - id: my-quote
    on: quote
    pair: {{in: SOL, out: USDC, amount: 1}}
    above: 200
  - id: my-order
    on: order
    chain: 1
    maker: "{MAKER}"
  - id: my-intent
    on: intent
    intents: [mine]
    to: [Finished]
"""
    rig = Rig(unrelated_rules(unrelated) + mine if unrelated else "rules:\n" + mine)
    rig.quote(201)
    rig.order("order_filled")
    rig.intent("mine", "Finished", "Deposited")
    assert [rig.evaluations(kind) for kind in ("quote", "order", "intent")] == [1, 1, 1]
    assert [n.rule_id for n in rig.sink.sent] == ["my-quote", "my-order", "my-intent"]


# -- expressions that raise -------------------------------------------------------------------


def test_a_raising_expression_counts_as_false_logs_its_place_and_spares_other_rules(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``price / 0`` and a refused operation are false, logged at the rule's path:line:col."""
    rig = Rig(
        """\
rules:
  - id: divides-by-zero
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    when: price / 0 > 1
  - id: refused
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    when: ('x' * 10**8) | length > 0
  - id: fine
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    when: price > 1
    title: "fine {{ price }}"
"""
    )
    with caplog.at_level(logging.WARNING, logger="notifier.rules.engine"):
        rig.quote(201)
        rig.quote(202)
    assert rig.titles == ["fine 201.0"]
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("rules.yaml:5:11: when: ZeroDivisionError") for m in messages)
    assert any(m.startswith("rules.yaml:9:11: when: refused:") for m in messages)
    assert len(messages) == 2  # logged once per rule, not per event
    errors = rig.metrics.registry.get_sample_value(
        "notifier_rule_expression_errors_total", {"rule": "divides-by-zero"}
    )
    assert errors == 2


def test_a_bare_missing_key_counts_as_false_instead_of_escaping_the_engine() -> None:
    """``when: swap_metadata.flag`` on an intent without that key is false, not a crash."""
    rig = Rig(
        """\
rules:
  - id: flagged
    on: intent
    when: swap_metadata.flag
  - id: any
    on: intent
    to: [Finished]
"""
    )
    rig.intent("i1", "Finished", "Deposited")
    assert [n.rule_id for n in rig.sink.sent] == ["any"]


def test_a_template_that_fails_still_notifies_with_a_fallback_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A title that raises does not lose the alert: the message says what failed."""
    rig = Rig(ABOVE.replace('"up {{ price | round(1) }}"', '"{{ price / 0 }}"'))
    with caplog.at_level(logging.WARNING, logger="notifier.rules.engine"):
        rig.quote(201)
    assert rig.titles == [
        "sol-above-200: (title failed to render: ZeroDivisionError: float division by zero)"
    ]
    assert "rules.yaml:6:12: title:" in caplog.text


# -- the quote hot path ------------------------------------------------------------------------

VARIABLES_TITLE = (
    "{{ pair }} {{ token_in }}>{{ token_out }} {{ amount_in }}>{{ amount_out }}"
    " raw {{ amount_out_raw }} at {{ price }} prev {{ previous_price }} exact {{ exact_in }}"
    " bps {{ price_impact_bps }} hops {{ hops }} slot {{ slot }}"
)


def test_quote_variables_for_exact_in_exact_out_and_unknown_decimals() -> None:
    """Per-pair constants are computed once; the variables are what the quote implies."""
    rules = f"""\
rules:
  - id: exact-in
    on: quote
    pair: {{in: SOL, out: USDC, amount: 1}}
    above: 0
    title: "{VARIABLES_TITLE}"
  - id: exact-out
    on: quote
    pair: {{in: USDC, out: SOL, amount: 2, exact_in: false}}
    above: 0
    title: "{VARIABLES_TITLE}"
  - id: raw
    on: quote
    pair: {{in: {"A" * 32}, out: {"B" * 32}, amount: 400}}
    above: 0
    title: "{VARIABLES_TITLE}"
"""
    rig = Rig(rules)
    pairs = {rule.id: rule.pair for rule in rig.rules.rules.values()}  # type: ignore[attr-defined]
    rig.engine.handle(QuoteEvent(pairs["exact-in"], 201_500_000, 7, 2, 11, T0))
    rig.engine.handle(QuoteEvent(pairs["exact-out"], 250_000, 5, 1, 12, T0))
    rig.engine.handle(QuoteEvent(pairs["raw"], 1000, 0, 3, 13, T0))
    assert rig.titles == [
        "SOL/USDC SOL>USDC 1.0>201.5 raw 201500000 at 201.5 prev None exact True"
        " bps 7 hops 2 slot 11",
        "USDC/SOL USDC>SOL 0.25>2.0 raw 250000 at 8.0 prev None exact False bps 5 hops 1 slot 12",
        f"{'A' * 8}/{'B' * 8} {'A' * 8}>{'B' * 8} 400>1000 raw 1000 at 2.5 prev None exact True"
        " bps 0 hops 3 slot 13",
    ]


def test_a_reload_reaches_the_next_quote_of_a_pair() -> None:
    """Rules added to or removed from a pair by a swap apply from the very next quote."""
    second = ABOVE.replace("sol-above-200", "sol-above-100").replace("above: 200", "above: 100")
    rig = Rig(ABOVE)
    rig.quote(150)
    assert (rig.evaluations("quote"), rig.titles) == (1, [])
    rig.engine.swap(ruleset(ABOVE + second.removeprefix("rules:\n")))
    rig.quote(151)
    assert (rig.evaluations("quote"), rig.titles) == (3, ["up 151.0"])
    rig.engine.swap(ruleset("rules: []\n"))
    rig.quote(152)
    assert rig.evaluations("quote") == 3
    assert rig.engine.last_price(SOL_USDC) == 151.0  # a quote no rule wants is not evaluated


def test_an_overdue_rule_without_a_title_says_overdue() -> None:
    """The default title of an ``overdue`` rule names the overdue, not only the status."""
    rig = Rig(OVERDUE.replace(OVERDUE.splitlines()[-1] + "\n", ""))
    rig.intent("i1", "Deposited", "Created", created=T0)
    rig.at(1800)
    rig.at(2400)
    rig.intent("i1", "Finished", "Deposited")
    assert rig.titles == [
        "overdue: intent i1 overdue (Deposited after 30 min)",
        "RESOLVED overdue: intent i1 overdue (Finished after 40 min)",
    ]


def test_a_swap_that_keeps_a_pairs_rule_objects_behaves_as_a_fresh_build() -> None:
    """A reload hands unchanged files' rules over as the same objects, and the engine then
    keeps that pair's index; it must behave as an engine given freshly compiled rules."""
    other = ABOVE.replace("sol-above-200", "ten-below").replace("above: 200", "below: 100")
    other = other.replace("amount: 1}", "amount: 10}")
    texts = [ABOVE + other.removeprefix("rules:\n"), ABOVE.replace("above: 200", "above: 300")]
    texts += [texts[0], ABOVE, texts[0]]
    kept, fresh = Rig(texts[0]), Rig(texts[0])
    compiled = {text: ruleset(text) for text in texts}
    for step, text in enumerate(texts):
        if step:
            old = kept.engine.rules.rules
            new = compiled[text].rules.values()
            # as the repository does: a rule whose text is unchanged stays the same object
            same = [
                old.get(r.id) if r.id in old and old[r.id].fingerprint == r.fingerprint else r
                for r in new
            ]
            kept.engine.swap(RuleSet([r for r in same if r is not None]))
            fresh.engine.swap(ruleset(text))
        for price in (150, 250, 350, 90, 250):
            for rig in (kept, fresh):
                rig.quote(price)
                rig.quote(price / 2, SOL_USDC_10)
    assert kept.titles == fresh.titles
    assert len(kept.titles) >= 2
    assert kept.evaluations("quote") == fresh.evaluations("quote")
