"""A reload that settles only the changed files' ids gives what settling every file gives."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from notifier.rules import ReloadResult, RuleRepository

FILES = ("a.yaml", "b.yaml", "c.yaml", "d.yaml")


def rule_file(rng: random.Random) -> str:
    """A few feed rules with ids from a small pool (so files collide), now and then a broken
    rule or broken YAML."""
    lines = ["rules:"]
    for _ in range(rng.randint(0, 4)):
        rule_id = f"r{rng.randint(0, 14)}"
        feed = rng.choice(("quote", "order", "intent"))
        lines.append(f"  - id: {rule_id}\n    on: feed\n    feed: {feed}")
        if rng.random() < 0.05:
            lines.append("    bogus: 1")
    if rng.random() < 0.05:
        lines.append("  - [unclosed")
    return "\n".join(lines) + "\n"


def seen(result: ReloadResult) -> Any:
    files = [(f.path, f.digest, f.rules, f.errors, f.loaded) for f in result.files]
    rules = [(r.id, r.fingerprint, r.location) for r in result.ruleset.rules.values()]
    return files, rules, result.new_errors, result.fixed, result.changed


@pytest.mark.parametrize("seed", range(12))
def test_settling_the_changed_files_only_is_the_same_as_settling_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    distinct = [f"r{n}" for n in range(15)]
    clean = {  # each file its own ids
        name: "rules:\n"
        + "".join(f"  - id: {i}\n    on: feed\n    feed: quote\n" for i in distinct[n::4])
        for n, name in enumerate(FILES)
    }
    for name, text in clean.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    quick, full = RuleRepository(tmp_path), RuleRepository(tmp_path)
    monkeypatch.setattr(full, "_alone", lambda *_: False)
    alone = quick._alone
    shortcuts = []

    def counted(*args: Any) -> bool:
        shortcuts.append(alone(*args))
        return shortcuts[-1]

    monkeypatch.setattr(quick, "_alone", counted)
    assert seen(quick.reload()) == seen(full.reload())
    for _ in range(40):
        for name in rng.sample(FILES, rng.choice((1, 1, 1, 2))):
            path = tmp_path / name
            roll = rng.random()
            if roll < 0.15:  # a fix: back to its own ids
                path.write_text(clean[name], encoding="utf-8")
            elif roll < 0.75:  # mostly: a change that keeps the ids
                text = path.read_text(encoding="utf-8")
                swap = rng.choice((("quote", "order"), ("order", "intent"), ("intent", "quote")))
                path.write_text(text.replace(*swap, 1), encoding="utf-8")
            else:
                path.write_text(rule_file(rng), encoding="utf-8")
        assert seen(quick.reload()) == seen(full.reload())
    assert any(shortcuts)
