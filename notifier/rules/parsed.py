"""What reading a rule file yields — places, errors, parsed rules — shared by the precise loader
(``precise``, ruamel) and its fast paths (``lineyaml``, ``fastyaml``, libyaml)."""

from __future__ import annotations

import difflib
import hashlib
import json
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from notifier.rules.model import RuleSpec

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "Location",
    "ParsedFile",
    "ParsedRule",
    "Places",
    "RuleError",
    "did_you_mean",
    "fingerprint",
    "plain",
]

MAX_DEPTH = 50  # nested values, scalars included; a rule needs 5
MAX_INT_DIGITS = 100  # uint256 has 78


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


_SHAPES: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per set of keys rules use
_SHAPES_LIMIT = 10_000


class Places(Mapping[str, Location]):
    """A compiled rule's value places, kept compactly: rules share the tuple of their keys,
    and the lines and columns sit in one bytes object, 16 bits each when they fit, else 32
    (a dict of locations costs ≈ 1.6 KB a rule). A ``Location`` is built when one is asked
    for: to explain an error."""

    __slots__ = ("_coords", "_keys", "_path")

    def __init__(self, path: str, keys: tuple[str, ...], coords: bytes) -> None:
        self._path = path
        self._keys = keys
        self._coords = coords

    @classmethod
    def of(cls, found: Mapping[str, Location], path: str) -> Mapping[str, Location]:
        """``found`` compacted: places a parser found in the file at ``path``."""
        if isinstance(found, Places):
            return found
        keys = tuple(found)
        shared = _SHAPES.get(keys)
        if shared is None:
            shared = keys
            if len(_SHAPES) < _SHAPES_LIMIT:
                _SHAPES[keys] = keys
        numbers = [n for loc in found.values() for n in (loc.line, loc.col)]
        coords = array("H" if max(numbers, default=0) < 1 << 16 else "I", numbers)
        return cls(path, shared, coords.tobytes())

    def __getitem__(self, key: str) -> Location:
        try:
            i = 2 * self._keys.index(key)
        except ValueError:
            raise KeyError(key) from None
        wide = len(self._coords) > 4 * len(self._keys)
        numbers = memoryview(self._coords).cast("I" if wide else "H")
        return Location(self._path, numbers[i], numbers[i + 1])

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Places({dict(self)!r})"


@dataclass(frozen=True, slots=True)
class ParsedFile:
    path: Path
    digest: str
    rules: tuple[ParsedRule, ...] = ()
    errors: tuple[RuleError, ...] = ()


def plain(node: Any) -> Any:
    """Loaded YAML as plain dicts, lists and scalars (keys as strings)."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    for kind in (int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def fingerprint(item: Any, *, is_plain: bool = False) -> str:
    """A hash of the rule's data: unchanged text keeps its state on reload. ``is_plain``: the
    data is already plain dicts, lists and exact scalar types (``plain`` would copy it as is)."""
    data = item if is_plain else plain(item)
    try:
        raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits: orjson refuses it, json does not
        raw = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean X?"`` when a known word is close to ``word`` (any case), else ``""``."""
    by_folded = {k.casefold(): k for k in known}
    close = difflib.get_close_matches(word.casefold(), list(by_folded), n=1)
    return f"; did you mean {by_folded[close[0]]}?" if close else ""
