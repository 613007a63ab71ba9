"""The line path (one key a line, regexes) reads exactly what libyaml and ruamel read, or hands
the file over: same specs, places and fingerprints, over generated files full of YAML traps."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.bench.workload import (
    bench_pairs,
    rules_yaml,
    scale_rule_files,
    window_rules_yaml,
)
from notifier.rules.fastyaml import fast_parse
from notifier.rules.lineyaml import line_parse
from notifier.rules.loader import parse_text
from tests.test_rules_fastyaml import SCALARS

EXTRA = [
    "a'b", "it''s", "'it''s'", "'a: b'", "'a # b'", '"a: b"', '"x\\ty"', "-5", "-.5", "- 5",
    "-x", "a:b", "a#b", "x, y", "~x", "$5", "(x)", "=x", "<x", "a  b", "<<x", "1e", "0x", "1__0",
    "-", "?x", "&a x", "*a", "!x", "%x", "@x", "`x`", "|", ">", "[", "{", "]", "}",
]  # fmt: skip
VALUES = [s for s in SCALARS if s] + EXTRA
WORDS = ["SOL", "desk", "on", "yes", "no", "'on'", '"x"', "it's", "'a: b'", "price > 5", "a  b"]
GOOD = {
    "description": WORDS,
    "title": WORDS,
    "body": WORDS,
    "cooldown": ["30s", "1m", "90", "017", "'2m'", "1_000"],
    "severity": ["info", "warning", "'failure'"],
    "notify": WORDS,
    "when": ["price > 200", "hops <= 3", "price < 1.0e-3 and hops == 1"],
}
KEYS = sorted(GOOD)
SPACE = ["", " ", "  "]


def _same(text: str) -> bool:
    """The line path equals libyaml and ruamel whenever it answers; True when it did."""
    line = line_parse(text, "r.yaml")
    if line is None:
        return False
    precise, errors = parse_text(text, "r.yaml", precise=True)
    assert not errors, errors
    assert line == precise
    assert fast_parse(text, "r.yaml") in (None, line)
    return True


def test_bench_files_take_the_line_path() -> None:
    pairs = bench_pairs()
    texts = [rules_yaml(pairs), window_rules_yaml(pairs), *scale_rule_files(pairs, 1_500).values()]
    for text in texts:
        assert _same(text), text[:200]


def test_odd_shapes_go_to_a_fuller_reader() -> None:
    base = "rules:\n  - id: a\n    on: quote\n    pair: {in: SOL, out: USDC, amount: 1}\n"
    for extra in (
        "    above: 5 # a comment\n",
        "    description: |\n      text\n",
        "    description: one\n      two\n",
        "   above: 5\n",
        "    above: !!float 5\n",
        "    id: b\n",
        "    above: 5\r\n",
        "    description: caf\u00e9\n",
        "    notify: [a, b,]\n",
        "    notify: [a, [b]]\n",
        "    above:\n      5\n",
    ):
        assert line_parse(base + extra, "r.yaml") is None, extra
    assert line_parse("other: 1\n" + base, "r.yaml") is None
    assert line_parse("rules:\n", "r.yaml") is None
    assert line_parse(base.replace("on: quote", "on: quotes"), "r.yaml") is None  # invalid


def _value(draw: st.DrawFn, good: list[str]) -> str:
    """Mostly a value the rule accepts, sometimes any trap."""
    return draw(st.sampled_from(VALUES if draw(st.integers(0, 7)) == 0 else good))


@st.composite
def _flow(draw: st.DrawFn, *, mapping: bool) -> str:
    if mapping:
        keys = ["in", "out", "amount", "exact_in"]
        keys = keys[: draw(st.integers(2, 4))] if draw(st.integers(0, 7)) else [*keys, "in"]
        good = {"in": ["SOL", "USDC"], "out": ["USDC", "SOL"], "exact_in": ["true", "false"]}
        parts = [
            f"{key}:{draw(st.sampled_from([' ', '  ']))}"
            + _value(draw, good.get(key, ["1", "'1000000'", "0.5", "017"]))
            for key in keys
        ]
    else:
        parts = [_value(draw, WORDS) for _ in range(draw(st.integers(1, 3)))]
    sep = draw(st.sampled_from([", ", ",", " , "]))
    pad = draw(st.sampled_from(SPACE))
    inner = pad + sep.join(parts) + pad
    return "{" + inner + "}" if mapping else "[" + inner + "]"


@st.composite
def rule_files(draw: st.DrawFn) -> str:
    dash = draw(st.sampled_from([0, 2, 4]))
    gap = draw(st.sampled_from([1, 1, 3]))
    indent = " " * (dash + 1 + gap)
    lines = ["rules:" + draw(st.sampled_from(SPACE))]
    for i in range(draw(st.integers(1, 3))):
        pair = draw(_flow(mapping=True)) if draw(st.booleans()) else "{in: SOL, out: USDC}"
        entries = [("id", f"r{i}"), ("on", "quote"), ("pair", pair)]
        entries.append(("above", _value(draw, ["200", "1.0e12", "017", ".5", "+12", "1_000"])))
        for key in draw(st.lists(st.sampled_from(KEYS), max_size=3)):
            if key == "notify" and draw(st.booleans()):
                entries.append((key, draw(_flow(mapping=False))))
            else:
                entries.append((key, _value(draw, GOOD[key])))
        order = draw(st.permutations(range(len(entries))))
        for n, j in enumerate(order):
            key, value = entries[j]
            between = draw(st.sampled_from([" ", " ", "  "]))
            trail = draw(st.sampled_from(["", "", "", " ", "  ", " # note"]))
            head = " " * dash + "-" + " " * gap if n == 0 else indent
            lines.append(f"{head}{key}:{between}{value}{trail}")
            if draw(st.integers(0, 19)) == 0:
                lines.append(draw(st.sampled_from(["", "# c", indent + "# c", "  "])))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


@settings(max_examples=500, deadline=None)
@given(rule_files())
def test_generated_files_read_the_same_or_go_to_a_fuller_reader(text: str) -> None:
    _same(text)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_plain_generated_files_take_the_line_path(data: st.DataObject) -> None:
    """Files of plain values only: the line path takes every one."""
    lines = ["rules:"]
    for i in range(data.draw(st.integers(1, 3))):
        level = data.draw(st.sampled_from(["200", "1.0e12", "0.5", "017", "1_000"]))
        lines += [f"  - id: r{i}", "    on: quote", "    pair: {in: SOL, out: USDC, amount: 1}"]
        lines.append(f"    {data.draw(st.sampled_from(['above', 'below']))}: {level}")
        if data.draw(st.booleans()):
            lines.append(f"    notify: [{data.draw(st.sampled_from(['on', 'desk', 'yes']))}]")
    assert _same("\n".join(lines) + "\n")


def test_compiled_rules_keep_every_place_compactly() -> None:
    """A compiled rule answers each place its parsed rule had, as a ``Places`` mapping."""
    from notifier.rules.compiled import compile_rule
    from notifier.rules.parsed import Places
    from notifier.tokens import TokenTable

    text = (
        "rules:\n  - id: a\n    on: quote\n    pair: {in: SOL, out: USDC, amount: 1}\n"
        "    when: price > 5\n    notify: [x, y]\n"
    )
    (parsed,) = line_parse(text, "r.yaml") or []
    rule = compile_rule(parsed, TokenTable())
    assert isinstance(rule.positions, Places)
    assert rule.positions == parsed.positions
    assert dict(rule.positions) == parsed.positions
    assert rule.positions["notify.1"] == parsed.positions["notify.1"]
    assert rule.positions.get("title") is None


def test_places_beyond_16_bits_keep_their_numbers() -> None:
    from notifier.rules.parsed import Location, Places

    found = {"id": Location("r.yaml", 70_000, 5), "on": Location("r.yaml", 70_001, 99_999)}
    places = Places.of(found, "r.yaml")
    assert dict(places) == found
    small = {"id": Location("r.yaml", 3, 5)}
    assert dict(Places.of(small, "r.yaml")) == small
