"""The fast path of reading a rule file: libyaml composes the nodes, marks included, in C.

Rule files are YAML 1.2, as ruamel reads them (``on``, ``yes``, ``no`` are strings; ``017`` is
seventeen), while PyYAML resolves plain scalars by YAML 1.1. So the C composer is asked to leave
plain scalars unresolved, and each is resolved here by ruamel's 1.2 resolver (cached per text).
Only the plain shapes of a rule file take this path: anything else — a YAML error, tags,
anchors, directives, duplicate or non-scalar keys, odd line breaks, deep nesting, huge numbers,
or a rule that fails validation — answers None, and the precise loader (ruamel, round-trip)
reads the file and explains its errors. ``tests/test_rules_fastyaml.py`` holds both to the
same results.
"""

from __future__ import annotations

import functools
import re
import sys
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.cyaml import CParser  # type: ignore[attr-defined,unused-ignore]

from notifier.rules.model import RULE_SPEC
from notifier.rules.parsed import MAX_DEPTH, MAX_INT_DIGITS, Location, ParsedRule, fingerprint

__all__ = ["UNREAD", "fast_parse", "resolve_plain", "ruamel_tag", "tag_of"]

_PLAIN = "!plain"  # what the composer is told a plain scalar's tag is: resolved here
_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
# A directive, or a character YAML 1.1 and 1.2 read differently: the precise loader takes the
# file. (Tags other than the standard ones, and aliases, are caught on the nodes.)
_UNUSUAL = re.compile(r"^%|[\t\x85\u2028\u2029\ufeff]", re.MULTILINE)
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
# 1.05, -0.5, 1.0e-12: a float by YAML 1.2 (and by _FLOAT)
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_WORDS = {
    **dict.fromkeys(("null", "Null", "NULL", "~", ""), None),
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
}
_CACHE_LIMIT = 200_000
_scalars: dict[str, Any] = {}  # plain scalar text -> its value (or _Unusual)


class _Unusual(Exception):
    """The text needs the precise loader."""


class _Composer(CParser):  # type: ignore[misc,unused-ignore]
    """libyaml's composer, plain scalars left unresolved (YAML 1.2 is applied by ``_resolve``)."""

    def descend_resolver(self, parent: object, index: object) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP


def _number(tag: str, text: str) -> Any:
    if tag.endswith(":int") and _INT.fullmatch(text):
        if len(text.lstrip("+-")) > MAX_INT_DIGITS:
            raise _Unusual
        return int(text)
    if tag.endswith(":float") and _FLOAT.fullmatch(text):
        return float(text)
    from ruamel.yaml import YAML  # noqa: PLC0415 - ruamel only for the rare number forms

    value = YAML(typ="rt").load(f"v: {text}\n")["v"]  # 0o17, 0x1F, 1_000, .inf, …
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    raise _Unusual


@functools.cache
def _ruamel_resolve() -> Any:
    """ruamel's YAML 1.2 resolver, imported on the first scalar that needs it (ruamel costs
    start-up memory; the plain words and numbers of most rule files do without)."""
    from ruamel.yaml.nodes import ScalarNode  # noqa: PLC0415
    from ruamel.yaml.resolver import VersionedResolver  # noqa: PLC0415

    resolver = VersionedResolver(version=(1, 2))
    return functools.partial(resolver.resolve, ScalarNode)


def ruamel_tag(text: str) -> str:
    """The tag ruamel's YAML 1.2 resolver gives the plain scalar ``text``."""
    return str(_ruamel_resolve()(text, (True, False)))


def tag_of(text: str) -> str:
    """``ruamel_tag``, answered without ruamel for decimal integers and fractions."""
    if _INT.fullmatch(text):
        return _INT_TAG
    if _DECIMAL.fullmatch(text):
        return _FLOAT_TAG
    return ruamel_tag(text)


def _resolve(text: str) -> Any:
    if text[:1].isalpha() and text not in _WORDS:
        return text
    try:
        return _scalars[text]
    except KeyError:
        pass
    if text in _WORDS:
        value: Any = _WORDS[text]
    else:
        tag = tag_of(text)
        if tag == _STR:
            value = text
        elif tag.endswith((":int", ":float")):
            try:
                value = _number(tag, text)
            except _Unusual:
                value = _Unusual
        elif tag.endswith(":bool"):
            value = text.lower() == "true"
        elif tag.endswith(":null"):
            value = None
        else:  # merge (<<), value (=), timestamps
            value = _Unusual
    if len(_scalars) > _CACHE_LIMIT:
        _scalars.clear()
    _scalars[text] = value
    return value


