"""Reading rule files: YAML with node positions, every error as ``path:line:col: message``.

A plain, valid file takes a fast path (``lineyaml``, else ``fastyaml``); the rest is read by
``precise`` (ruamel), imported only then."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from notifier.rules.fastyaml import fast_parse
from notifier.rules.lineyaml import line_parse
from notifier.rules.parsed import (
    Location,
    ParsedFile,
    ParsedRule,
    RuleError,
    did_you_mean,
)

__all__ = [
    "MAX_FILE_BYTES",
    "RULE_SUFFIXES",
    "Location",
    "ParsedFile",
    "ParsedRule",
    "RuleError",
    "did_you_mean",
    "duplicate_ids",
    "id_place",
    "list_rule_files",
    "parse_file",
    "parse_text",
]

RULE_SUFFIXES = (".yaml", ".yml")

# Limits that keep one hostile or mistaken file from stalling or exhausting the loader (more in
# ``precise``).
MAX_FILE_BYTES = 1_000_000  # the default of the ``rules_max_bytes`` setting


def list_rule_files(directory: Path, *, missing_ok: bool = True) -> list[Path]:
    """Rule files directly in ``directory``, sorted; hidden ones (editor temps) skipped.
    A directory that does not exist holds none, or raises ``OSError`` unless ``missing_ok``."""
    if missing_ok and not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in RULE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def parse_text(
    text: str, path: str, *, precise: bool = False
) -> tuple[list[ParsedRule], list[RuleError]]:
    """Parse one file's text; returns the valid rules and every error found. A plain, valid
    file takes a fast path (``lineyaml``, else ``fastyaml``) unless ``precise``; the rest is
    read by ruamel."""
    if not precise:
        fast = line_parse(text, path)
        if fast is None:
            fast = fast_parse(text, path)
        if fast is not None:
            return fast, []
    from notifier.rules.precise import precise_parse  # noqa: PLC0415 - ruamel only when needed

    return precise_parse(text, path)


def parse_file(
    path: Path, previous: ParsedFile | None = None, max_bytes: int = MAX_FILE_BYTES
) -> ParsedFile:
    """Read and parse ``path``; returns ``previous`` itself when the bytes are unchanged.

    Whatever the file holds, the outcome is a ``ParsedFile``: its errors are located and no
    exception escapes, so one file never stops the others from loading.
    """
    start = Location(str(path), 1, 1)
    try:
        with path.open("rb") as stream:
            raw = stream.read(max_bytes + 1)
    except OSError as exc:
        return ParsedFile(path, "", (), (RuleError(start, str(exc)),))
    digest = hashlib.sha256(raw).hexdigest()
    if previous is not None and previous.digest == digest:
        return previous
    if len(raw) > max_bytes:
        message = f"larger than {max_bytes:,} bytes (the rules_max_bytes setting); not read"
        return ParsedFile(path, digest, (), (RuleError(start, message),))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        where = Location(str(path), line, col)
        return ParsedFile(path, digest, (), (RuleError(where, f"not UTF-8 text: {exc.reason}"),))
    try:
        rules, errors = parse_text(text, str(path))
    except Exception as exc:  # a loader defect must stay this file's error, not stop a reload
        message = f"cannot load this file: {type(exc).__name__}: {exc}"[:300]
        return ParsedFile(path, digest, (), (RuleError(start, message),))
    return ParsedFile(path, digest, tuple(rules), tuple(errors))


class _Placed(Protocol):
    @property
    def location(self) -> Location: ...
    @property
    def positions(self) -> Mapping[str, Location]: ...


def id_place(rule: _Placed) -> Location:
    """Where a rule's ``id:`` value is written: the place a duplicate id is reported."""
    return rule.positions.get("id", rule.location)


def duplicate_ids(files: Iterable[ParsedFile]) -> list[RuleError]:
    """Ids must be unique across the whole rules dir; in path order, each later place is an
    error naming the first (what a first start does; a reload also respects running rules)."""
    seen: dict[str, Location] = {}
    errors = []
    for parsed in files:
        for rule in parsed.rules:
            place = id_place(rule)
            first = seen.setdefault(rule.spec.id, place)
            if first is not place:
                message = f"duplicate rule id {rule.spec.id!r} (first at {first})"
                errors.append(RuleError(place, message))
    return errors
