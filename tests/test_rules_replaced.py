"""A reload that swaps one file's rules into the running rule set gives what indexing every
rule again gives: the same rules, in the same order, every index with its rules in the same
order (the order the engine evaluates a pair's rules in), over random edits of random rule
files. (The order of the pairs among the keys of ``by_pair`` and ``pricing``, which nothing
iterates, may differ.)"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from notifier.bench.workload import bench_pairs
from notifier.rules import RuleRepository, RuleSet
from notifier.rules.compiled import Rule

FILES = ("a.yaml", "b.yaml", "c.yaml", "d.yaml")
PAIRS = [f"{{in: {p[0]}, out: {p[1]}, amount: '{p[2]}'}}" for p in bench_pairs()[:4]]


def rule_file(rng: random.Random, n: int) -> str:
    """Quote rules over a few pairs with ids of this file's own pool (now and then another
    file's), now and then a rule reading history or a feed rule."""
    lines = ["rules:"]
    pool = rng.sample(range(12), rng.randint(0, 6))
    for k in pool:
        owner = n if rng.random() > 0.05 else rng.randrange(len(FILES))
        lines.append(f"  - id: f{owner}-{k}")
        shape = rng.random()
        if shape < 0.05:
            lines.append("    on: feed\n    feed: quote")
            continue
        lines.append(f"    on: quote\n    pair: {rng.choice(PAIRS)}")
        if shape < 0.1:
            lines.append("    when: pct_change('1h') < -5")
        else:
            lines.append(f"    {rng.choice(('above', 'below'))}: {rng.randint(1, 9)}.5")
    return "\n".join(lines) + "\n"


def shape(rules: RuleSet) -> Any:
    def ids(table: dict[Any, list[Any]]) -> list[Any]:
        return [(key, [id(r) for r in found]) for key, found in table.items()]

    def ids_by_key(table: dict[Any, list[Any]]) -> list[Any]:  # keys in any order
        return sorted((key, [id(r) for r in found]) for key, found in table.items())

    return [
        sorted((key, id(rule)) for key, rule in rules.rules.items()),
        [id(r) for r in rules.order],
        ids_by_key(rules.by_pair),
        ids(rules.orders),
        ids(rules.intents),
        ids(rules.feeds),
        sorted((pair, id(pricing)) for pair, pricing in rules.pricing.items()),
        list(rules.pair_names.items()),
        sorted(rules.windows),
        [id(r) for r in rules.clocked],
    ]


def seen(rules: list[Rule]) -> list[Any]:
    return [(r.id, r.fingerprint, r.location) for r in rules]


@pytest.mark.parametrize("seed", [*range(8), 69])  # 69: an id moving between two changed files
def test_swapping_a_files_rules_in_is_indexing_all_again(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    for n, name in enumerate(FILES):
        (tmp_path / name).write_text(rule_file(rng, n), encoding="utf-8")
    quick, full = RuleRepository(tmp_path), RuleRepository(tmp_path)
    swapped = 0
    calls = RuleSet.replaced

    def counted(self: RuleSet, *args: Any) -> RuleSet | None:
        nonlocal swapped
        found = calls(self, *args)
        swapped += found is not None
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RuleSet, "replaced", counted)
        for _ in range(40):
            for n in rng.sample(range(len(FILES)), rng.choice((1, 1, 1, 2))):
                (tmp_path / FILES[n]).write_text(rule_file(rng, n), encoding="utf-8")
            got = quick.reload().ruleset
            assert shape(got) == shape(RuleSet(got.order))
            assert seen(got.order) == seen(full.reload().ruleset.order)
    assert swapped > 5
