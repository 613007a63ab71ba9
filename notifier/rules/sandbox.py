"""Jinja2 in a sandbox: rule expressions and message templates, compiled once at load.

The sandbox refuses attribute access to internals (Jinja's ``SandboxedEnvironment``) and, on
top of that, bounds the work one evaluation can do: ranges, repetitions, powers and the size of
any string or list a call or filter produces are capped, and loops may nest two deep at most.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sized
from functools import wraps
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "MAX_RANGE",
    "MAX_SIZE",
    "Expression",
    "SandboxError",
    "Template",
    "compile_expression",
    "compile_template",
]

MAX_RANGE = 1_000
MAX_SIZE = 10_000
MAX_LOOP_DEPTH = 2
MAX_EXPONENT = 64
_WIDE_FORMAT = re.compile(r"\d{5,}")  # a width or precision of 10,000+ in a format string
_WIDTH_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "filesizeformat"})


class SandboxError(Exception):
    """An expression or template was refused; ``line`` is 1-based within its source."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _check_size(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple | dict) and len(value) > MAX_SIZE:
        raise SecurityError(f"result larger than {MAX_SIZE} items is refused")
    return value


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise SecurityError(f"range larger than {MAX_RANGE} is refused")
    return rng


def _check_format(template: Any) -> None:
    if isinstance(template, str) and _WIDE_FORMAT.search(template):
        raise SecurityError("format width above 9999 is refused")


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    width_args = name in _WIDTH_FILTERS

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if width_args and any(
            isinstance(a, int) and a > MAX_SIZE for a in (*args[1:], *kwargs.values())
        ):
            raise SecurityError(f"width above {MAX_SIZE} is refused")
        if name == "format" and args:
            _check_format(args[0])
        return _check_size(func(*args, **kwargs))

    return wrapper


def _mul(left: Any, right: Any) -> Any:
    for seq, count in ((left, right), (right, left)):
        if (
            isinstance(seq, Sized)
            and isinstance(count, int)
            and len(seq) * max(count, 0) > MAX_SIZE
        ):
            raise SecurityError(f"repetition larger than {MAX_SIZE} items is refused")
    return left * right


def _pow(left: Any, right: Any) -> Any:
    if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
        raise SecurityError(f"exponent above {MAX_EXPONENT} is refused")
    return left**right


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            return _mul(left, right)
        if operator_ == "**":
            return _pow(left, right)
        if operator_ == "%":
            _check_format(left)
        return super().call_binop(context, operator_, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format(value.__self__)
        return wrapped

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        return _check_size(super().call(__context, __obj, *args, **kwargs))


def _make_environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.globals = {
        "range": _bounded_range,
        "min": min,
        "max": max,
        "abs": abs,
        "round": round,
        "log10": math.log10,
    }
    env.filters = {name: _bounded_filter(name, f) for name, f in env.filters.items()}
    env.tests["between"] = lambda value, low, high: operator.le(low, value) <= high
    return env


_ENV = _make_environment()


def _loop_depth(node: nodes.Node, depth: int = 0) -> int:
    here = depth + 1 if isinstance(node, nodes.For) else depth
    return max([here, *(_loop_depth(child, here) for child in node.iter_child_nodes())])


def _parse(source: str, *, known: Iterable[str] | None) -> nodes.Template:
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise SandboxError(exc.message or "syntax error", exc.lineno) from None
    if _loop_depth(tree) > MAX_LOOP_DEPTH:
        raise SandboxError(f"loops may nest {MAX_LOOP_DEPTH} deep at most")
    if known is not None:
        unknown = sorted(meta.find_undeclared_variables(tree) - set(known) - set(_ENV.globals))
        if unknown:
            raise SandboxError(f"unknown variable(s): {', '.join(unknown)}")
    return tree


class Expression:
    """A compiled condition such as ``price > 200 and hops == 1``."""

    __slots__ = ("_compiled", "source")

    def __init__(self, source: str, *, known: Iterable[str] | None = None) -> None:
        self.source = source
        _parse("{{ " + source + " }}", known=known)
        try:
            self._compiled = _ENV.compile_expression(source, undefined_to_none=False)
        except TemplateSyntaxError as exc:
            raise SandboxError(exc.message or "syntax error", exc.lineno) from None

    def __call__(self, variables: Mapping[str, Any]) -> Any:
        """Evaluate; raises ``SandboxError`` for a refused operation or a runtime error."""
        try:
            return self._compiled(variables)
        except SecurityError as exc:
            raise SandboxError(f"refused: {exc}") from None
        except Exception as exc:
            raise SandboxError(f"{type(exc).__name__}: {exc}") from None


class Template:
    """A compiled message template such as ``SOL at {{ price | round(2) }}``."""

    __slots__ = ("_template", "source")

    def __init__(self, source: str, *, known: Iterable[str] | None = None) -> None:
        self.source = source
        _parse(source, known=known)
        self._template = _ENV.from_string(source)

    def render(self, variables: Mapping[str, Any]) -> str:
        try:
            return _check_size(self._template.render(variables))  # type: ignore[no-any-return]
        except SecurityError as exc:
            raise SandboxError(f"refused: {exc}") from None
        except Exception as exc:
            raise SandboxError(f"{type(exc).__name__}: {exc}") from None


def compile_expression(source: str, known: Iterable[str] | None = None) -> Expression:
    return Expression(source, known=known)


def compile_template(source: str, known: Iterable[str] | None = None) -> Template:
    return Template(source, known=known)
