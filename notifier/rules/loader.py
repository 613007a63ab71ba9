"""Reading rule files: YAML with node positions, every error as ``path:line:col: message``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from notifier.rules.model import RULE_FILE, RuleSpec

__all__ = [
    "RULE_SUFFIXES",
    "Location",
    "ParsedFile",
    "ParsedRule",
    "RuleError",
    "list_rule_files",
    "parse_file",
    "parse_text",
]

RULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True, order=True)
class Location:
    path: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"

    def shifted(self, lines: int) -> Location:
        return Location(self.path, self.line + lines, self.col if lines == 0 else 1)


@dataclass(frozen=True, slots=True, order=True)
class RuleError:
    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParsedRule:
    spec: RuleSpec
    location: Location  # the rule's list item
    fingerprint: str  # hash of the rule's data: unchanged text keeps its state on reload
    positions: dict[str, Location] = field(default_factory=dict)  # key -> value location


@dataclass(frozen=True, slots=True)
class ParsedFile:
    path: Path
    digest: str
    rules: tuple[ParsedRule, ...] = ()
    errors: tuple[RuleError, ...] = ()


def list_rule_files(directory: Path) -> list[Path]:
    """Rule files directly in ``directory``, sorted; hidden ones (editor temps) skipped."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in RULE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    for kind in (int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def _locate(root: Any, loc: Sequence[int | str], path: str, *, key: bool) -> Location:
    """Walk pydantic's ``loc`` through the YAML nodes; the deepest known node gives the place."""
    node = root
    line, col = 0, 0
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, CommentedMap) and part in node:
            line, col = node.lc.key(part) if (key and last) else node.lc.value(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line, col = node.lc.item(part)
            node = node[part]
        # otherwise: a discriminator tag or model-level error; stay on the current node
    return Location(path, line + 1, col + 1)


def _positions(item: CommentedMap, path: str) -> dict[str, Location]:
    found: dict[str, Location] = {}
    for k in item:
        line, col = item.lc.value(k)
        found[str(k)] = Location(path, line + 1, col + 1)
    return found


_yaml = YAML(typ="rt")


def parse_text(text: str, path: str) -> tuple[list[ParsedRule], list[RuleError]]:
    """Parse one file's text; returns the valid rules and every error found."""
    try:
        root = _yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        return [], [RuleError(where, f"YAML: {exc.problem or exc.context}")]
    except YAMLError as exc:
        return [], [RuleError(Location(path, 1, 1), f"YAML: {exc}")]
    if root is None:
        return [], []
    if not isinstance(root, CommentedMap):
        return [], [
            RuleError(Location(path, 1, 1), "a rule file is a mapping with a 'rules:' list")
        ]
    try:
        spec = RULE_FILE.validate_python(_plain(root))
    except ValidationError as exc:
        return _partial(root, exc, path)
    items = root.get("rules") or []
    rules = [
        ParsedRule(
            spec=rule,
            location=_locate(root, ("rules", i), path, key=False),
            fingerprint=_fingerprint(items[i]),
            positions=_positions(items[i], path),
        )
        for i, rule in enumerate(spec.rules)
    ]
    return rules, []


def _partial(
    root: CommentedMap, exc: ValidationError, path: str
) -> tuple[list[ParsedRule], list[RuleError]]:
    """A file with errors loads none of its rules, but reports all of them."""
    errors = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = err["loc"]
        is_extra = err["type"] == "extra_forbidden"
        where = _locate(root, loc, path, key=is_extra)
        field_name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid":
            where = _locate(root, (*loc, "on"), path, key=False)
            tag = err.get("ctx", {}).get("tag", "?")
            message = f"on: unknown rule kind {tag!r}; expected quote, order, intent or feed"
        elif err["type"] == "union_tag_not_found":
            message = "missing required key 'on' (quote, order, intent or feed)"
        elif is_extra:
            message = f"unknown key {field_name!r}"
        elif err["type"] == "missing":
            message = f"missing required key {field_name!r}"
        elif field_name and field_name not in {"quote", "order", "intent", "feed", "rules"}:
            message = f"{field_name}: {message}"
        errors.append(RuleError(where, message))
    return [], sorted(set(errors))


def _fingerprint(item: Any) -> str:
    return hashlib.sha256(orjson.dumps(_plain(item), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def parse_file(path: Path) -> ParsedFile:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return ParsedFile(path, "", (), (RuleError(Location(str(path), 1, 1), str(exc)),))
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ParsedFile(path, digest, (), (RuleError(Location(str(path), 1, 1), f"{exc}"),))
    rules, errors = parse_text(text, str(path))
    return ParsedFile(path, digest, tuple(rules), tuple(errors))


def duplicate_ids(files: Iterable[ParsedFile]) -> list[RuleError]:
    """Ids must be unique across the whole rules dir; each duplicate names the first place."""
    seen: dict[str, Location] = {}
    errors = []
    for parsed in files:
        for rule in parsed.rules:
            first = seen.setdefault(rule.spec.id, rule.location)
            if first is not rule.location:
                errors.append(
                    RuleError(
                        rule.location, f"duplicate rule id {rule.spec.id!r} (first at {first})"
                    )
                )
    return errors
