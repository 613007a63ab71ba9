"""The precise loader of rule files: ruamel's round-trip YAML with every node's place, for the
files the fast paths (``lineyaml``, ``fastyaml``) leave and to explain every error at
``path:line:col``. Imported only then: ruamel costs start-up memory the fast paths do not need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import MaxDepthExceededError
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

from notifier.rules.model import (
    RULE_SPEC,
    FeedSpec,
    IntentSpec,
    OrderSpec,
    PairSpec,
    QuoteSpec,
)
from notifier.rules.parsed import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    Location,
    ParsedRule,
    RuleError,
    did_you_mean,
    fingerprint,
    plain,
)

__all__ = ["MAX_ALIAS_VALUES", "precise_parse"]

RULE_KINDS = frozenset({"quote", "order", "intent", "feed"})
MAX_ALIAS_VALUES = 10_000  # values that aliases (``*name``) may add to a file by expanding
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"


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


def _keys(model: type[BaseModel]) -> list[str]:
    return [spec.alias or name for name, spec in model.model_fields.items()]


_KIND_SPECS: dict[str, type[BaseModel]] = {
    "quote": QuoteSpec,
    "order": OrderSpec,
    "intent": IntentSpec,
    "feed": FeedSpec,
}


class _Refused(MarkedYAMLError):
    """A construct the loader refuses before building any value from it."""

    def __init__(self, node: Node, problem: str) -> None:
        super().__init__(problem=problem, problem_mark=node.start_mark)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, SequenceNode) else []


def _check_nodes(root: Node) -> None:
    """Refuse, at their place, what would crash or blow up construction: complex and merge
    keys, huge integers, aliases that refer to their own container or expand too far."""
    size: dict[int, int] = {}  # id(node) -> its value count, aliases expanded
    open_nodes: set[int] = set()
    expanded = 0
    stack: list[tuple[Node, Node | None, bool]] = [(root, None, False)]
    while stack:
        node, parent, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            continue
        if key in size:  # a second reference: an alias use
            expanded += size[key]
            if expanded > MAX_ALIAS_VALUES:
                raise _Refused(
                    parent or node,
                    f"aliases (*name) expand to more than {MAX_ALIAS_VALUES:,} values; "
                    "write the values out",
                )
            continue
        if key in open_nodes:
            raise _Refused(parent or node, "an alias (*name) refers to a value that contains it")
        if isinstance(node, ScalarNode):
            digits = len(node.value.lstrip("+-"))
            if node.tag == _INT_TAG and digits > MAX_INT_DIGITS:
                raise _Refused(
                    node, f"an integer of {digits} digits; at most {MAX_INT_DIGITS} are accepted"
                )
        if isinstance(node, MappingNode):
            for k, _ in node.value:
                if not isinstance(k, ScalarNode):
                    raise _Refused(
                        k, "a key must be a plain word such as id or on, not a list or mapping"
                    )
                if k.tag == _MERGE_TAG:
                    raise _Refused(
                        k, "merge keys (<<) are not supported; write the keys out in each rule"
                    )
        open_nodes.add(key)
        stack.append((node, parent, True))
        stack.extend((child, node, False) for child in reversed(_children(node)))


class _CheckedConstructor(RoundTripConstructor):
    def construct_document(self, node: Any) -> Any:
        _check_nodes(node)
        return super().construct_document(node)


def _new_yaml() -> YAML:
    """One loader per parse: a ``YAML`` object keeps its reader's state, and files may be parsed
    in threads."""
    yaml = YAML(typ="rt")
    yaml.Constructor = _CheckedConstructor
    yaml.max_depth = MAX_DEPTH
    return yaml


def _mark_location(path: str, mark: Any) -> Location:
    return Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)


def _position_location(path: str, text: str, position: int) -> Location:
    """A character offset in ``text`` as a line and column."""
    line_start = text.rfind("\n", 0, position) + 1
    return Location(path, text.count("\n", 0, position) + 1, position - line_start + 1)


def _load_yaml(text: str, path: str) -> CommentedMap | RuleError | None:
    try:
        root = _new_yaml().load(text)
    except MaxDepthExceededError as exc:
        where = _mark_location(path, exc.problem_mark)
        return RuleError(where, f"YAML: values nested deeper than {MAX_DEPTH} levels")
    except MarkedYAMLError as exc:
        where = _mark_location(path, exc.problem_mark or exc.context_mark)
        return RuleError(where, f"YAML: {exc.problem or exc.context}")
    except ReaderError as exc:
        where = _position_location(path, text, exc.position)
        return RuleError(where, f"YAML: unacceptable character #x{exc.character:04x}: {exc.reason}")
    except YAMLError as exc:
        return RuleError(Location(path, 1, 1), f"YAML: {exc}")
    if root is None or isinstance(root, CommentedMap):
        return root
    return RuleError(Location(path, 1, 1), "a rule file is a mapping with a 'rules:' list")


def precise_parse(text: str, path: str) -> tuple[list[ParsedRule], list[RuleError]]:
    """Parse one file's text with ruamel; returns the valid rules and every error found."""
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
            spec = RULE_SPEC.validate_python(plain(item))
        except ValidationError as exc:
            errors += _partial(root, exc, path, ("rules", i))
            continue
        rules.append(
            ParsedRule(
                spec=spec,
                location=_locate(root, ("rules", i), path, key=False),
                fingerprint=fingerprint(item),
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
