"""A rule set joined from per-file parts (what a reload builds) equals a rule set built over all
the rules at once, down to the order of every index: the order the engine evaluates rules in."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.bench.workload import bench_pairs, scale_rule_files, window_rules_yaml
from notifier.rules import RuleSet, _compile_file
from notifier.rules.compiled import Rule
from notifier.rules.loader import parse_file
from notifier.tokens import TokenTable

EXAMPLES = Path(__file__).resolve().parent.parent / "rules"


def _rules(tmp: Path) -> list[Rule]:
    pairs = bench_pairs()[:6]
    texts = {"w.yaml": window_rules_yaml(pairs), **scale_rule_files(pairs, 40)}
    for name, text in texts.items():
        (tmp / name).write_text(text, encoding="utf-8")
    paths = [*sorted(EXAMPLES.glob("*.yaml")), *sorted(tmp.glob("*.yaml"))]
    found: dict[str, Rule] = {}
    for path in paths:
        for rule in _compile_file(parse_file(path), TokenTable())[0]:
            found.setdefault(rule.id, rule)
    return list(found.values())


def _shape(rules: RuleSet) -> list[Any]:
    """Every index with its order, rules by identity."""

    def ids(table: dict[Any, list[Rule]]) -> list[Any]:
        return [(key, [id(r) for r in found]) for key, found in table.items()]

    return [
        [(key, id(rule)) for key, rule in rules.rules.items()],
        ids(rules.by_pair),  # type: ignore[arg-type]
        ids(rules.orders),  # type: ignore[arg-type]
        ids(rules.intents),  # type: ignore[arg-type]
        ids(rules.feeds),  # type: ignore[arg-type]
        [(pair, id(pricing)) for pair, pricing in rules.pricing.items()],
        list(rules.pair_names.items()),
        sorted(rules.windows),
        [id(r) for r in rules.clocked],
        rules.interest(),
    ]


def test_joined_parts_index_like_one_rule_set(tmp_path: Path) -> None:
    rules = _rules(tmp_path)
    kinds = {type(r).__name__ for r in rules}
    assert {"QuoteRule", "OrderRule", "IntentRule", "FeedRule"} <= kinds
    assert any(r.history.clocked for r in rules)

    @settings(max_examples=60, deadline=None)
    @given(st.permutations(rules), st.lists(st.integers(0, len(rules)), max_size=8))
    def check(order: list[Rule], cuts: list[int]) -> None:
        bounds = [0, *sorted(cuts), len(order)]
        parts = [RuleSet(order[a:b]) for a, b in itertools.pairwise(bounds)]
        assert _shape(RuleSet.joined(parts)) == _shape(RuleSet(order))

    check()
