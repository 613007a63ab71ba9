"""Jinja2 in a sandbox: rule expressions and message templates, compiled once at load.

The sandbox refuses attribute access to internals and changes to lists and dicts (Jinja's
``ImmutableSandboxedEnvironment``) and, on top of that, bounds the work one evaluation can do:
ranges, repetitions, powers, format widths and the size of any value a call, filter or ``set``
produces are capped, a render runs at most ``MAX_STEPS`` loop iterations and produces at most
``MAX_SIZE`` characters, and loops may nest two deep at most. Statements that could recurse or
buffer without bound (macros, call/filter/set blocks, template blocks, includes, imports,
recursive loops) are refused when the rule loads.

Conditions made only of comparisons, boolean logic, arithmetic, constant subscripts and
``is none`` are evaluated by plain Python closures instead of Jinja's render machinery, with the
same results (see "native expressions" below); everything else runs through Jinja.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache, wraps
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.optimizer import optimize
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer

__all__ = [
    "MAX_RANGE",
    "MAX_SIZE",
    "MAX_STEPS",
    "Expression",
    "SandboxError",
    "Template",
    "compile_expression",
    "compile_template",
]

MAX_RANGE = 1_000
MAX_SIZE = 10_000  # characters of a string, items of a list, 64-bit words of an integer
MAX_STEPS = 100_000  # loop iterations per render
MAX_LOOP_DEPTH = 2
MAX_WIDTH = 9_999  # format widths and precisions
_WIDTH_FILTERS = frozenset(
    {"center", "indent", "wordwrap", "truncate", "round", "slice", "batch", "filesizeformat"}
)
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
_REFUSED_STATEMENTS: dict[type[nodes.Node], str] = {
    nodes.Macro: "macros",
    nodes.CallBlock: "call blocks",
    nodes.Block: "template blocks",
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "import",
    nodes.AssignBlock: "set blocks ({% set x %}…{% endset %})",
    nodes.FilterBlock: "filter blocks",
}
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_steps: ContextVar[list[int]] = ContextVar("sandbox_steps")


class SandboxError(Exception):
    """An expression or template was refused; ``line`` is 1-based within its source."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _units(value: Any, limit: int = MAX_SIZE) -> int:
    """Deep size of a value (characters, items, 64-bit words), counted up to just past ``limit``."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or not isinstance(item, int | list | tuple | set | dict):
            total += 1
        elif isinstance(item, int):
            total += 1 + item.bit_length() // 64
        elif isinstance(item, dict):
            total += 1
            stack += [*item.keys(), *item.values()]
        else:
            total += 1
            stack += item
    return total


def _check_size(value: Any) -> Any:
    if _units(value) > MAX_SIZE:
        raise SecurityError(f"a value larger than {MAX_SIZE} characters or items is refused")
    return value


def _refuse_above(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise SecurityError(f"{what} larger than {MAX_SIZE} characters or items is refused")


def _check_widths(values: Iterable[Any]) -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE:
            raise SecurityError(f"a width or count above {MAX_SIZE} is refused")


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise SecurityError(f"range larger than {MAX_RANGE} is refused")
    return rng


def _bounded_round(number: Any, ndigits: int | None = None) -> Any:
    _check_widths((ndigits,))
    return round(number, ndigits)


def _check_format(template: Any) -> None:
    """Refuse printf and ``str.format`` widths above ``MAX_WIDTH`` and widths taken from args."""
    if not isinstance(template, str):
        return
    for match in _PERCENT_SPEC.finditer(template.replace("%%", "")):
        for number in match.groups():
            if number == "*":
                raise SecurityError("a '*' width in a format string is refused")
            if number is not None and int(number) > MAX_WIDTH:
                raise SecurityError(f"format width above {MAX_WIDTH} is refused")
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # not a str.format template; formatting it would fail on its own
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise SecurityError("a nested width in a format string is refused")
        if spec and any(int(n) > MAX_WIDTH for n in re.findall(r"\d+", spec)):
            raise SecurityError(f"format width above {MAX_WIDTH} is refused")


def _as_sized(items: Any) -> Any:
    """An iterable as something with a length, refusing more than ``MAX_SIZE`` items early."""
    if isinstance(items, Sized) or not isinstance(items, Iterable):
        return items
    taken = list(itertools.islice(items, MAX_SIZE + 1))
    _refuse_above(len(taken), "a sequence")
    return taken


def _check_method(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Estimate what a string method would build before it builds it; returns its args."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, str):
        return args
    name = getattr(method, "__name__", "")
    values = (*args, *kwargs.values())
    if name in _PADDING_METHODS or name == "expandtabs":
        _check_widths(values)
    if name == "expandtabs":
        tab = values[0] if values and isinstance(values[0], int) else 8
        _refuse_above(len(owner) + owner.count("\t") * max(tab, 0), "a result")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        _refuse_above(_replaced_size(owner, args[0], args[1], *args[2:3]), "a result")
    elif name == "join" and args:
        args = (_as_sized(args[0]), *args[1:])
        if isinstance(args[0], Sized):
            _refuse_above(len(owner) * len(args[0]) + _units(args[0]), "a result")
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        _refuse_above(len(owner) * max(longest, 1), "a result")
    return args


def _replaced_size(text: str, old: str, new: Any, count: Any = -1) -> int:
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(str(new)) - len(old))


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 1 if _PassArg.from_obj(func) is not None else 0

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        value, rest = (args[skip], args[skip + 1 :]) if len(args) > skip else (None, ())
        if name in _WIDTH_FILTERS:
            _check_widths((*rest, *kwargs.values()))
        if name == "format":
            _check_format(value)
        elif name == "replace" and isinstance(value, str) and len(rest) >= 2:
            _refuse_above(_replaced_size(value, str(rest[0]), rest[1], *rest[2:3]), "a result")
        elif name == "join" and value is not None:
            value = _as_sized(value)
            args = (*args[:skip], value, *rest)
            separator = rest[0] if rest else kwargs.get("d", "")
            if isinstance(value, Sized):
                _refuse_above(len(str(separator)) * len(value) + _units(value), "a result")
        elif name == "indent" and isinstance(value, str):
            width = rest[0] if rest else kwargs.get("width", 4)
            pad = width if isinstance(width, int) else len(str(width))
            _refuse_above(len(value) + (value.count("\n") + 1) * max(pad, 0), "a result")
        return _check_size(func(*args, **kwargs))

    return wrapper


def _mul(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        if (left.bit_length() + right.bit_length()) // 64 > MAX_SIZE:
            raise SecurityError(f"an integer larger than {MAX_SIZE * 64} bits is refused")
        return left * right
    for seq, count in ((left, right), (right, left)):
        if isinstance(count, int) and not isinstance(seq, int | float):
            _refuse_above(_units(seq) * max(count, 0), "a repetition")
    return left * right


def _pow(left: Any, right: Any) -> Any:
    whole = isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
    if whole and left.bit_length() * right // 64 > MAX_SIZE:
        raise SecurityError(f"an integer larger than {MAX_SIZE * 64} bits is refused")
    return left**right


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """A loop's iterable, charged against the render's ``MAX_STEPS`` budget."""
    budget = _steps.get(None) or [MAX_STEPS]
    for item in iterable:
        budget[0] -= 1
        if budget[0] < 0:
            raise SecurityError(f"more than {MAX_STEPS} loop iterations are refused")
        yield item


class _Sandbox(ImmutableSandboxedEnvironment):
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
        args = _check_method(__obj, args, kwargs)
        return _check_size(super().call(__context, __obj, *args, **kwargs))


def _make_environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.globals = {
        "range": _bounded_range,
        "min": min,
        "max": max,
        "abs": abs,
        "round": _bounded_round,
        "log10": math.log10,
    }
    env.filters = {name: _bounded_filter(name, f) for name, f in env.filters.items()}
    env.filters["_counted"] = _counted
    env.filters["_sized"] = _check_size
    env.tests["between"] = lambda value, low, high: low <= value <= high
    return env


_ENV = _make_environment()


class _Bound(NodeTransformer):
    """Rewrites a template so loops draw on the step budget and assigned values are sized."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filtered(node.iter, "_counted")
        return node

    def visit_Assign(self, node: nodes.Assign) -> nodes.Node:
        self.generic_visit(node)
        node.node = _filtered(node.node, "_sized")
        return node

    def visit_With(self, node: nodes.With) -> nodes.Node:
        self.generic_visit(node)
        node.values = [_filtered(value, "_sized") for value in node.values]
        return node


