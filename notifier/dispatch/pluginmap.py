"""Which apprise plugin module serves which schema, read from the plugins' source text.

apprise learns its schemas by importing every module of ``apprise/plugins`` (~217, with
requests_oauthlib and others behind them: ~14 MB of RSS). This map is read without importing
any: for each module a full load would import, the ``protocol``/``secure_protocol`` class
attributes of its ``Notify…`` classes (literals, module constants, ``list(MAP.keys())``,
inherited from another plugin class). Anything else makes the map doubtful (``None``), and a
doubtful map means apprise's own full load.
"""

from __future__ import annotations

import ast
import bisect
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PluginMap", "module_entries", "plugin_map"]

# apprise's own filters: manager.PluginManager.load_modules (which directory entries it
# imports) and manager_plugins.NotificationManager.module_filter_re (which classes it takes).
_ENTRY = re.compile(r"^(?P<name>(?!base|_)[a-z0-9_]+)(\.py)?$", re.I)
_NOTIFY_CLASS = re.compile(r"^Notify(?!Base|Format|ImageSize|Type)[A-Za-z0-9]+$")
_ROOTS = {"NotifyBase", "URLBase"}  # their protocol and secure_protocol are None

# Each text is read with a "\n" in front: a pattern that starts with a literal is searched fast.
_CLASS = re.compile(r"\nclass\s+(\w+)\s*(?:\(([^)]*)\))?\s*:")
_ATTR = re.compile(r"\n    (protocol|secure_protocol)\s*(?::[^=\n]*)?=[ \t]*")
_DEDENT = re.compile(r"\n(?=[^\s#])")  # a line at column 0: the class body has ended
_SNIPPET_LINES = 40  # longest value we read after an ``=``


class _Doubt(Exception):
    """The source says something this reader does not evaluate."""


