"""Rules: rule files → compiled rules → a ``RuleSet`` the engine evaluates.

``RuleRepository.reload`` is the one way rules change: it re-reads the directory, reuses files
whose bytes did not change, keeps the last good version of a file that fails, and returns a
complete new ``RuleSet`` to swap in whole.
"""

from __future__ import annotations

import gc
import threading
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from notifier.history.book import DEFAULT_MAX_WINDOW
from notifier.rules.compiled import Rule, compile_file
from notifier.rules.engine import Engine
from notifier.rules.filestat import Seen
from notifier.rules.loader import (
    MAX_FILE_BYTES,
    Location,
    ParsedFile,
    ParsedRule,
    RuleError,
    duplicate_ids,
    id_place,
    list_rule_files,
    parse_file,
)
from notifier.rules.metering import DEFAULT_BUDGET, Budget
from notifier.rules.results import FileReport, ReloadResult
from notifier.rules.ruleset import RuleSet
from notifier.rules.state import StateStore
from notifier.tokens import TokenTable

__all__ = [
    "Engine",
    "FileReport",
    "Location",
    "ReloadResult",
    "RuleError",
    "RuleRepository",
    "RuleSet",
    "RulesDirError",
    "StateStore",
    "check_files",
]


class RulesDirError(Exception):
    """The rules directory cannot be listed: it is missing, not a directory, or unreadable.
    The message reads ``<dir>: rules_dir: <what is wrong>``."""


def _rule_paths(directory: Path) -> list[Path]:
    """The rule files of ``directory``; a directory that cannot be listed is an error here,
    never an empty rule set."""
    try:
        return list_rule_files(directory, missing_ok=False)
    except FileNotFoundError:
        reason = "no such directory"
    except NotADirectoryError:
        reason = "not a directory"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    raise RulesDirError(f"{directory}: rules_dir: {reason}")


def _packed(place: Location) -> int:
    """A place in a known file as one int: its line, then 32 bits of column."""
    return place.line << 32 | place.col


