"""Rules: rule files → compiled rules → a ``RuleSet`` the engine evaluates.

``RuleRepository.reload`` is the one way rules change: it re-reads the directory, reuses files
whose bytes did not change, keeps the last good version of a file that fails, and returns a
complete new ``RuleSet`` to swap in whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from notifier.rules.compiled import CompileError, Rule, compile_rule
from notifier.rules.engine import Engine, RuleSet, StateStore
from notifier.rules.loader import (
    Location,
    ParsedFile,
    RuleError,
    duplicate_ids,
    list_rule_files,
    parse_file,
)
from notifier.tokens import TokenTable

__all__ = [
    "Engine",
    "FileReport",
    "Location",
    "ReloadResult",
    "RuleError",
    "RuleRepository",
    "RuleSet",
    "StateStore",
    "check_files",
]


@dataclass(frozen=True, slots=True)
class FileReport:
    path: str
    digest: str
    rules: tuple[str, ...]  # ids active from this file (the last good version if it failed)
    errors: tuple[RuleError, ...] = ()

    @property
    def failed(self) -> bool:
        return bool(self.errors)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ruleset: RuleSet
    files: tuple[FileReport, ...]
    changed: bool  # False when every file's bytes were unchanged
    new_errors: tuple[RuleError, ...] = field(default=())  # errors not reported before

    @property
    def errors(self) -> list[RuleError]:
        return [e for f in self.files for e in f.errors]


def _compile_file(parsed: ParsedFile, tokens: TokenTable) -> tuple[list[Rule], list[RuleError]]:
    rules: list[Rule] = []
    errors = list(parsed.errors)
    for item in parsed.rules:
        try:
            rule = compile_rule(item, tokens)
        except CompileError as exc:
            errors.extend(exc.errors)
            continue
        if item.spec.enabled:
            rules.append(rule)
    return rules, errors


class RuleRepository:
    """The rules directory as last loaded: per file, its digest and last good rules."""

    def __init__(self, directory: Path, tokens: TokenTable | None = None) -> None:
        self.directory = directory
        self._tokens = tokens or TokenTable()
        self._digests: dict[Path, str] = {}
        self._good: dict[Path, list[Rule]] = {}
        self._parsed: dict[Path, ParsedFile] = {}
        self._errors: dict[Path, tuple[RuleError, ...]] = {}
        self._current: ReloadResult | None = None

    @property
    def current(self) -> ReloadResult | None:
        return self._current

    def reload(self) -> ReloadResult:
        paths = list_rule_files(self.directory)
        changed = set(paths) != set(self._digests)
        new_errors: list[RuleError] = []
        for gone in set(self._digests) - set(paths):
            for table in (self._digests, self._good, self._parsed, self._errors):
                table.pop(gone, None)
        for path in paths:
            parsed = parse_file(path, self._parsed.get(path))
            if parsed is self._parsed.get(path):
                continue  # same bytes: not parsed again, its rules keep their objects
            changed = True
            self._digests[path] = parsed.digest
            self._parsed[path] = parsed
            rules, errors = _compile_file(parsed, self._tokens)
            if errors:
                self._errors[path] = tuple(sorted(errors))
                new_errors += errors
            else:
                self._errors.pop(path, None)
                self._good[path] = rules
        if not changed and self._current is not None:
            return ReloadResult(self._current.ruleset, self._current.files, changed=False)
        # Duplicate ids: a later file's rule loses against the first place the id appears.
        dup_errors = duplicate_ids(ParsedFile(p, "", tuple(self._parsed[p].rules)) for p in paths)
        dup_places = {e.location for e in dup_errors}
        active: list[Rule] = []
        seen: set[str] = set()
        files = []
        for path in paths:
            errors = list(self._errors.get(path, ()))
            errors += [e for e in dup_errors if e.location.path == str(path)]
            kept = []
            for rule in self._good.get(path, []):
                if rule.id in seen or rule.location in dup_places:
                    continue
                seen.add(rule.id)
                kept.append(rule)
            active += kept
            files.append(
                FileReport(
                    str(path),
                    self._digests[path],
                    tuple(r.id for r in kept),
                    tuple(sorted(set(errors))),
                )
            )
        new_errors += [
            e for e in dup_errors if e not in (self._current.errors if self._current else [])
        ]
        self._current = ReloadResult(RuleSet(active), tuple(files), True, tuple(new_errors))
        return self._current


def check_files(paths: list[Path], tokens: TokenTable) -> list[RuleError]:
    """Every error of every given rule file (and cross-file duplicates), for ``notifier check``."""
    parsed = [parse_file(p) for p in paths]
    errors: list[RuleError] = []
    for item in parsed:
        errors += _compile_file(item, tokens)[1]
    errors += duplicate_ids(parsed)
    return sorted(set(errors))