def _filtered(expr: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(expr, name, [], [], None, None, lineno=expr.lineno)


def _loop_depth(node: nodes.Node, depth: int = 0) -> int:
    here = depth + 1 if isinstance(node, nodes.For) else depth
    return max([here, *(_loop_depth(child, here) for child in node.iter_child_nodes())])


def _refused(tree: nodes.Template) -> None:
    for node in tree.find_all((nodes.Stmt,)):
        what = _REFUSED_STATEMENTS.get(type(node))
        if what is None and isinstance(node, nodes.For) and node.recursive:
            what = "recursive loops"
        if what is not None:
            raise SandboxError(f"{what} are not allowed in rule templates", node.lineno)


@contextmanager
def _loading() -> Iterator[None]:
    """Compile-time errors as ``SandboxError``. Jinja folds constant parts while it compiles,
    so ``0['k'] and price`` already fails here (an undefined), not only when evaluated."""
    try:
        yield
    except SandboxError:
        raise
    except TemplateSyntaxError as exc:
        raise SandboxError(exc.message or "syntax error", exc.lineno) from None
    except SecurityError as exc:
        raise SandboxError(f"refused: {exc}") from None
    except Exception as exc:
        raise SandboxError(f"{type(exc).__name__}: {exc}") from None


def _parse(source: str, *, known: Iterable[str] | None) -> nodes.Template:
    with _loading():
        tree = _ENV.parse(source)
        _refused(tree)
        if _loop_depth(tree) > MAX_LOOP_DEPTH:
            raise SandboxError(f"loops may nest {MAX_LOOP_DEPTH} deep at most")
        if known is not None:
            undeclared = meta.find_undeclared_variables(tree)
            unknown = sorted(undeclared - set(known) - set(_ENV.globals))
            if unknown:
                raise SandboxError(f"unknown variable(s): {', '.join(unknown)}")
    return tree


def _check_expression_syntax(source: str) -> None:
    """Syntax errors of a bare condition, in its own terms: checked before it is wrapped in
    ``{{ }}``, whose closing braces Jinja would otherwise name as what it did not expect."""
    try:
        parser = Parser(_ENV, source, state="variable")
        parser.parse_expression()
    except TemplateSyntaxError as exc:
        message = (exc.message or "syntax error").replace("'end of template'", "end of template")
        raise SandboxError(
            message.replace("end of template", "end of expression"), exc.lineno
        ) from None
    if not parser.stream.eos:
        token = parser.stream.current
        raise SandboxError(f"unexpected {token.value!r} after the expression", token.lineno)


# -- native expressions ----------------------------------------------------------------------
#
# Most conditions are comparisons and boolean logic over variables and constants. Those are
# compiled from the same (constant-folded) Jinja tree into nested Python closures that apply the
# very operations Jinja's generated code applies: names resolve to the value or a
# ``StrictUndefined``, ``*`` and ``%`` go through the sandbox's bounds, a subscript through the
# sandbox's ``getitem``. Anything else (filters, calls, attributes, ``**``, ``~``, other tests)
# keeps the whole expression on the Jinja path, so nothing outside this small set is reachable.

Evaluator = Callable[[Mapping[str, Any]], Any]


class _NotNative(Exception):
    """The expression uses something only the Jinja path evaluates."""


def _mod(left: Any, right: Any) -> Any:
    _check_format(left)
    return left % right


def _in(left: Any, right: Any) -> Any:
    return left in right


def _not_in(left: Any, right: Any) -> Any:
    return left not in right


_BINARY: dict[type[nodes.BinExpr], Callable[[Any, Any], Any]] = {
    nodes.Add: operator.add,
    nodes.Sub: operator.sub,
    nodes.Div: operator.truediv,
    nodes.FloorDiv: operator.floordiv,
    nodes.Mul: _mul,  # what the sandbox's call_binop does for these two
    nodes.Mod: _mod,
}
_UNARY: dict[type[nodes.UnaryExpr], Callable[[Any], Any]] = {
    nodes.Neg: operator.neg,
    nodes.Pos: operator.pos,
    nodes.Not: operator.not_,
}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lteq": operator.le,
    "gt": operator.gt,
    "gteq": operator.ge,
    "in": _in,
    "notin": _not_in,
}
_MISSING: Any = object()


