"""The fastest path of reading a rule file: one rule key a line, read by a few regexes.

Generated and hand-written rule files are mostly ``rules:`` followed by items whose keys each
hold one value on one line: a plain word or number, a quoted string, or a flow mapping or
list of such (``pair: {in: SOL, out: USDC}``, ``notify: [desk]``). That shape is read here
without composing YAML nodes; plain scalars are resolved by YAML 1.2 as ``fastyaml`` resolves
them. Anything else — a comment after a value, a block scalar, a ``:`` or ``#`` in a plain
value, a value continued on the next line, odd indentation, non-ASCII text, a rule that fails
validation — answers None, and the libyaml path (then the precise loader) reads the file.
``tests/test_rules_lineyaml.py`` holds it to the libyaml and ruamel results.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from pydantic import ValidationError

from notifier.rules.fastyaml import UNREAD, resolve_plain
from notifier.rules.model import RULE_SPEC
from notifier.rules.parsed import Location, ParsedRule, fingerprint

__all__ = ["line_parse"]

_KEY = r"[A-Za-z_][A-Za-z0-9_]*"
_ITEM = re.compile(rf"( *)-( +)({_KEY}):( +)(\S.*?) *")
_ENTRY = re.compile(rf"( *)({_KEY}):( +)(\S.*?) *")
_SKIP = re.compile(r" *(?:#.*)?")  # a blank or comment-only line
# A plain scalar these parsers agree on: no indicator first, no ':' or '#' or flow characters.
_PLAIN = re.compile(r"(?:[A-Za-z0-9_.+(~$/=<]|-(?=[0-9.]))[^:#,\[\]{}]*")
_SINGLE = re.compile(r"'((?:[^']|'')*)'")
_DOUBLE = re.compile(r'"([^"\\]*)"')
_FLOW_PLAIN = re.compile(r"(?:[A-Za-z0-9_.+(~$/=<]|-(?=[0-9.]))[^:#,\[\]{}'\"]*")
_FLOW_KEY = re.compile(rf"({_KEY}): +")
_SEP = re.compile(r" *, *")


class _Unusual(Exception):
    """The text needs a fuller YAML reader."""


def _scalar(text: str, *, flow: bool = False) -> Any:
    """One scalar written whole in ``text`` (no surrounding spaces)."""
    first = text[:1]
    if first == "'":
        found = _SINGLE.fullmatch(text)
        if found is None:
            raise _Unusual
        return found.group(1).replace("''", "'")
    if first == '"':
        found = _DOUBLE.fullmatch(text)
        if found is None:
            raise _Unusual
        return found.group(1)
    if (_FLOW_PLAIN if flow else _PLAIN).fullmatch(text) is None:
        raise _Unusual
    value = resolve_plain(text)
    if value is UNREAD:
        raise _Unusual
    return value


_Place = tuple[str, int]  # the path, the 1-based line
_Flow = tuple[Any, tuple[tuple[str, int], ...]]  # the value; each entry's key or index, offset
_CACHE_LIMIT = 20_000
_flows: dict[str, _Flow] = {}  # flow text -> what it reads (the rules of a pair repeat it)


def _flow_text(text: str) -> _Flow:
    """A flow mapping ``{k: v, …}`` or list ``[v, …]`` of scalars, written on one line; its
    value and the offset of each entry's value in ``text``."""
    closing = "}" if text[0] == "{" else "]"
    if text[-1] != closing or len(text) < 3:
        raise _Unusual
    inner = text[1:-1]
    pos = len(inner) - len(inner.lstrip(" "))
    out_map: dict[str, Any] = {}
    out_list: list[Any] = []
    offsets: list[tuple[str, int]] = []
    while True:
        key = None
        if closing == "}":
            found = _FLOW_KEY.match(inner, pos)
            if found is None:
                raise _Unusual
            key, pos = found.group(1), found.end()
            if key in out_map or not isinstance(resolve_plain(key), str):
                raise _Unusual
        sep = _SEP.search(inner, pos)
        end = sep.start() if sep else len(inner.rstrip(" "))
        value = _scalar(inner[pos:end], flow=True)
        offsets.append((key if key is not None else str(len(out_list)), pos + 1))
        if key is not None:
            out_map[key] = value
        else:
            out_list.append(value)
        if sep is None:
            if inner[end:].strip(" "):
                raise _Unusual
            break
        pos = sep.end()
        if pos >= len(inner):
            raise _Unusual  # a trailing comma
    return (out_map if closing == "}" else out_list), tuple(offsets)


