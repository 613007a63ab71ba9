"""Native evaluation of simple rule conditions: plain Python closures, same results as Jinja."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.optimizer import optimize
from jinja2.parser import Parser

from notifier.rules.bounds import ENV, bounded_mul, check_format
from notifier.rules.windowfns import PAIR_FUNCTIONS

__all__ = ["Evaluator", "native_expression", "native_node"]

# Most conditions are comparisons and boolean logic over variables and constants. Those are
# compiled from the same (constant-folded) Jinja tree into nested Python closures that apply the
# very operations Jinja's generated code applies: names resolve to the value or a
# ``StrictUndefined``, ``*`` and ``%`` go through the sandbox's bounds, a subscript through the
# sandbox's ``getitem``; a history function (``pct_change('1h')``) is a plain call. Anything
# else (filters, other calls, attributes, ``**``, ``~``, other tests)
# keeps the whole expression on the Jinja path, so nothing outside this small set is reachable.

Evaluator = Callable[[Mapping[str, Any]], Any]


class _NotNative(Exception):
    """The expression uses something only the Jinja path evaluates."""


def _mod(left: Any, right: Any) -> Any:
    check_format(left)
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
    nodes.Mul: bounded_mul,  # what the sandbox's call_binop does for these two
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


def native_expression(source: str) -> Evaluator | None:
    """A closure evaluating ``source`` exactly as Jinja does, or None if it needs Jinja.

    Parsed and constant-folded as ``compile_expression`` does; if either fails, None too, so
    that Jinja's own compilation reports the error, word for word.
    """
    try:
        parser = Parser(ENV, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            return None
        expr.set_environment(ENV)
        return _native(optimize(expr, ENV))
    except Exception:  # _NotNative, or an error compile_expression raises too
        return None


def native_node(node: nodes.Node) -> Evaluator | None:
    """A closure for one (already parsed) expression node, or None if it needs Jinja."""
    try:
        return _native(node)
    except _NotNative:
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
        obj, key, getitem = _native(node.node), node.arg.value, ENV.getitem
        return lambda v: getitem(obj(v), key)
    if isinstance(node, nodes.Call):
        return _history_call(node)
    if isinstance(node, nodes.Test) and node.name == "none" and _no_arguments(node):
        operand = _native(node.node)
        return lambda v: operand(v) is None
    raise _NotNative(type(node).__name__)


def _history_call(node: nodes.Call) -> Evaluator:
    """A window function with literal arguments, such as ``pct_change('1h')``: a plain call,
    as Jinja's sandbox makes it (they are safe callables returning a number or none)."""
    if not (
        isinstance(node.node, nodes.Name)
        and node.node.name in PAIR_FUNCTIONS
        and not (node.kwargs or node.dyn_args or node.dyn_kwargs)
        and all(isinstance(arg, nodes.Const) and isinstance(arg.value, str) for arg in node.args)
    ):
        raise _NotNative("call")
    callee = _name(node.node.name)
    args = tuple(arg.value for arg in node.args if isinstance(arg, nodes.Const))
    return lambda v: callee(v)(*args)


def _constant(value: Any) -> Evaluator:
    """A literal; also a folded tuple or list of scalars, as in ``status in ('A', 'B')``."""
    items = value if isinstance(value, tuple | list) else (value,)
    if not all(_is_scalar_constant(item) for item in items):
        raise _NotNative("constant")
    if isinstance(value, list):  # Jinja builds a new list on every evaluation
        return lambda v: list(value)
    return lambda v: value


def _name(name: str) -> Evaluator:
    fallback = ENV.globals.get(name, _MISSING)  # variables shadow globals, as in Jinja
    undefined = ENV.undefined

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
