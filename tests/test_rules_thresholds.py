"""The threshold index changes which rules a quote visits, never what happens: indexed and plain
engines, fed the same random rules and quotes on a virtual clock, notify the very same messages
(keys, titles, bodies, order) and end with the same pending and firing states."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.events import QuoteEvent
from notifier.notification import Notification
from notifier.rules.compiled import QuoteRule
from notifier.rules.engine import Engine
from notifier.rules.ruleset import RuleSet
from notifier.rules.thresholds import PairIndex, simple_threshold
from tests.support import compile_text

PAIRS = [
    "{in: SOL, out: USDC, amount: 1}",
    "{in: SOL, out: USDC, amount: 1, exact_in: false}",  # amountOut 0: the price is None
]
OPS = [">", ">=", "<", "<="]
LEVELS = st.integers(195, 205).map(str) | st.sampled_from(["199.5", "2.0e2", "-1", "1e3"])


class Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, str]] = []

    def enqueue(self, notification: Notification) -> bool:
        n = notification
        self.sent.append((n.key, n.rule_id, n.title, n.body))
        return True


@dataclass
class Clock:
    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@st.composite
def rule_files(draw: st.DrawFn) -> str:
    lines = ["rules:"]
    for i in range(draw(st.integers(1, 12))):
        lines += [f"  - id: r{i}", "    on: quote", f"    pair: {draw(st.sampled_from(PAIRS))}"]
        shape = draw(st.sampled_from(["above", "below", "when", "and", "general"]))
        level = draw(LEVELS)
        if shape in ("above", "below"):
            lines.append(f"    {shape}: {level}")
        elif shape == "when":
            lines.append(f"    when: price {draw(st.sampled_from(OPS))} {level}")
        elif shape == "and":
            lines.append(f"    when: price {draw(st.sampled_from(OPS))} {level} and hops <= 2")
        else:
            lines.append(f"    when: hops <= 2 and price > {level} or hops == 3")
        if draw(st.booleans()):
            lines.append(f"    until: price {draw(st.sampled_from(OPS))} {draw(LEVELS)}")
        for key, values in (("for", ["2s", "5s"]), ("cooldown", ["3s", "20s"])):
            if draw(st.booleans()):
                lines.append(f"    {key}: {draw(st.sampled_from(values))}")
        if draw(st.booleans()):
            lines.append("    resolved: false")
    return "\n".join(lines) + "\n"


# (pair, amountOut in millionths of a USDC, hops, seconds after the previous quote)
QUOTES = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.integers(190, 210).map(lambda p: p * 1_000_000) | st.sampled_from([0, 199_500_000]),
        st.integers(1, 3),
        st.sampled_from([0.0, 0.5, 1.0, 3.0, 7.0]),
    ),
    max_size=40,
)


def _run(rules: list[Any], quotes: list[tuple[int, int, int, float]], indexed: bool) -> Any:
    sink, clock = Sink(), Clock()
    ruleset = RuleSet(rules)
    engine = Engine(ruleset, sink, clock=clock, index_thresholds=indexed)
    keys = sorted({r.pair for r in rules if isinstance(r, QuoteRule)})
    for slot, (which, amount_out, hops, later) in enumerate(quotes):
        clock.now += later
        due = engine.next_due()
        if due is not None and due <= clock.now:
            engine.tick()
        pair = keys[which % len(keys)]
        engine.handle(QuoteEvent(pair, amount_out, 0, hops, slot, clock.now))
    states = sorted((a["rule"], a["key"], a["state"]) for a in engine.alerts())
    return sink.sent, states


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_files(), QUOTES)
def test_indexed_and_plain_evaluation_notify_the_same(text: str, quotes: Any) -> None:
    """Same firings, resolves, pending ``for:``, cooldowns and notification keys, in order."""
    rules, errors = compile_text(text, "t.yaml")
    assert not errors, errors
    assert _run(rules, quotes, indexed=True) == _run(rules, quotes, indexed=False)


def test_simple_conditions_are_thresholds_and_others_are_not() -> None:
    """``price OP constant`` (``and`` comparisons after it) is indexed; nothing else."""
    assert simple_threshold("price > 200") == (">", 200)
    assert simple_threshold(" price<=1.5e3 ") == ("<=", 1500.0)
    assert simple_threshold("price > 2 and hops <= 3 and slot != 1") == (">", 2)
    for other in ("price > 2 or hops < 2", "price > 2 and hops < 2 or 1", "200 < price",
                  "price > x", "price == 1", "price > 2 and x if y else z"):  # fmt: skip
        assert simple_threshold(other) is None


def test_a_quote_visits_only_thresholds_it_crosses_and_general_rules() -> None:
    """At price 200: ``> 150`` and ``< 300`` hold, ``> 250`` and ``< 100`` are skipped."""
    index = PairIndex(
        ["a", "b", "c", "d", "e"], [(">", 150), (">", 250), ("<", 300), ("<", 100), None]
    )
    assert list(index.visit(200.0, None)) == [0, 2, 4]
    assert list(index.visit(200.0, {"b"})) == [0, 1, 2, 4]
    assert list(index.visit(None, None)) == [0, 1, 2, 3, 4]
    assert list(index.visit(float("nan"), None)) == [4]
