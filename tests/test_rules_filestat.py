"""A rule file is skipped by its status only when it surely holds the bytes read last time."""

from __future__ import annotations

import os
import time
from pathlib import Path

from notifier.rules import RuleRepository
from notifier.rules.filestat import RACY_NS, Seen

RULE = "rules:\n  - id: {id}\n    on: feed\n    feed: quote\n"


def test_a_file_changed_just_before_its_read_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("one\n")
    seen = Seen.before_reading(path)
    assert not seen.unchanged(path)  # changed within the margin: its tick may hold more writes


def test_a_file_left_alone_since_long_before_its_read_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("one\n")
    seen = Seen.before_reading(path)
    later = Seen(seen.status, seen.read_at + 10 * RACY_NS)  # as if read 20 s after the write
    assert later.unchanged(path)
    path.write_text("two\n")  # same size
    assert not later.unchanged(path)
    assert later.status is not None
    os.utime(path, ns=(later.status[3], later.status[3]))
    assert not later.unchanged(path)  # mtime set back by hand: ctime still moved
    path.unlink()
    assert not later.unchanged(path)


def test_same_size_rewrites_between_reloads_are_all_seen(tmp_path: Path) -> None:
    """Saves of equal length right after each reload: every one is loaded."""
    repository = RuleRepository(tmp_path)
    path = tmp_path / "a.yaml"
    for n in range(5):
        path.write_text(RULE.format(id=f"rule-{n}"))
        result = repository.reload()
        assert list(result.ruleset.rules) == [f"rule-{n}"]
    old = time.time_ns() - 100 * RACY_NS
    os.utime(path, ns=(old, old))
    assert list(repository.reload().ruleset.rules) == ["rule-4"]
