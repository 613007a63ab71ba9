"""Window functions at load (literal windows and pairs, located errors) and ``why``."""

from __future__ import annotations

import pytest

from notifier.rules.compiled import QuoteRule
from notifier.rules.sandbox import Expression
from notifier.rules.why import Explainer
from tests.support import SOL, SOL_USDC, USDC, compile_text

QUOTE = """\
rules:
  - id: w
    on: quote
    pair: {{in: SOL, out: USDC, amount: 1}}
    when: {when}
"""
ORDER = """\
rules:
  - id: o
    on: order
    when: {when}
"""


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("pct_change('30d') < -5", "window '30d' is longer than [history] max_window (7d)"),
        ("pct_change(5) < -5", "pct_change(): arguments must be string literals"),
        ("min_price('soon') < 5", "min_price(): invalid duration 'soon'"),
        ("avg_price('0s') > 1", "avg_price(): window '0s' must be longer than zero"),
        ("price_at() > 1", "price_at(): takes a duration and optionally a pair, got 0 argument(s)"),
        ("price_of('SOLL/USDC') > 1", "price_of(): pair 'SOLL/USDC': 'SOLL' is not a Fogo token"),
        ("price_of('WETH/USDC') > 1", "price_of(): pair 'WETH/USDC': 'WETH' is not a Fogo token"),
        ("price_of('SOL-USDC') > 1", "pair 'SOL-USDC': write it IN/OUT or IN/OUT@AMOUNT"),
        ("pct_change('1h', 'SOL/USDC', 3) > 1", "got 3 argument(s)"),
    ],
)  # fmt: skip
def test_window_arguments_are_literals_checked_at_load(when: str, message: str) -> None:
    """A bad window or pair is a load error located at the call."""
    rules, errors = compile_text(QUOTE.format(when=when), "w.yaml")
    assert rules == []
    assert len(errors) == 1
    assert str(errors[0]).startswith("w.yaml:5:11: when: ")
    assert message in str(errors[0])


def test_a_rule_without_a_pair_of_its_own_must_name_one() -> None:
    _, errors = compile_text(ORDER.format(when="pct_change('1h') < -5"), "o.yaml")
    assert [str(e) for e in errors] == [
        "o.yaml:4:11: when: pct_change(): this rule has no pair of its own: name one, as in "
        "pct_change('1h', 'SOL/USDC')"
    ]
    rules, errors = compile_text(ORDER.format(when="price_of('SOL/USDC@2') < 180"), "o.yaml")
    assert errors == []
    [rule] = rules
    assert rule.history.reads == {(SOL, USDC, "2000000000", True)}
    assert rule.history.clocked is False  # price_of reads no window


def test_the_pairs_and_windows_a_rule_reads_are_known_at_load() -> None:
    when = "pct_change('1h') < -5 and min_price('15m', 'USDC/SOL@100') > 0"
    rules, errors = compile_text(QUOTE.format(when=f'"{when}"'), "w.yaml")
    assert errors == []
    [rule] = rules
    assert isinstance(rule, QuoteRule)
    assert rule.pair == SOL_USDC
    assert rule.history.windows == {(None, 3600.0), ("USDC/SOL@100", 900.0)}
    assert rule.history.reads == {(USDC, SOL, "100000000", True)}
    assert rule.history.clocked


@pytest.mark.parametrize(
    "source",
    ["pct_change('1h') < -5", "price > avg_price('1h') * 1.01", "price_of('SOL/USDC') < 180",
     "max_price('15m') - min_price('15m') > 3", "price_at('1h') is none"],
)  # fmt: skip
def test_window_conditions_stay_native(source: str) -> None:
    assert Expression(source).native


@pytest.mark.parametrize(
    ("source", "variables", "holding", "said"),
    [
        ("price > 200", {"price": 201.35}, True, "price 201.35 > 200"),
        ("price > 200 and hops == 1", {"price": 201.35, "hops": 1}, True,
         "price 201.35 > 200, hops 1 == 1"),
        ("price < 190 or price > 200", {"price": 201.0}, True, "price 201 > 200"),
        ("price < 190 or price > 200", {"price": 195.0}, False,
         "price 195 < 190, price 195 > 200"),
        ("(price - previous_price) / previous_price < -0.05",
         {"price": 90.0, "previous_price": 100.0}, True,
         "(price - previous_price) / previous_price = \u22120.1 < \u22120.05"),
        ("status == 'Deposited'", {"status": "Deposited"}, True,
         "status 'Deposited' == 'Deposited'"),
        ("not terminal", {"terminal": False}, True, "not terminal"),
    ],
)  # fmt: skip
def test_why_shows_each_comparison_with_its_values(
    source: str, variables: dict[str, object], holding: bool, said: str
) -> None:
    assert Explainer(source).explain(variables, holding=holding) == said


def test_two_rules_firing_on_one_quote_keep_their_own_why() -> None:
    """The rules of a pair share one quote's variables; each alert keeps the why it fired with,
    also after later quotes."""
    from notifier.events import QuoteEvent
    from notifier.notification import Notification
    from notifier.rules.engine import Engine
    from notifier.rules.ruleset import RuleSet

    text = QUOTE.format(when="price > 150") + (
        "  - id: v\n    on: quote\n    pair: {in: SOL, out: USDC, amount: 1}\n"
        "    when: price < 300\n"
    )
    rules, errors = compile_text(text, "w.yaml")
    assert errors == []
    sent: list[Notification] = []

    class Sink:
        def enqueue(self, notification: Notification) -> bool:
            sent.append(notification)
            return True

    engine = Engine(RuleSet(rules), Sink(), clock=lambda: 1_700_000_000.0)
    for usdc in (200_000_000, 201_000_000):
        engine.handle(QuoteEvent(SOL_USDC, usdc, 0, 1, 1, 1_700_000_000.0))
    assert [n.why for n in sent] == ["price 200 > 150", "price 200 < 300"]
    assert {a["rule"]: a["why"] for a in engine.alerts()} == {
        "w": "price 200 > 150",
        "v": "price 200 < 300",
    }
