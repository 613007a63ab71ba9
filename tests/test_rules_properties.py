"""Property tests: whatever a rule file holds, loading gives located errors and never crashes."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from notifier.rules.compiled import CompileError, compile_rule
from notifier.rules.loader import RuleError, parse_text
from notifier.tokens import TokenTable

PATH = "fuzz.yaml"
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys and values a rule file plausibly holds, so generated data reaches deep into validation.
KEYS = [
    "rules", "id", "on", "pair", "in", "out", "amount", "exact_in", "when", "until", "for",
    "cooldown", "repeat", "resolved", "notify", "severity", "title", "body", "above", "below",
    "chain", "events", "maker", "intents", "to", "overdue", "feed", "down_for", "enabled",
    "description", "extra",
]  # fmt: skip
WORDS = [
    "quote", "order", "intent", "feed", "SOL", "USDC", "30s", "1h30m", "-5m", "soon",
    "price > 200", "price >", "{{ price }}", "{% for %}", "order_filled", "Finished", "Done",
    "warning", "loud", "0xabc", "x" * 40, "", " ", "\t", "é", "{{ 1 ** 10**9 }}",
    "0['k'] and price", "{{ price if 0['k'] }}",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(WORDS)
    | st.text(max_size=12)
)
DATA = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=30,
)
RULE_FILES = st.fixed_dictionaries(
    {"rules": st.lists(st.dictionaries(st.sampled_from(KEYS), DATA, max_size=8), max_size=3)}
)
VALID: list[dict[str, Any]] = [
    {"id": "q", "on": "quote", "pair": {"in": "SOL", "out": "USDC", "amount": 1}, "above": 1},
    {"id": "o", "on": "order", "chain": 1, "events": ["order_filled"]},
    {"id": "i", "on": "intent", "to": ["Finished"]},
    {"id": "f", "on": "feed", "feed": "quote", "down_for": "1m"},
]
PAIR_KEYS = ["in", "out", "amount", "exact_in", "extra"]


@st.composite
def near_valid_files(draw: st.DrawFn) -> dict[str, Any]:
    """Valid rules with a few keys (also inside ``pair``) replaced by arbitrary data."""
    rules = []
    for base in draw(st.lists(st.sampled_from(VALID), min_size=1, max_size=3)):
        rule = {**base, **draw(st.dictionaries(st.sampled_from(KEYS), DATA, max_size=2))}
        if isinstance(rule.get("pair"), dict):
            pair = draw(st.dictionaries(st.sampled_from(PAIR_KEYS), DATA, max_size=2))
            rule["pair"] = {**rule["pair"], **pair}
        rules.append(rule)
    return {"rules": rules}


YAML_TEXT = st.text(
    alphabet=st.sampled_from(list("rules:- id on{}[]&*!|>#'\"\n\t ,.?%@`0123456789abcdefxyz\\")),
    max_size=120,
)


def dump(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def load_all(text: str) -> list[RuleError]:
    """Parse and compile like the repository does; return every error."""
    rules, errors = parse_text(text, PATH)
    for parsed in rules:
        try:
            compile_rule(parsed, TokenTable())
        except CompileError as exc:
            errors += exc.errors
    return errors


def assert_located_within(errors: list[RuleError], text: str) -> None:
    lines = text.split("\n")
    for error in errors:
        assert isinstance(error, RuleError)
        assert error.location.path == PATH
        assert 1 <= error.location.line <= len(lines), error
        assert 1 <= error.location.col <= len(lines[error.location.line - 1]) + 1, error
        assert error.message


@FAST
@given(YAML_TEXT)
def test_arbitrary_text_never_crashes_and_errors_are_located_in_the_text(text: str) -> None:
    """Any text gives rules or located errors; no exception escapes parse or compile."""
    assert_located_within(load_all(text), text)


@FAST
@given(DATA)
def test_arbitrary_yaml_data_never_crashes_and_errors_are_located_in_the_text(data: Any) -> None:
    """Any YAML document (not only a mapping with rules) loads or gives located errors."""
    text = dump(data)
    assert_located_within(load_all(text), text)


@FAST
@given(RULE_FILES)
def test_rule_shaped_data_never_crashes_and_errors_are_located_in_the_text(data: Any) -> None:
    """Rule files with arbitrary keys and values load or give located errors."""
    text = dump(data)
    assert_located_within(load_all(text), text)


@FAST
@given(near_valid_files())
def test_near_valid_rules_never_crash_and_errors_are_located_in_the_text(data: Any) -> None:
    """Valid rules with one or two values replaced load or give located errors."""
    text = dump(data)
    assert_located_within(load_all(text), text)
