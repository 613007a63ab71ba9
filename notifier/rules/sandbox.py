"""Jinja2 in a sandbox: rule expressions and message templates, compiled once at load.

The sandbox refuses attribute access to internals and changes to lists and dicts (Jinja's
``ImmutableSandboxedEnvironment``) and, on top of that, bounds the work one evaluation can do:
ranges, repetitions, integer sizes, format widths and the size of any value a call, filter,
operator or ``set`` produces are capped, a render runs at most ``MAX_STEPS`` loop iterations and
produces at most ``MAX_SIZE`` characters, and loops may nest two deep at most. Statements that
could recurse or buffer without bound (macros, call/filter/set blocks, template blocks,
includes, imports, recursive loops) are refused when the rule loads. Each evaluation through
Jinja runs under its ``Budget`` of CPU time and memory, and raises ``BudgetExceeded`` past it.

Conditions made only of comparisons, boolean logic, arithmetic, constant subscripts and
``is none`` are evaluated by plain Python closures instead of Jinja's render machinery, with the
same results (``notifier.rules.native``); everything else runs through Jinja. The bounded
environment itself is ``notifier.rules.bounds``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.parser import Parser
from jinja2.visitor import NodeTransformer

from notifier.rules.bounds import ENV, MAX_LOOP_DEPTH, MAX_RANGE, MAX_SIZE, refuse_above
from notifier.rules.metering import (
    DEFAULT_BUDGET,
    MAX_STEPS,
    Budget,
    BudgetExceeded,
    SandboxError,
    start_metering,
    stop_metering,
)
from notifier.rules.native import Evaluator, native_expression

__all__ = [
    "DEFAULT_BUDGET",
    "MAX_RANGE",
    "MAX_SIZE",
    "MAX_STEPS",
    "Budget",
    "BudgetExceeded",
    "Expression",
    "SandboxError",
    "Template",
    "compile_expression",
    "compile_template",
]

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
        tree = ENV.parse(source)
        _refused(tree)
        if _loop_depth(tree) > MAX_LOOP_DEPTH:
            raise SandboxError(f"loops may nest {MAX_LOOP_DEPTH} deep at most")
        if known is not None:
            undeclared = meta.find_undeclared_variables(tree)
            unknown = sorted(undeclared - set(known) - set(ENV.globals))
            if unknown:
                raise SandboxError(f"unknown variable(s): {', '.join(unknown)}")
    return tree


def _check_expression_syntax(source: str) -> None:
    """Syntax errors of a bare condition, in its own terms: checked before it is wrapped in
    ``{{ }}``, whose closing braces Jinja would otherwise name as what it did not expect."""
    try:
        parser = Parser(ENV, source, state="variable")
        parser.parse_expression()
    except TemplateSyntaxError as exc:
        message = (exc.message or "syntax error").replace("'end of template'", "end of template")
        raise SandboxError(
            message.replace("end of template", "end of expression"), exc.lineno
        ) from None
    if not parser.stream.eos:
        token = parser.stream.current
        raise SandboxError(f"unexpected {token.value!r} after the expression", token.lineno)


class Expression:
    """A compiled condition such as ``price > 200 and hops == 1``.

    Conditions within the native subset (``notifier.rules.native``) are evaluated by plain
    closures, an order of magnitude faster than Jinja's render machinery, with the same results;
    ``native=False`` forces the Jinja path (the parity tests compare both). Native closures
    run no loops or calls and their operators are capped, so only the Jinja path is metered.
    """

    __slots__ = ("_compiled", "budget", "native", "source")

    def __init__(
        self,
        source: str,
        *,
        known: Iterable[str] | None = None,
        native: bool = True,
        budget: Budget = DEFAULT_BUDGET,
    ) -> None:
        self.source = source
        self.budget = budget
        _check_expression_syntax(source)
        _parse("{{ " + source + " }}", known=known)
        closure = native_expression(source) if native else None
        self.native = closure is not None
        if closure is None:
            with _loading():
                closure = _metered(ENV.compile_expression(source, undefined_to_none=False), budget)
        self._compiled: Evaluator = closure

    def __call__(self, variables: Mapping[str, Any]) -> Any:
        """Evaluate; raises ``SandboxError`` for a refused operation or a runtime error,
        ``BudgetExceeded`` past the budget."""
        try:
            result = self._compiled(variables)
            if isinstance(result, Undefined):
                bool(result)  # a strict undefined (a missing key, an unsafe attribute) raises
        except BudgetExceeded:
            raise
        except SecurityError as exc:
            raise SandboxError(f"refused: {exc}") from None
        except Exception as exc:
            raise SandboxError(f"{type(exc).__name__}: {exc}") from None
        return result


def _metered(evaluate: Evaluator, budget: Budget) -> Evaluator:
    """``evaluate`` under a meter of ``budget``; the native path never pays for one."""

    def metered(variables: Mapping[str, Any]) -> Any:
        token = start_metering(budget)[1]
        try:
            return evaluate(variables)
        finally:
            stop_metering(token)

    return metered


class Template:
    """A compiled message template such as ``SOL at {{ price | round(2) }}``."""

    __slots__ = ("_template", "budget", "source")

    def __init__(
        self, source: str, *, known: Iterable[str] | None = None, budget: Budget = DEFAULT_BUDGET
    ) -> None:
        self.source = source
        self.budget = budget
        tree = _Bound().visit(_parse(source, known=known))
        tree.set_environment(ENV)
        with _loading():
            self._template = ENV.from_string(tree)

    def render(self, variables: Mapping[str, Any]) -> str:
        """Render piece by piece, so an oversized output is refused before it is built;
        raises ``SandboxError``, or ``BudgetExceeded`` past the budget."""
        meter, token = start_metering(self.budget)
        try:
            size = 0
            parts = []
            for piece in self._template.generate(variables):
                size += len(piece)
                refuse_above(size, "a message")
                meter.check()
                parts.append(piece)
            return "".join(parts)
        except BudgetExceeded:
            raise
        except SecurityError as exc:
            raise SandboxError(f"refused: {exc}") from None
        except Exception as exc:
            raise SandboxError(f"{type(exc).__name__}: {exc}") from None
        finally:
            stop_metering(token)


def compile_expression(
    source: str, known: Iterable[str] | None = None, budget: Budget = DEFAULT_BUDGET
) -> Expression:
    return _expression(source, None if known is None else frozenset(known), budget)


def compile_template(
    source: str, known: Iterable[str] | None = None, budget: Budget = DEFAULT_BUDGET
) -> Template:
    return _template(source, None if known is None else frozenset(known), budget)


# Compiled objects are stateless, so rules sharing a source (every default title of a kind)
# share one compilation: a reload of hundreds of rules compiles each distinct text once.
@lru_cache(maxsize=4096)
def _expression(source: str, known: frozenset[str] | None, budget: Budget) -> Expression:
    return Expression(source, known=known, budget=budget)


@lru_cache(maxsize=4096)
def _template(source: str, known: frozenset[str] | None, budget: Budget) -> Template:
    return Template(source, known=known, budget=budget)
