"""Examples never rot: every shipped rule file and every rule example in the docs loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from notifier.rules import check_files
from notifier.rules.compiled import CompileError, compile_rule
from notifier.rules.loader import list_rule_files, parse_text
from notifier.tokens import TokenTable

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "rules.md"]
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.DOTALL | re.MULTILINE)


def rule_examples() -> list[tuple[str, str]]:
    """(``file:line``, text) of every ```yaml block holding ``rules:`` in the docs."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in YAML_BLOCK.finditer(text):
            if "rules:" in match.group(1):
                line = text.count("\n", 0, match.start()) + 2
                found.append((f"{doc.relative_to(ROOT)}:{line}", match.group(1)))
    return found


def test_the_example_rules_directory_is_not_empty() -> None:
    """The shipped ``rules/`` holds one file per kind of rule."""
    names = [p.name for p in list_rule_files(ROOT / "rules")]
    assert {"prices.yaml", "orders.yaml", "intents.yaml", "feeds.yaml"} <= set(names)


@pytest.mark.parametrize("path", list_rule_files(ROOT / "rules"), ids=lambda p: p.name)
def test_every_shipped_rule_file_loads_without_errors(path: Path) -> None:
    """Each file in ``rules/`` parses and compiles, and ids are unique across them."""
    assert check_files([path], TokenTable()) == []
    rules, _ = parse_text(path.read_text(encoding="utf-8"), str(path))
    assert rules


def test_the_shipped_rule_files_load_together() -> None:
    """All of ``rules/`` at once: no duplicate ids between files."""
    assert check_files(list_rule_files(ROOT / "rules"), TokenTable()) == []


def test_the_docs_have_rule_examples() -> None:
    """The README and docs/rules.md both show rule files (so the test below tests something)."""
    places = {place.split(":")[0] for place, _ in rule_examples()}
    assert places == {"README.md", "docs/rules.md"}


@pytest.mark.parametrize(
    ("place", "text"), [pytest.param(place, text, id=place) for place, text in rule_examples()]
)
def test_every_rule_example_in_the_docs_loads(place: str, text: str) -> None:
    """A ```yaml block with ``rules:`` in the README or docs/rules.md parses and compiles."""
    rules, errors = parse_text(text, place)
    for parsed in rules:
        try:
            compile_rule(parsed, TokenTable())
        except CompileError as exc:
            errors += exc.errors
    assert [str(e) for e in errors] == []
    assert rules
