"""Reading rule files: YAML with node positions, every error as ``path:line:col: message``."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

from notifier.rules.model import (
    RULE_SPEC,
    FeedSpec,
    IntentSpec,
    OrderSpec,
    PairSpec,
    QuoteSpec,
    RuleSpec,
)

__all__ = [
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
RULE_KINDS = frozenset({"quote", "order", "intent", "feed"})


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
    """Each key's value place, and one level down: ``pair.in``, ``maker.0``."""
    found: dict[str, Location] = {}
    for k in item:
        value = item[k]
        line, col = item.lc.value(k)
        if isinstance(value, LiteralScalarString | FoldedScalarString):
            line, col = line + 1, 0  # a block scalar's text starts on the line after its '|'
        found[str(k)] = Location(path, line + 1, col + 1)
        inner: list[tuple[object, tuple[int, int]]] = []
        if isinstance(value, CommentedMap):
            inner = [(sub, value.lc.value(sub)) for sub in value]
        elif isinstance(value, CommentedSeq):
            inner = [(i, value.lc.item(i)) for i in range(len(value))]
        for sub, (sub_line, sub_col) in inner:
            found[f"{k}.{sub}"] = Location(path, sub_line + 1, sub_col + 1)
    return found


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean X?"`` when a known word is close to ``word`` (any case), else ``""``."""
    by_folded = {k.casefold(): k for k in known}
    close = difflib.get_close_matches(word.casefold(), list(by_folded), n=1)
    return f"; did you mean {by_folded[close[0]]}?" if close else ""


def _keys(model: type[BaseModel]) -> list[str]:
    return [spec.alias or name for name, spec in model.model_fields.items()]


_KIND_SPECS: dict[str, type[BaseModel]] = {
    "quote": QuoteSpec,
    "order": OrderSpec,
    "intent": IntentSpec,
    "feed": FeedSpec,
}


_yaml = YAML(typ="rt")


def _load_yaml(text: str, path: str) -> CommentedMap | RuleError | None:
    try:
        root = _yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        return RuleError(where, f"YAML: {exc.problem or exc.context}")
    except YAMLError as exc:
        return RuleError(Location(path, 1, 1), f"YAML: {exc}")
    if root is None or isinstance(root, CommentedMap):
        return root
    return RuleError(Location(path, 1, 1), "a rule file is a mapping with a 'rules:' list")


def parse_text(text: str, path: str) -> tuple[list[ParsedRule], list[RuleError]]:
    """Parse one file's text; returns the valid rules and every error found."""
    root = _load_yaml(text, path)
    if root is None:
        return [], []
    if isinstance(root, RuleError):
        return [], [root]
    errors = [
        RuleError(
            _locate(root, (key,), path, key=True),
            f"unknown key {key!r}" + did_you_mean(str(key), ["rules"]),
        )
        for key in root
        if key != "rules"
    ]
    items = root.get("rules")
    if items is None:
        return [], errors
    if not isinstance(items, CommentedSeq):
        where = _locate(root, ("rules",), path, key=False)
        return [], [*errors, RuleError(where, "rules: expected a list of rules")]
    rules = []
    for i, item in enumerate(items):
        # Each rule on its own: one bad rule must not hide the errors of the others.
        try:
            spec = RULE_SPEC.validate_python(_plain(item))
        except ValidationError as exc:
            errors += _partial(root, exc, path, ("rules", i))
            continue
        rules.append(
            ParsedRule(
                spec=spec,
                location=_locate(root, ("rules", i), path, key=False),
                fingerprint=_fingerprint(item),
                positions=_positions(item, path),
            )
        )
    return rules, errors


def _partial(
    root: CommentedMap, exc: ValidationError, path: str, prefix: tuple[str | int, ...]
) -> list[RuleError]:
    """Every error of one rule, each located through the YAML nodes."""
    errors = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = (*prefix, *err["loc"])
        kind = ""
        if len(loc) > 2 and loc[0] == "rules" and loc[2] in RULE_KINDS:
            kind = str(loc[2])
            loc = (*loc[:2], *loc[3:])  # pydantic's discriminator tag is not a YAML key
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
            model = PairSpec if "pair" in loc[2:-1] else _KIND_SPECS.get(kind)
            known = _keys(model) if model else []
            message = f"unknown key {field_name!r}" + did_you_mean(field_name, known)
        elif err["type"] == "missing":
            message = f"missing required key {field_name!r}"
        elif err["type"] in {"model_type", "model_attributes_type", "dict_type"}:
            message = f"{field_name}: expected a mapping"
            if field_name == "rules":
                message = "a rule is a mapping of keys (id, on, …)"
        elif field_name and field_name != "rules":
            message = f"{field_name}: {message}"
        errors.append(RuleError(where, message))
    return sorted(set(errors))


def _fingerprint(item: Any) -> str:
    data = _plain(item)
    try:
        raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits: orjson refuses it, json does not
        raw = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_file(path: Path, previous: ParsedFile | None = None) -> ParsedFile:
    """Read and parse ``path``; returns ``previous`` itself when the bytes are unchanged."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return ParsedFile(path, "", (), (RuleError(Location(str(path), 1, 1), str(exc)),))
    digest = hashlib.sha256(raw).hexdigest()
    if previous is not None and previous.digest == digest:
        return previous
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ParsedFile(path, digest, (), (RuleError(Location(str(path), 1, 1), f"{exc}"),))
    rules, errors = parse_text(text, str(path))
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
