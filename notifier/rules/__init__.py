"""Rules: rule files → compiled rules → a ``RuleSet`` the engine evaluates.

``RuleRepository.reload`` is the one way rules change: it re-reads the directory, reuses files
whose bytes did not change, keeps the last good version of a file that fails, and returns a
complete new ``RuleSet`` to swap in whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from notifier.rules.bounds import DEFAULT_BUDGET, Budget
from notifier.rules.compiled import CompileError, Rule, compile_rule
from notifier.rules.engine import Engine, RuleSet, StateStore
from notifier.rules.loader import (
    Location,
    ParsedFile,
    RuleError,
    duplicate_ids,
    id_place,
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
    loaded: bool = True  # False: in error and never good, so none of its rules run

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    @property
    def outcome(self) -> str:
        """What a failure means for the running rules, in the words errors_to and status use."""
        if not self.failed:
            return "loaded"
        return "last good version kept" if self.loaded else "not loaded"


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ruleset: RuleSet
    files: tuple[FileReport, ...]
    changed: bool  # False when every file's bytes were unchanged
    new_errors: tuple[RuleError, ...] = field(default=())  # errors not reported before
    fixed: tuple[str, ...] = field(default=())  # files in error before that now load cleanly

    @property
    def errors(self) -> list[RuleError]:
        return [e for f in self.files for e in f.errors]


def _compile_file(
    parsed: ParsedFile, tokens: TokenTable, budget: Budget = DEFAULT_BUDGET
) -> tuple[list[Rule], list[RuleError]]:
    rules: list[Rule] = []
    errors = list(parsed.errors)
    for item in parsed.rules:
        try:
            rule = compile_rule(item, tokens, budget)
        except CompileError as exc:
            errors.extend(exc.errors)
            continue
        if item.spec.enabled:
            rules.append(rule)
    return rules, errors


@dataclass(frozen=True, slots=True)
class _Claim:
    """One place a file uses an id: in its current text, or in the last good version it runs."""

    path: Path
    place: Location  # the `id:` value
    fingerprint: str


def _owners(
    claims: dict[str, list[_Claim]],
    previous: dict[str, Path],
    refused: dict[str, set[Path]],
    running: RuleSet | None,
) -> dict[str, _Claim]:
    """Who has each id: the file that had it at the last reload, if it still uses it; else one
    that was not refused it last time, preferring the running rule's text (a renamed file);
    else the first place in path order."""
    owners = {}
    for rule_id, found in claims.items():
        rule = running.rules.get(rule_id) if running is not None else None
        fingerprint = rule.fingerprint if rule is not None else None
        ranked = sorted(
            range(len(found)),
            key=lambda i: (
                found[i].path != previous.get(rule_id),
                found[i].path in refused.get(rule_id, ()),
                found[i].fingerprint != fingerprint,
                i,
            ),
        )
        owners[rule_id] = found[ranked[0]]
    return owners


class RuleRepository:
    """The rules directory as last loaded: per file, its digest and last good rules.

    An id belongs to the rule that had it first: a file that brings an id another file already
    uses is the one in error (at its ``id:``), and keeps its own last good version, if any.
    """

    def __init__(
        self, directory: Path, tokens: TokenTable | None = None, budget: Budget = DEFAULT_BUDGET
    ) -> None:
        self.directory = directory
        self._tokens = tokens or TokenTable()
        self._budget = budget  # what each evaluation of a rule may spend ([limits])
        self._digests: dict[Path, str] = {}
        self._good: dict[Path, list[Rule]] = {}
        self._parsed: dict[Path, ParsedFile] = {}
        self._compiled: dict[Path, list[Rule]] = {}  # the current text's rules
        self._errors: dict[Path, tuple[RuleError, ...]] = {}  # the current text's own errors
        self._owners: dict[str, Path] = {}  # id -> the file that has it
        self._refused: dict[str, set[Path]] = {}  # id -> files in error for bringing it again
        self._current: ReloadResult | None = None

    @property
    def current(self) -> ReloadResult | None:
        return self._current

    def reload(self) -> ReloadResult:
        paths = list_rule_files(self.directory)
        changed = set(paths) != set(self._digests)
        new_errors: list[RuleError] = []
        for gone in set(self._digests) - set(paths):
            for table in (self._digests, self._good, self._parsed, self._compiled, self._errors):
                table.pop(gone, None)
        for path in paths:
            parsed = parse_file(path, self._parsed.get(path))
            if parsed is self._parsed.get(path):
                continue  # same bytes: not parsed again, its rules keep their objects
            changed = True
            self._digests[path] = parsed.digest
            self._parsed[path] = parsed
            self._compiled[path], errors = _compile_file(parsed, self._tokens, self._budget)
            self._errors[path] = tuple(sorted(errors))
            new_errors += errors
        if not changed and self._current is not None:
            return ReloadResult(self._current.ruleset, self._current.files, changed=False)
        before = self._current
        # A file in error runs its last good version, whose ids it then uses too; that can put
        # another file in error, never take a file out of it, so this ends within len(paths).
        in_error = {p for p in paths if self._errors[p]}
        while True:
            owners = _owners(
                self._claims(paths, in_error),
                self._owners,
                self._refused,
                before.ruleset if before else None,
            )
            duplicates = {p: self._duplicates(p, owners) for p in paths}
            if in_error >= {p for p in paths if duplicates[p]}:
                break
            in_error |= {p for p in paths if duplicates[p]}
        self._owners = {rule_id: claim.path for rule_id, claim in owners.items()}
        self._refused = {}
        for path in paths:
            for rule in self._parsed[path].rules:
                if owners[rule.spec.id].path != path:
                    self._refused.setdefault(rule.spec.id, set()).add(path)
        active: list[Rule] = []
        files = []
        for path in paths:
            errors = [*self._errors[path], *duplicates[path]]
            if not errors:
                self._good[path] = self._compiled[path]
            kept = [r for r in self._good.get(path, []) if self._owners.get(r.id) == path]
            active += kept
            report = FileReport(
                str(path),
                self._digests[path],
                tuple(r.id for r in kept),
                tuple(sorted(set(errors))),
                loaded=path in self._good,
            )
            files.append(report)
        old_errors = set(before.errors) if before else set()
        new_errors += [e for f in files for e in f.errors if e not in old_errors]
        failed_before = {f.path for f in before.files if f.failed} if before else set()
        fixed = tuple(f.path for f in files if f.path in failed_before and not f.failed)
        self._current = ReloadResult(
            RuleSet(active), tuple(files), True, tuple(sorted(set(new_errors))), fixed
        )
        return self._current

    def _claims(self, paths: list[Path], in_error: set[Path]) -> dict[str, list[_Claim]]:
        """Every place each id is used, in path order; a file in error also uses the ids of
        the last good version it keeps running."""
        claims: dict[str, list[_Claim]] = {}
        for path in paths:
            places = [(r.spec.id, id_place(r), r.fingerprint) for r in self._parsed[path].rules]
            if path in in_error:
                places += [(r.id, id_place(r), r.fingerprint) for r in self._good.get(path, [])]
            for rule_id, place, fingerprint in places:
                claims.setdefault(rule_id, []).append(_Claim(path, place, fingerprint))
        return claims

    def _duplicates(self, path: Path, owners: dict[str, _Claim]) -> list[RuleError]:
        """An error at each ``id:`` of this file's text that is not the place owning the id."""
        errors = []
        for rule in self._parsed[path].rules:
            owner, place = owners[rule.spec.id], id_place(rule)
            if owner.place != place:
                message = f"duplicate rule id {rule.spec.id!r} (first at {owner.place})"
                errors.append(RuleError(place, message))
        return errors


def check_files(paths: list[Path], tokens: TokenTable) -> list[RuleError]:
    """Every error of every given rule file (and cross-file duplicates), for ``notifier check``."""
    parsed = [parse_file(p) for p in paths]
    errors: list[RuleError] = []
    for item in parsed:
        errors += _compile_file(item, tokens)[1]
    errors += duplicate_ids(parsed)
    return sorted(set(errors))
