"""The fast rule-file path (libyaml) reads exactly what the precise loader (ruamel, YAML 1.2)
reads, or hands the file over: same specs, places, fingerprints; YAML 1.1 pitfalls included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.rules.fastyaml import fast_parse, ruamel_tag, tag_of
from notifier.rules.loader import parse_text

EXAMPLES = Path(__file__).resolve().parent.parent / "rules"

# Plain scalars YAML 1.1 and 1.2 read differently, and other shapes a rule file may hold.
SCALARS = [
    "on", "off", "yes", "no", "y", "n", "On", "YES", "true", "False", "~", "null", "",
    "017", "0o17", "08", "0x1F", "0b101", "1_000", "1:30", "190:20:30", "1e3", "1.5", "-0",
    "+12", ".inf", "-.inf", ".nan", "1.", ".5", "2001-12-14", "=", "<<", "12abc", "SOL",
    "'single'", '"double"', '"esc\\u00e9\\n"', "'on'", "[a, b]", "{a: 1}", "[on, yes]",
    "1000000000", "12345678901234567890123", "0.000001", "price > 200", "x #comment",
]  # fmt: skip
NUMBERS = ["017", "0o17", "08", "0x1F", "1_000", "1e3", "1.5", ".5", "+12", "1.", "200", "1:30"]
WORDS = ["on", "off", "yes", "no", "y", "On", "SOL", "'on'", '"yes"', "x #comment", "2001-12-14"]
VALUES = {
    "description": SCALARS,
    "above": NUMBERS,
    "cooldown": ["30s", "1m", "90", "1:30", "017", "'2m'"],
    "severity": ["info", "warning", "on", "'failure'"],
    "notify": [f"[{a}, {b}]" for a in WORDS[:4] for b in WORDS[4:]] + WORDS,
    "title": WORDS,
}


def _same(text: str) -> bool:
    """Fast and precise agree (or fast hands over); True when the fast path took the file."""
    fast = fast_parse(text, "r.yaml")
    precise, errors = parse_text(text, "r.yaml", precise=True)
    if fast is None:
        return False
    assert not errors, errors
    assert fast == precise
    return True


def test_every_example_file_reads_the_same_on_the_fast_path() -> None:
    """Each example in rules/ takes the fast path and yields the precise loader's rules."""
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert files
    for path in files:
        assert _same(path.read_text(encoding="utf-8")), path


def test_yaml_11_words_stay_yaml_12_strings() -> None:
    """``on``/``yes``/``no`` are strings, ``017`` is seventeen, ``1:30`` is text, as in ruamel."""
    text = (
        "rules:\n"
        "  - id: yes\n"
        "    on: quote\n"
        "    pair: {in: SOL, out: USDC, amount: 017}\n"
        "    description: 1:30\n"
        "    above: 0o17\n"
        "    notify: [on, no]\n"
    )
    assert _same(text)
    (rule,) = fast_parse(text, "r.yaml") or []
    assert rule.spec.id == "yes"
    assert rule.spec.description == "1:30"


def test_tags_anchors_and_duplicate_keys_go_to_the_precise_loader() -> None:
    """What the fast path does not read is handed over, and the precise loader explains it."""
    base = "rules:\n  - id: a\n    on: quote\n    pair: {in: SOL, out: USDC, amount: 1}\n"
    for extra in (
        "    above: !custom 5\n",
        "    above: !!float 5\n",
        "    above: !!str 5\n",
        "    notify: &x [a]\n    tags: *x\n",
        "    id: b\n",
    ):
        assert fast_parse(base + extra, "r.yaml") is None
    assert fast_parse("%YAML 1.1\n---\n" + base, "r.yaml") is None
    assert fast_parse(base + "    above: [\n", "r.yaml") is None


@st.composite
def rule_files(draw: st.DrawFn) -> str:
    lines = ["rules:"]
    for i in range(draw(st.integers(1, 2))):
        lines += [f"  - id: r{i}", "    on: quote"]
        amount = draw(st.sampled_from(["1", "0.5", "'1000000'", *NUMBERS]))
        lines.append(f"    pair: {{in: SOL, out: USDC, amount: {amount}}}")
        for key in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=3, unique=True)):
            value = draw(st.sampled_from(VALUES[key]))
            if key == "description" and draw(st.booleans()):
                lines += [f"    {key}: |", f"      {value or 'text'}", "      more"]
            else:
                lines.append(f"    {key}: {value}")
        if draw(st.booleans()):
            lines.append(f"    when: {draw(st.sampled_from(['price > 200', 'hops <= 3']))}")
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None)
@given(rule_files())
def test_generated_files_read_the_same_or_go_to_the_precise_loader(text: str) -> None:
    """Random files of YAML 1.1/1.2 pitfalls: the fast path equals ruamel whenever it answers."""
    _same(text)


NUMBER_LIKE = st.from_regex(r"\A[-+]?[0-9_]{0,4}\.?[0-9_]{0,4}([eE][-+]?[0-9]{0,3})?\Z")


@settings(max_examples=500, deadline=None)
@given(st.one_of(NUMBER_LIKE, st.sampled_from(SCALARS + NUMBERS)))
def test_numbers_read_without_ruamel_get_ruamels_tag(text: str) -> None:
    """The decimal numbers ``fastyaml`` tags itself (so ruamel need not be imported for them)
    get the tag ruamel's YAML 1.2 resolver gives."""
    assert tag_of(text) == ruamel_tag(text)


def test_plain_rule_files_need_no_ruamel() -> None:
    """Reading the example rule files' plain shapes imports no ruamel (it costs start-up memory),
    checked in a fresh interpreter."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from notifier.rules.loader import parse_text\n"
        "from notifier.bench.workload import bench_pairs, rules_yaml, scale_rule_files\n"
        "texts = list(scale_rule_files(bench_pairs(), 1000).values())\n"
        "texts.append(rules_yaml(bench_pairs()))\n"
        "assert all(parse_text(t, 'r.yaml')[0] for t in texts)\n"
        "print(sorted(m for m in sys.modules if m.startswith('ruamel')))\n"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