def _unpacked(path: Path, place: int) -> Location:
    return Location(str(path), place >> 32, place & 0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class _Text:
    """A file's current text as ids are settled: each rule's id, the place of its ``id:``
    (packed) and its fingerprint, side by side (not an object a rule; the parsed specs are
    not kept once compiled)."""

    ids: tuple[str, ...]
    places: array[int]
    fingerprints: tuple[str, ...]

    @classmethod
    def of(cls, rules: tuple[ParsedRule, ...]) -> _Text:
        places = array("Q", [_packed(id_place(r)) for r in rules])
        return cls(tuple(r.spec.id for r in rules), places, tuple(r.fingerprint for r in rules))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a reload builds its objects: each collection walks
    every object alive, and 100,000 rules make them slow and frequent (≈ 3 s of a 8 s load).
    Reference counting frees memory as usual; the collector runs again after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class _Claim:
    """One place a file uses an id: in its current text, or in the last good version it runs."""

    path: Path
    place: int  # the `id:` value's, packed
    fingerprint: str
    order: int  # the file's index in path order, then the claim's index in the file (32 bits)


_Rank = tuple[bool, bool, bool, int]


def _ranking(
    previous: dict[str, Path], refused: dict[str, set[Path]], running: RuleSet | None
) -> Callable[[str, _Claim], _Rank]:
    """Who has an id (the lowest rank): the file that had it at the last reload, if it still
    uses it; else one that was not refused it last time, preferring the running rule's text
    (a renamed file); else the first place in path order."""

    def rank(rule_id: str, claim: _Claim) -> _Rank:
        rule = running.rules.get(rule_id) if running is not None else None
        return (
            claim.path != previous.get(rule_id),
            claim.path in refused.get(rule_id, ()),
            rule is None or claim.fingerprint != rule.fingerprint,
            claim.order,
        )

    return rank


class RuleRepository:
    """The rules directory as last loaded: per file, its digest and last good rules.

    An id belongs to the rule that had it first: a file that brings an id another file already
    uses is the one in error (at its ``id:``), and keeps its own last good version, if any.
    ``reload`` may run in a worker thread; reloads run one at a time.
    """

    def __init__(
        self,
        directory: Path,
        tokens: TokenTable | None = None,
        budget: Budget = DEFAULT_BUDGET,
        *,
        max_bytes: int = MAX_FILE_BYTES,
        max_window: float = DEFAULT_MAX_WINDOW,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_window = max_window  # [history] max_window: the longest window a rule reads
        self._tokens = tokens or TokenTable()
        self._budget = budget  # what each evaluation of a rule may spend ([limits])
        self._digests: dict[Path, str] = {}
        self._good: dict[Path, list[Rule]] = {}
        self._parsed: dict[Path, ParsedFile] = {}  # digest and errors; its rules dropped
        self._written: dict[Path, _Text] = {}  # the current text's rules
        self._compiled: dict[Path, list[Rule]] = {}  # the current text's rules
        self._errors: dict[Path, tuple[RuleError, ...]] = {}  # the current text's own errors
        self._owners: dict[str, Path] = {}  # id -> the file that has it
        self._refused: dict[str, set[Path]] = {}  # id -> files in error for bringing it again
        self._claimed: dict[str, _Claim] = {}  # id -> the place that has it, at the last reload
        self._held: dict[Path, list[str]] = {}  # per file, the ids it has (``_claimed`` by file)
        self._duplicated: dict[Path, list[RuleError]] = {}  # per file, at the last reload
        self._kept: dict[Path, list[Rule]] = {}  # per file, the rules it runs
        self._seen: dict[Path, Seen] = {}  # per file, its status when last read
        self._current: ReloadResult | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> ReloadResult | None:
        return self._current

    def reload(self) -> ReloadResult:
        with self._lock, _collector_paused():
            return self._reload()

    def _reload(self) -> ReloadResult:
        """Raises ``RulesDirError``, changing nothing, when the directory cannot be listed."""
        paths = _rule_paths(self.directory)
        changed = set(paths) != set(self._digests)
        touched: list[Path] = []  # files whose bytes changed
        new_errors: list[RuleError] = []
        for gone in set(self._digests) - set(paths):
            tables = (self._digests, self._good, self._parsed, self._compiled, self._errors)
            for table in (*tables, self._written, self._kept, self._seen):
                table.pop(gone, None)
        for path in paths:
            last, seen = self._parsed.get(path), self._seen.get(path)
            if last is not None and seen is not None and seen.unchanged(path):
                continue  # not touched since it was read: its rules keep their objects
            self._seen[path] = Seen.before_reading(path)
            parsed = parse_file(path, last, self.max_bytes)
            if parsed is last:
                continue  # same bytes: not parsed again, its rules keep their objects
            changed = True
            touched.append(path)
            self._digests[path] = parsed.digest
            self._compiled[path], errors = compile_file(
                parsed, self._tokens, self._budget, self.max_window
            )
            self._parsed[path] = replace(parsed, rules=())
            self._written[path] = _Text.of(parsed.rules)
            self._errors[path] = tuple(sorted(errors))
            new_errors += errors
        if not changed and self._current is not None:
            return ReloadResult(self._current.ruleset, self._current.files, changed=False)
        before = self._current
        alone = self._alone(paths, touched, before)
        duplicates = self._settle(paths, touched if alone else paths, before, alone=alone)
        previous = {f.path: f for f in before.files} if alone and before else {}
        replaced = {p: self._kept.get(p, []) for p in touched} if alone else {}
        files = []
        for path in paths:
            report = previous.get(str(path)) if path not in touched else None
            if report is not None:  # untouched, and no id of it moved: as it was
                files.append(report)
                continue
            errors = [*self._errors[path], *duplicates[path]]
            if not errors:
                self._good[path] = self._compiled[path]
            kept = [r for r in self._good.get(path, []) if self._owners.get(r.id) == path]
            self._kept[path] = kept
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
            self._ruleset(paths, before, replaced),
            tuple(files),
            True,
            tuple(sorted(set(new_errors))),
            fixed,
        )
        return self._current

    def _ruleset(
        self, paths: list[Path], before: ReloadResult | None, replaced: dict[Path, list[Rule]]
    ) -> RuleSet:
        """The rules every file runs, in path order: the running set with the ``replaced``
        files' rules (their rules before) swapped, when that is exact; else built anew."""
        number = {p: i for i, p in enumerate(paths)}
        was = {id(r): number[p] for p, rules in replaced.items() for r in rules}
        owners = self._owners

        def rank(rule: Rule) -> int:
            found = was.get(id(rule))
            return number[owners[rule.id]] if found is None else found

        ruleset = before.ruleset if before is not None and replaced else None
        for path, old in replaced.items():
            if ruleset is None:
                break
            ruleset = ruleset.replaced(old, self._kept[path], rank, number[path])
        if ruleset is None:
            ruleset = RuleSet(r for p in paths for r in self._kept[p])
        return ruleset

    def _settle(
        self, paths: list[Path], settle: list[Path], before: ReloadResult | None, *, alone: bool
    ) -> dict[Path, list[RuleError]]:
        """Settle the owners of the ids of ``settle`` (every path, or the touched ones when
        they are ``alone``: the other owners stand); each file's duplicate-id errors."""
        running = before.ruleset if before else None
        settled = self._settle_owners(settle, running, {p: i for i, p in enumerate(paths)})
        if alone:
            owners = self._claimed
            for path in settle:
                for rule_id in self._held.pop(path, ()):
                    del owners[rule_id]
                    del self._owners[rule_id]
            owners.update(settled)
            self._owners.update((rule_id, claim.path) for rule_id, claim in settled.items())
        else:
            owners, self._held = settled, {}
            self._owners = {rule_id: claim.path for rule_id, claim in owners.items()}
        for rule_id, claim in settled.items():
            self._held.setdefault(claim.path, []).append(rule_id)
        duplicates = self._duplicated if alone else {}
        duplicates.update({p: self._duplicates(p, owners) for p in settle})
        self._claimed, self._duplicated = owners, duplicates
        if not alone:
            self._refused = {}  # else it was empty (no file in error) and stays so for others
        for path in settle:
            for rule_id in self._written[path].ids:
                if owners[rule_id].path != path:
                    self._refused.setdefault(rule_id, set()).add(path)
        return duplicates

    def _alone(self, paths: list[Path], touched: list[Path], before: ReloadResult | None) -> bool:
        """Whether only the ``touched`` files need their ids settled: the same files as at the
        last reload, none in error then (so each other id had one claim), and no id of a
        touched file (its text's or its last good version's) held by an untouched file."""
        if before is None or not touched or any(f.failed for f in before.files):
            return False
        if [Path(f.path) for f in before.files] != paths:
            return False
        mine = set(touched)
        for path in touched:
            rules = self._written[path].ids
            for rule_id in [*rules, *(r.id for r in self._good.get(path, []))]:
                claim = self._claimed.get(rule_id)
                if claim is not None and claim.path not in mine:
                    return False
        return True

    def _settle_owners(
        self, paths: list[Path], running: RuleSet | None, index: dict[Path, int]
    ) -> dict[str, _Claim]:
        """The owner of every id. A file in error runs its last good version, whose ids it
        then uses too; that can take an id from a file, putting that file in error in turn,
        never take a file out of error. Each file enters the error set once and adds its
        claims once, and each claim is compared with the id's owner only, so this is linear."""
        rank = _ranking(self._owners, self._refused, running)
        owners: dict[str, _Claim] = {}

        def claim(rule_id: str, new: _Claim) -> _Claim | None:
            """Count ``new`` in; the owner it displaces, if any."""
            current = owners.get(rule_id)
            if current is None or rank(rule_id, new) < rank(rule_id, current):
                owners[rule_id] = new
                return current
            return None

        in_error = {p for p in paths if self._errors[p]}
        for path in paths:
            for rule_id, new in self._claims(path, index[path], good=path in in_error):
                claim(rule_id, new)
        queue = [p for p in paths if p not in in_error and self._duplicates(p, owners)]
        while queue:
            path = queue.pop()
            if path in in_error:
                continue
            in_error.add(path)
            for rule_id, new in self._claims(path, index[path], good=True):
                displaced = claim(rule_id, new)
                if displaced is not None and displaced.path not in in_error:
                    queue.append(displaced.path)
        return owners

    def _claims(self, path: Path, index: int, *, good: bool) -> list[tuple[str, _Claim]]:
        """The ids ``path`` uses: its text's, then (``good``) those of its last good version."""
        text = self._written[path]
        places = list(zip(text.ids, text.places, text.fingerprints, strict=True))
        if good:
            good_rules = self._good.get(path, [])
            places += [(r.id, _packed(id_place(r)), r.fingerprint) for r in good_rules]
        return [
            (rule_id, _Claim(path, place, fingerprint, index << 32 | i))
            for i, (rule_id, place, fingerprint) in enumerate(places)
        ]

    def _duplicates(self, path: Path, owners: dict[str, _Claim]) -> list[RuleError]:
        """An error at each ``id:`` of this file's text that is not the place owning the id."""
        errors = []
        text = self._written[path]
        for rule_id, place in zip(text.ids, text.places, strict=True):
            owner = owners[rule_id]
            if owner.path != path or owner.place != place:
                first = _unpacked(owner.path, owner.place)
                message = f"duplicate rule id {rule_id!r} (first at {first})"
                errors.append(RuleError(_unpacked(path, place), message))
        return errors


def check_files(
    paths: list[Path],
    tokens: TokenTable,
    max_bytes: int = MAX_FILE_BYTES,
    max_window: float = DEFAULT_MAX_WINDOW,
) -> list[RuleError]:
    """Every error of every given rule file (and cross-file duplicates), for ``notifier check``."""
    parsed = [parse_file(p, max_bytes=max_bytes) for p in paths]
    errors: list[RuleError] = []
    for item in parsed:
        errors += compile_file(item, tokens, max_window=max_window)[1]
    errors += duplicate_ids(parsed)
    return sorted(set(errors))