@dataclass(frozen=True, slots=True)
class PluginMap:
    """``schemas``: schema -> module name; ``entries``: the names a full load imports, in its
    order; ``modules``: module name -> the schemas it serves."""

    schemas: dict[str, str]
    entries: tuple[str, ...]
    modules: dict[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class _Class:
    """A ``Notify…`` class: its module, base class name, and the attributes it sets."""

    module: str
    base: str | None
    attrs: dict[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class _Body:
    """A class body: ``text[start:end]`` of one of its module's ``texts``."""

    text: str
    start: int
    end: int
    texts: list[str]

    def constant(self, name: str) -> ast.expr:
        """``name`` as the class body or, failing that, its module defines it."""
        assign = rf"{re.escape(name)}\s*(?::[^=\n]*)?=[ \t]*"
        found = re.compile(rf"\n    {assign}").search(self.text, self.start, self.end)
        if found:
            return _expression(self.text, found.end())
        module = re.compile(rf"\n{assign}")
        for text in self.texts:
            found = module.search(text)
            if found:
                return _expression(text, found.end())
        raise _Doubt(name)


def module_entries(directory: Path) -> tuple[str, ...]:
    """The module names apprise's full load imports from ``directory``, in its order."""
    names = (_ENTRY.match(entry) for entry in os.listdir(directory))
    return tuple(match.group("name") for match in names if match)


def _expression(text: str, start: int) -> ast.expr:
    """The Python expression that begins at ``start`` and may run over several lines."""
    end = start
    for _ in range(_SNIPPET_LINES):
        end = text.find("\n", end + 1)
        snippet = text[start : None if end < 0 else end]
        try:
            return ast.parse(snippet.strip(), mode="eval").body
        except SyntaxError:
            if end < 0:
                break
    raise _Doubt(text[start : start + 40])


def _texts(path: Path) -> list[str]:
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return ["\n" + file.read_text(encoding="utf-8") for file in files]


def _schemas(node: ast.expr, body: _Body, depth: int = 0) -> set[str]:
    """The schemas the value ``node`` (written in the class ``body``) names."""
    if depth > 4:
        raise _Doubt("nested too deep")
    match node:
        case ast.Constant(value=str() as schema):
            return {schema}
        case ast.Constant(value=None):
            return set()
        case ast.Tuple(elts=items) | ast.List(elts=items) | ast.Set(elts=items):
            return set().union(*(_schemas(item, body, depth + 1) for item in items))
        case ast.Name(id=name):
            return _schemas(body.constant(name), body, depth + 1)
        case ast.Call(
            func=ast.Name(id="list" | "tuple" | "set"),
            args=[ast.Call(func=ast.Attribute(value=ast.Name(id=name), attr="keys"), args=[])],
        ):
            table = body.constant(name)
            if not isinstance(table, ast.Dict) or None in table.keys:
                raise _Doubt(name)
            keys = (key for key in table.keys if key is not None)
            return set().union(*(_schemas(key, body, depth + 1) for key in keys))
    raise _Doubt(ast.dump(node)[:60])


def _attribute(name: str, attr: str, classes: dict[str, _Class], depth: int = 0) -> set[str]:
    """``attr`` of class ``name`` as Python finds it: its own, else its base's."""
    if name in _ROOTS:
        return set()
    found = classes.get(name)
    if found is None or depth > 8:
        raise _Doubt(name)
    if attr in found.attrs:
        return set(found.attrs[attr])
    if found.base is None:
        return set()
    return _attribute(found.base, attr, classes, depth + 1)


def _end(text: str, start: int) -> int:
    dedent = _DEDENT.search(text, start)
    return dedent.start() if dedent else len(text)


def _classes(module: str, texts: list[str]) -> dict[str, _Class]:
    """The ``Notify…`` classes one module's source defines (read, then let go of the text:
    memory a process frees is seldom given back)."""
    classes: dict[str, _Class] = {}
    for text in texts:
        heads = list(_CLASS.finditer(text))
        starts = [head.start() for head in heads]
        ends = [_end(text, head.end()) for head in heads]
        found: list[dict[str, re.Match[str]]] = [{} for _ in heads]
        for attr in _ATTR.finditer(text):
            at = bisect.bisect_right(starts, attr.start()) - 1
            if at >= 0 and attr.start() < ends[at]:
                found[at][attr.group(1)] = attr
        for at, head in enumerate(heads):
            name, bases = head.group(1), (head.group(2) or "").strip()
            if not _NOTIFY_CLASS.match(name):
                continue
            if name in classes or "," in bases:
                raise _Doubt(name)
            body = _Body(text, head.end(), ends[at], texts)
            attrs = {
                key: frozenset(_schemas(_expression(text, match.end()), body))
                for key, match in found[at].items()
            }
            classes[name] = _Class(module, bases.rpartition(".")[2] or None, attrs)
    return classes


def _read(directory: Path, entries: tuple[str, ...]) -> PluginMap:
    classes: dict[str, _Class] = {}
    for module in entries:
        path = directory / module if (directory / module).is_dir() else directory / f"{module}.py"
        for name, found in _classes(module, _texts(path)).items():
            if classes.setdefault(name, found) is not found:
                raise _Doubt(name)
    modules: dict[str, set[str]] = {module: set() for module in entries}
    for name, found in classes.items():
        if found.base is None:  # a plain helper class (NotifyBarkLevel…), not a plugin
            continue
        for attr in ("protocol", "secure_protocol"):
            modules[found.module] |= _attribute(name, attr, classes)
    schemas: dict[str, str] = {}
    for module, served in modules.items():
        for schema in served:
            if schemas.setdefault(schema, module) != module:
                raise _Doubt(f"{schema} in {module} and {schemas[schema]}")
    return PluginMap(schemas, entries, {m: frozenset(s) for m, s in modules.items()})


@functools.cache
def plugin_map(directory: str, version: str) -> PluginMap | None:
    """The map of apprise ``version``'s plugins in ``directory``; None when in doubt."""
    del version  # part of the cache key: one apprise per process, but say which
    try:
        path = Path(directory)
        return _read(path, module_entries(path))
    except (_Doubt, OSError, UnicodeDecodeError, ValueError):
        return None
