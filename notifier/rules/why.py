"""``why``: one line that explains a transition with the values that decided it, built from the
condition's own parse tree — each comparison with its operands' values, as in
``pct_change('1h') = -5.21 < -5`` (with true minus signs) or ``price 201.35 > 200``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.optimizer import optimize
from jinja2.parser import Parser

from notifier.durations import format_duration
from notifier.rules.bounds import ENV
from notifier.rules.native import native_node

__all__ = ["Explainer", "number"]

_SYMBOLS = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "lteq": "<=",
    "gt": ">",
    "gteq": ">=",
    "in": "in",
    "notin": "not in",
}
_BINARY = {
    nodes.Add: "+",
    nodes.Sub: "-",
    nodes.Mul: "*",
    nodes.Div: "/",
    nodes.FloorDiv: "//",
    nodes.Mod: "%",
    nodes.Pow: "**",
}
Evaluator = Callable[[Mapping[str, Any]], Any]


def number(value: Any) -> str:
    """A value as ``why`` shows it: six significant digits, a true minus sign."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "none"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        text = f"{value:.6g}"
        if "e" in text:
            text = f"{value:.6f}".rstrip("0").rstrip(".")
        return text.replace("-", "\u2212")
    if isinstance(value, int):
        return str(value).replace("-", "\u2212")
    return repr(value)


class _Operand:
    __slots__ = ("constant", "evaluate", "text")

    def __init__(self, node: nodes.Expr) -> None:
        self.text = _text(node)
        self.constant = isinstance(node, nodes.Const)
        self.evaluate = _evaluator(node, self.text)

    def describe(self, variables: Mapping[str, Any]) -> str:
        if self.constant:
            value = self.evaluate(variables)
            return number(value) if isinstance(value, int | float) else self.text
        try:
            value = number(self.evaluate(variables))
        except Exception:  # an operand that fails explains nothing: say so, don't raise
            value = "?"
        return f"{self.text} {value}" if _is_name(self.text) else f"{self.text} = {value}"


class _Comparison:
    __slots__ = ("first", "ops", "test")

    def __init__(self, node: nodes.Compare) -> None:
        self.first = _Operand(node.expr)
        self.ops = [(_SYMBOLS.get(op.op, op.op), _Operand(op.expr)) for op in node.ops]
        self.test = _evaluator(node, "")

    def holds(self, variables: Mapping[str, Any]) -> bool:
        try:
            return bool(self.test(variables))
        except Exception:
            return False

    def describe(self, variables: Mapping[str, Any]) -> str:
        parts = [self.first.describe(variables)]
        for symbol, operand in self.ops:
            parts += [symbol, operand.describe(variables)]
        return " ".join(parts)


class Explainer:
    """Explains one condition (``when`` or ``until``) from its parse tree, built on first use
    (most rules never transition, and a reload of many rules should not pay for it)."""

    __slots__ = ("_comparisons", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._comparisons: list[_Comparison] | None = None

    def _parsed(self) -> list[_Comparison]:
        if self._comparisons is None:
            try:
                parser = Parser(ENV, self.source, state="variable")
                tree: nodes.Node = parser.parse_expression()
                tree.set_environment(ENV)
                tree = optimize(tree, ENV)
                self._comparisons = [_Comparison(node) for node in _comparisons(tree)]
            except Exception:  # the rule compiled, so this is a defect here: explain less
                self._comparisons = []
        return self._comparisons

    def explain(self, variables: Mapping[str, Any], *, holding: bool = True) -> str:
        """The comparisons that hold (``holding``) or fail, with their values; all of them
        when none matches (a negated condition), the source itself when it has none."""
        comparisons = self._parsed()
        if not comparisons:
            return self.source
        chosen = [c for c in comparisons if c.holds(variables) == holding]
        return ", ".join(c.describe(variables) for c in chosen or comparisons)


def held(seconds: float) -> str:
    return f"for {format_duration(seconds)}"


def _comparisons(node: nodes.Node) -> Iterator[nodes.Compare]:
    """The outermost comparisons: those inside another comparison are its operands."""
    if isinstance(node, nodes.Compare):
        yield node
        return
    for child in node.iter_child_nodes():
        yield from _comparisons(child)


def _evaluator(node: nodes.Expr, text: str) -> Evaluator:
    found = native_node(node)
    if found is not None:
        return found
    compiled = ENV.compile_expression(text or _text(node), undefined_to_none=False)
    return lambda variables: compiled(**variables)


def _is_name(text: str) -> bool:
    return text.isidentifier()


def _grouped(node: nodes.Node) -> str:
    """An operand of an operator, in parentheses when it is itself an operation."""
    text = _text(node)
    return f"({text})" if isinstance(node, nodes.BinExpr | nodes.UnaryExpr) else text


def _text(node: nodes.Node) -> str:  # noqa: PLR0911 - one form per node type
    """Source-like text of an expression node (Jinja keeps no columns to slice the source)."""
    if isinstance(node, nodes.Const):
        return repr(node.value)
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Call):
        args = ", ".join(_text(a) for a in node.args)
        return f"{_text(node.node)}({args})"
    if isinstance(node, nodes.Getattr):
        return f"{_text(node.node)}.{node.attr}"
    if isinstance(node, nodes.Getitem):
        return f"{_text(node.node)}[{_text(node.arg)}]"
    if type(node) in _BINARY:
        assert isinstance(node, nodes.BinExpr)
        left, right = (_grouped(side) for side in (node.left, node.right))
        return f"{left} {_BINARY[type(node)]} {right}"
    if isinstance(node, nodes.Neg):
        return f"-{_text(node.node)}"
    if isinstance(node, nodes.Not):
        return f"not {_text(node.node)}"
    if isinstance(node, nodes.Filter):
        return f"{_text(node.node)} | {node.name}" if node.node is not None else node.name
    if isinstance(node, nodes.Tuple | nodes.List):
        return "(" + ", ".join(_text(i) for i in node.items) + ")"
    return type(node).__name__.lower()