def _flow(text: str, col: int, name: str, places: dict[str, Location], at: _Place) -> Any:
    found = _flows.get(text)
    if found is None:
        found = _flow_text(text)
        if len(_flows) > _CACHE_LIMIT:
            _flows.clear()
        _flows[text] = found
    value, offsets = found
    intern = sys.intern
    for sub, offset in offsets:
        places[intern(f"{name}.{sub}")] = Location(at[0], at[1], col + offset + 1)
    return value.copy()  # each rule its own: what a parse of its text gives


def _value(text: str, col: int, name: str, places: dict[str, Location], at: _Place) -> Any:
    if text[0] in "{[":
        return _flow(text, col, name, places, at)
    return _scalar(text)


_Entry = tuple[int, int, str, str]  # line, value column (0-based), key, value text


def _blocks(lines: list[str]) -> tuple[int, list[list[_Entry]]]:
    """The column of the rules' keys, and each rule's entries."""
    rules: list[list[_Entry]] = []
    seen_rules = False
    dash = indent = -1
    for number, line in enumerate(lines):
        entry = _ENTRY.fullmatch(line) if seen_rules else None  # most lines: one key
        if entry is not None:
            if not rules or len(entry.group(1)) != indent:
                raise _Unusual
            _, key, between, value = entry.groups()
            rules[-1].append((number, indent + len(key) + 1 + len(between), key, value))
            continue
        if _SKIP.fullmatch(line):
            continue
        if not seen_rules:
            if line.rstrip(" ") != "rules:":
                raise _Unusual
            seen_rules = True
            continue
        item = _ITEM.fullmatch(line)
        if item is not None:
            spaces, gap, key, between, value = item.groups()
            if dash == -1:
                dash, indent = len(spaces), len(spaces) + 1 + len(gap)
            elif len(spaces) != dash or len(spaces) + 1 + len(gap) != indent:
                raise _Unusual
            rules.append([(number, indent + len(key) + 1 + len(between), key, value)])
            continue
        raise _Unusual
    if not rules:
        raise _Unusual
    return indent, rules


def line_parse(text: str, path: str) -> list[ParsedRule] | None:
    """The rules of a plain, valid one-value-a-line rule file; None when a fuller reader must
    read it."""
    if not text.isascii() or "\r" in text or "\t" in text:
        return None
    lines = text.split("\n")
    if not all(line.isprintable() for line in lines):
        return None
    try:
        indent, blocks = _blocks(lines)
        return [_rule(block, indent, path) for block in blocks]
    except (_Unusual, ValidationError):
        return None


def _rule(block: list[_Entry], indent: int, path: str) -> ParsedRule:
    data: dict[str, Any] = {}
    places: dict[str, Location] = {}
    intern = sys.intern
    for number, col, key, value in block:
        if key in data or not isinstance(resolve_plain(key), str):
            raise _Unusual
        name = intern(key)
        places[name] = Location(path, number + 1, col + 1)
        data[name] = _value(value, col, name, places, (path, number + 1))
    spec = RULE_SPEC.validate_python(data)
    return ParsedRule(
        spec=spec,
        location=Location(path, block[0][0] + 1, indent + 1),
        fingerprint=fingerprint(data, is_plain=True),
        positions=places,
    )
