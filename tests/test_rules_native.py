"""Native expressions: common conditions skip Jinja's render machinery, with the same results."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import Undefined

from notifier.rules.compiled import COMMON_VARIABLES, VARIABLES
from notifier.rules.sandbox import Expression, SandboxError

NAMES = ["a", "b", "m", "s", "abs"]  # ``abs`` is a sandbox global unless a variable shadows it
KEYS = ["'k'", "'x'", "0", "'keys'", "'pop'", "'__class__'"]
PARITY = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def evaluate(source: str, variables: dict[str, Any], *, native: bool) -> tuple[str, Any]:
    """The value, or the error (Jinja folds constant parts, so some fail when compiled)."""
    try:
        expression = Expression(source, native=native)
    except SandboxError as exc:
        return "load error", str(exc)
    try:
        return "value", expression(variables)
    except SandboxError as exc:
        return "error", str(exc)


def same(left: Any, right: Any) -> bool:
    """Equal and of the same type, NaN equal to NaN, undefined values by their message."""
    if type(left) is not type(right):
        return False
    if isinstance(left, Undefined):
        return bool(left._undefined_message == right._undefined_message)
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    return repr(left) == repr(right)


def assert_parity(source: str, variables: dict[str, Any]) -> None:
    got_kind, got = evaluate(source, variables, native=True)
    want_kind, want = evaluate(source, variables, native=False)
    assert got_kind == want_kind, (source, variables, got, want)
    assert same(got, want), (source, variables, got, want)


# -- the grammar ------------------------------------------------------------------------------

CONSTANTS = (
    st.integers(min_value=0, max_value=10**20).map(str)
    | st.floats(min_value=0, allow_infinity=False, allow_nan=False).map(repr)
    | st.sampled_from(["'ab'", "''", "'k'", "'%d'", "true", "false", "none", "1e400"])
    | st.sampled_from(["(1, 'ab')", "['k', 0]", "('x',)"])
)
LEAVES = st.sampled_from(NAMES) | CONSTANTS


def compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.sampled_from(["+", "-", "*", "/", "//", "%", "and", "or"])
    compare = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"])
    return st.one_of(
        st.tuples(st.sampled_from(["not ", "-", "+"]), inner).map(lambda t: f"({t[0]}{t[1]})"),
        st.tuples(inner, binary, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, compare, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, compare, inner, compare, inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]} {t[3]} {t[4]})"
        ),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]} if {t[1]})"),
        st.tuples(inner, st.sampled_from(KEYS)).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(inner, st.sampled_from(["is none", "is not none"])).map(
            lambda t: f"({t[0]} {t[1]})"
        ),
    )


EXPRESSIONS = st.recursive(LEAVES, compound, max_leaves=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**6), max_value=10**6)
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(alphabet="abk%d", max_size=4)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["k", "x", 0]), inner, max_size=2)
    ),
    max_leaves=4,
)
VARIABLE_SETS = st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=len(NAMES))


@PARITY
@given(EXPRESSIONS, VARIABLE_SETS)
def test_native_and_jinja_agree_on_random_expressions(source: str, variables: Any) -> None:
    """Random comparisons, arithmetic, boolean logic, conditionals, subscripts and ``none``
    tests over random values (missing ones too) give the same value, or the same error."""
    assert_parity(source, variables)


# -- which expressions are native -------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "price > 200 and hops == 1",
        "price_impact_bps > 100",
        "price < 198 or price > 250",
        "status == 'Deposited' and age > 600",
        "(price - previous_price) / previous_price > 0.01",
        "previous_price is not none and price // 1 % 2 == 0",
        "status in ('Finished', 'Failed') or status not in ['Deposited']",
        "swap_metadata['k'] if swap_metadata is not none else -1",
        "1 < price <= 300",
        "not terminal",
    ],
)
def test_common_conditions_are_native(source: str) -> None:
    """Conditions made of comparisons, logic, arithmetic and constant subscripts skip Jinja."""
    assert Expression(source).native


@pytest.mark.parametrize(
    "source",
    [
        "price | round(2) > 1",
        "abs(price) > 1",
        "swap_metadata.k == 1",
        "price ** 2 > 1",
        "'x' * hops",
        "'%d' % hops",
        "pair ~ '!'",
        "price is defined",
        "price is none(1)",
        "swap_metadata[status] == 1",
        "pair[:3] == 'SOL'",
        "self",
        "price < 1e400",
        "swap_metadata[1e400]",
        "{'a': price}['a'] == 1",
    ],
)
def test_everything_else_stays_on_the_jinja_path(source: str) -> None:
    """Filters, calls, attributes, powers, string repetition and formatting, concatenation,
    other tests, computed subscripts, slices, ``self`` and non-finite literals need Jinja."""
    assert not Expression(source).native


@pytest.mark.parametrize(
    ("source", "variables"),
    [
        ("price > 1", {}),
        ("price > 1", {"price": None}),
        ("price == 1 and hops", {"price": 1, "hops": 0}),
        ("price or hops", {"price": 0, "hops": "x"}),
        ("hops // 0", {"hops": 3}),
        ("hops % 0", {"hops": 3}),
        ("price / 0", {"price": 1.5}),
        ("'b' in status", {"status": "abc"}),
        ("1 in status", {"status": "abc"}),
        ("1 if price", {"price": 0}),
        ("(1 if price) is none", {"price": 0}),
        ("(1 if price) > 0", {"price": 0}),
        ("missing is none", {}),
        ("m['k'] > 1", {"m": {}}),
        ("m['__class__']", {"m": {}}),
        ("m['pop']", {"m": {}}),
        ("m['keys'] is none", {"m": {}}),
        ("s * 100000 == ''", {"s": "ab"}),
        ("s % 1", {"s": "%999999999d"}),
        ("abs > 1", {}),
        ("abs == 1", {"abs": 1}),
        ("1 < price < 0 < 1", {"price": 5}),
    ],
)
def test_jinja_semantics_are_kept(source: str, variables: dict[str, Any]) -> None:
    """Undefined names, None comparisons, operands returned by and/or, division and modulo by
    zero, ``in`` on strings, the implicit else, subscripts through the sandbox, bounded
    repetition and formats, globals and chained comparisons behave as on the Jinja path."""
    assert Expression(source).native
    assert_parity(source, variables)


def test_a_subscript_is_still_sandboxed() -> None:
    """A constant key naming an internal or a mutating method is refused, as in Jinja."""
    with pytest.raises(SandboxError, match=r"refused: .*unsafe"):
        Expression("m['__class__']")({"m": {}})
    with pytest.raises(SandboxError, match=r"refused: .*unsafe"):
        Expression("m['pop']")({"m": {}})


def test_repetition_through_a_variable_is_still_bounded() -> None:
    """``*`` on a string held in a variable goes through the sandbox's size check."""
    with pytest.raises(SandboxError, match=r"refused: .*repetition larger than 10000"):
        Expression("s * 100000")({"s": "ab"})


def test_rule_variables_resolve_before_globals() -> None:
    """A rule's variables shadow the sandbox globals; unknown names are still refused at load."""
    known = VARIABLES["quote"] | COMMON_VARIABLES
    assert Expression("abs == 2", known=known)({"abs": 2}) is True
    with pytest.raises(SandboxError, match="unknown variable"):
        Expression("nope > 1", known=known)