def _is_scalar_constant(value: Any) -> bool:
    """Values Jinja's generated code reproduces as literals (``inf`` and ``nan`` it cannot)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, bool | int | str)


def _native_expression(source: str) -> Evaluator | None:
    """A closure evaluating ``source`` exactly as Jinja does, or None if it needs Jinja.

    Parsed and constant-folded as ``compile_expression`` does; if either fails, None too, so
    that Jinja's own compilation reports the error, word for word.
    """
    try:
        parser = Parser(_ENV, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            return None
        expr.set_environment(_ENV)
        return _native(optimize(expr, _ENV))
    except Exception:  # _NotNative, or an error compile_expression raises too
        return None


def _native(node: nodes.Node) -> Evaluator:  # noqa: PLR0911 - one return per node type
    if isinstance(node, nodes.Const):
        return _constant(node.value)
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name != "self":
        return _name(node.name)
    if isinstance(node, nodes.And | nodes.Or):
        left, right = _native(node.left), _native(node.right)
        if isinstance(node, nodes.And):
            return lambda v: left(v) and right(v)
        return lambda v: left(v) or right(v)
    if type(node) in _BINARY:
        assert isinstance(node, nodes.BinExpr)
        return _binary(node)
    if type(node) in _UNARY:
        assert isinstance(node, nodes.UnaryExpr)
        unary, operand = _UNARY[type(node)], _native(node.node)
        return lambda v: unary(operand(v))
    if isinstance(node, nodes.Compare):
        return _compare(node)
    if isinstance(node, nodes.CondExpr):
        return _conditional(node)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        _constant(node.arg.value)  # only a key Jinja can write as a literal
        obj, key, getitem = _native(node.node), node.arg.value, _ENV.getitem
        return lambda v: getitem(obj(v), key)
    if isinstance(node, nodes.Test) and node.name == "none" and _no_arguments(node):
        operand = _native(node.node)
        return lambda v: operand(v) is None
    raise _NotNative(type(node).__name__)


def _constant(value: Any) -> Evaluator:
    """A literal; also a folded tuple or list of scalars, as in ``status in ('A', 'B')``."""
    items = value if isinstance(value, tuple | list) else (value,)
    if not all(_is_scalar_constant(item) for item in items):
        raise _NotNative("constant")
    if isinstance(value, list):  # Jinja builds a new list on every evaluation
        return lambda v: list(value)
    return lambda v: value


def _name(name: str) -> Evaluator:
    fallback = _ENV.globals.get(name, _MISSING)  # variables shadow globals, as in Jinja
    undefined = _ENV.undefined

    def load(variables: Mapping[str, Any]) -> Any:
        value = variables.get(name, fallback)
        return undefined(name=name) if value is _MISSING else value

    return load


def _binary(node: nodes.BinExpr) -> Evaluator:
    if isinstance(node, nodes.Mul | nodes.Mod) and any(
        isinstance(side, nodes.Const) and isinstance(side.value, str)
        for side in (node.left, node.right)
    ):
        raise _NotNative("string repetition or formatting")
    binary, left, right = _BINARY[type(node)], _native(node.left), _native(node.right)
    return lambda v: binary(left(v), right(v))


def _compare(node: nodes.Compare) -> Evaluator:
    first = _native(node.expr)
    ops = [(_COMPARE[op.op], _native(op.expr)) for op in node.ops]
    if len(ops) == 1:
        [(compare, second)] = ops
        return lambda v: compare(first(v), second(v))

    def chain(variables: Mapping[str, Any]) -> Any:
        left = first(variables)
        result: Any = True
        for compare, operand in ops:  # like Python's a < b < c: b evaluated once
            right = operand(variables)
            result = compare(left, right)
            if not result:
                return result
            left = right
        return result

    return chain


def _conditional(node: nodes.CondExpr) -> Evaluator:
    test, then = _native(node.test), _native(node.expr1)
    if node.expr2 is not None:
        otherwise = _native(node.expr2)
    else:  # Jinja's implicit else: a plain (not strict) Undefined with this hint
        hint = (
            f"the inline if-expression on line {node.lineno} evaluated to false and no else"
            " section was defined."
        )
        otherwise = lambda v: Undefined(hint)  # noqa: E731
    return lambda v: then(v) if test(v) else otherwise(v)


def _no_arguments(node: nodes.Test) -> bool:
    return not (node.args or node.kwargs or node.dyn_args or node.dyn_kwargs)


class Expression:
    """A compiled condition such as ``price > 200 and hops == 1``.

    Conditions within the native subset (see ``_native``) are evaluated by plain closures, an
    order of magnitude faster than Jinja's render machinery and with the same results;
    ``native=False`` forces the Jinja path (the parity tests compare both).
    """

    __slots__ = ("_compiled", "native", "source")

    def __init__(
        self, source: str, *, known: Iterable[str] | None = None, native: bool = True
    ) -> None:
        self.source = source
        _check_expression_syntax(source)
        _parse("{{ " + source + " }}", known=known)
        closure = _native_expression(source) if native else None
        self.native = closure is not None
        if closure is None:
            with _loading():
                closure = _ENV.compile_expression(source, undefined_to_none=False)
        self._compiled: Evaluator = closure

    def __call__(self, variables: Mapping[str, Any]) -> Any:
        """Evaluate; raises ``SandboxError`` for a refused operation or a runtime error."""
        try:
            result = self._compiled(variables)
            if isinstance(result, Undefined):
                bool(result)  # a strict undefined (a missing key, an unsafe attribute) raises
        except SecurityError as exc:
            raise SandboxError(f"refused: {exc}") from None
        except Exception as exc:
            raise SandboxError(f"{type(exc).__name__}: {exc}") from None
        return result


class Template:
    """A compiled message template such as ``SOL at {{ price | round(2) }}``."""

    __slots__ = ("_template", "source")

    def __init__(self, source: str, *, known: Iterable[str] | None = None) -> None:
        self.source = source
        tree = _Bound().visit(_parse(source, known=known))
        tree.set_environment(_ENV)
        with _loading():
            self._template = _ENV.from_string(tree)

    def render(self, variables: Mapping[str, Any]) -> str:
        """Render piece by piece, so an oversized output is refused before it is built."""
        budget = _steps.set([MAX_STEPS])
        try:
            size = 0
            parts = []
            for piece in self._template.generate(variables):
                size += len(piece)
                _refuse_above(size, "a message")
                parts.append(piece)
            return "".join(parts)
        except SecurityError as exc:
            raise SandboxError(f"refused: {exc}") from None
        except Exception as exc:
            raise SandboxError(f"{type(exc).__name__}: {exc}") from None
        finally:
            _steps.reset(budget)


def compile_expression(source: str, known: Iterable[str] | None = None) -> Expression:
    return _expression(source, None if known is None else frozenset(known))


def compile_template(source: str, known: Iterable[str] | None = None) -> Template:
    return _template(source, None if known is None else frozenset(known))


# Compiled objects are stateless, so rules sharing a source (every default title of a kind)
# share one compilation: a reload of hundreds of rules compiles each distinct text once.
@lru_cache(maxsize=4096)
def _expression(source: str, known: frozenset[str] | None) -> Expression:
    return Expression(source, known=known)


@lru_cache(maxsize=4096)
def _template(source: str, known: frozenset[str] | None) -> Template:
    return Template(source, known=known)