UNREAD: Any = _Unusual  # what ``resolve_plain`` answers for a scalar only ruamel reads


def resolve_plain(text: str) -> Any:
    """A plain scalar's value by YAML 1.2, as ruamel reads it; ``UNREAD`` when it cannot say."""
    return _resolve(text)


def _value(node: yaml.Node, depth: int) -> Any:
    if depth > MAX_DEPTH - 2:
        raise _Unusual
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _STR:
            if not node.style:  # plain, yet a string: an explicit tag (!!str, !)
                raise _Unusual
            return node.value
        if node.tag != _PLAIN:
            raise _Unusual
        value = _resolve(node.value)
        if value is _Unusual:
            raise _Unusual
        return value
    if isinstance(node, yaml.SequenceNode):
        _once(node)
        return [_value(child, depth + 1) for child in node.value]
    return _mapping(node, depth)


def _once(node: yaml.Node) -> None:
    """An alias makes the composer reuse a node: the precise loader limits what it expands."""
    if getattr(node, "_seen", False):
        raise _Unusual
    node._seen = True  # type: ignore[attr-defined] # our own mark on a node of this parse


def _mapping(node: yaml.Node, depth: int) -> dict[str, Any]:
    _once(node)
    out: dict[str, Any] = {}
    for key, child in node.value:
        name = _key(key)
        if name in out:
            raise _Unusual
        out[name] = _value(child, depth + 1)
    return out


def _key(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode) or (node.tag == _STR and not node.style):
        raise _Unusual
    if node.tag != _STR and not isinstance(_resolve(node.value), str):
        raise _Unusual  # a key such as 1 or true: ruamel's str() of it is not the text
    return str(node.value)


def _at(path: str, mark: Any, *, block: bool = False) -> Location:
    if block:  # a block scalar's text starts on the line after its '|'
        return Location(path, mark.line + 2, 1)
    return Location(path, mark.line + 1, mark.column + 1)


def _positions(node: yaml.Node, path: str) -> dict[str, Location]:
    """What the precise loader's ``_positions`` finds: each key's value, one level down."""
    found: dict[str, Location] = {}
    intern = sys.intern  # the same few keys in every rule: one string each, not one a rule
    for key, value in node.value:
        name = intern(str(key.value))
        block = isinstance(value, yaml.ScalarNode) and value.style in ("|", ">")
        found[name] = _at(path, value.start_mark, block=block)
        if isinstance(value, yaml.MappingNode):
            for sub_key, sub in value.value:
                found[intern(f"{name}.{sub_key.value}")] = _at(path, sub.start_mark)
        elif isinstance(value, yaml.SequenceNode):
            for i, sub in enumerate(value.value):
                found[intern(f"{name}.{i}")] = _at(path, sub.start_mark)
    return found


def _compose(text: str) -> yaml.Node | None:
    composer = _Composer(text)
    try:
        root: yaml.Node | None = composer.get_single_node()
    except yaml.YAMLError:
        raise _Unusual from None
    finally:
        composer.dispose()
    return root


def fast_parse(text: str, path: str) -> list[ParsedRule] | None:
    """The rules of a plain, valid rule file; None when the precise loader must read it."""
    if _UNUSUAL.search(text):
        return None
    try:
        root = _compose(text)
        if root is None:
            return []
        return [_rule(item, path) for item in _items(root)]
    except (_Unusual, ValidationError):
        return None


def _items(root: yaml.Node) -> list[yaml.Node]:
    """The nodes of ``rules:``, the one key a plain rule file has."""
    if not isinstance(root, yaml.MappingNode) or len(root.value) != 1:
        raise _Unusual
    key, items = root.value[0]
    if _key(key) != "rules" or not isinstance(items, yaml.SequenceNode):
        raise _Unusual
    return list(items.value)


def _rule(item: yaml.Node, path: str) -> ParsedRule:
    if not isinstance(item, yaml.MappingNode):
        raise _Unusual
    data = _mapping(item, 2)
    return ParsedRule(
        spec=RULE_SPEC.validate_python(data),
        location=_at(path, item.start_mark),
        fingerprint=fingerprint(data),
        positions=_positions(item, path),
    )
