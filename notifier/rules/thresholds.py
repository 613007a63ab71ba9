"""The threshold index of a pair's quote rules: a quote reaches only the rules it can change.

A rule whose condition compares ``price`` with a constant (``above``, ``below``, or a ``when:``
such as ``price > 200``, optionally ``and`` more comparisons of variables with constants, which
a false first comparison never evaluates) does nothing while it has no alert state and that
comparison is false. So per pair such rules sit in sorted arrays, one per operator, and a quote
visits only those whose comparison holds at its price (a bisection away), the rules that have a
state (``StateTable`` finds them by key), and every other rule (general expressions, windows). The
engine evaluates them in the pair's rule order, as a plain scan would;
``tests/test_rules_thresholds.py`` holds both to the same notifications.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any

from notifier.rules.state import AlertState

__all__ = ["PairIndex", "StateTable", "Threshold", "simple_threshold"]

Threshold = tuple[str, float]  # (operator, constant): the rule holds only if ``price OP constant``
_NUMBER = r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_SIMPLE = re.compile(
    rf"\s*price\s*(>=|<=|>|<)\s*({_NUMBER})"
    rf"(?:\s+and\s+[a-z_]+\s*(?:==|!=|>=|<=|>|<)\s*{_NUMBER})*\s*"
)


def simple_threshold(when: str) -> Threshold | None:
    """``price > 200`` (or ``price > 200 and hops <= 3``) as ``(">", 200)``; None for any
    other condition."""
    found = _SIMPLE.fullmatch(when)
    if found is None:
        return None
    text = found[2]
    number = float(text) if any(c in text for c in ".eE") else int(text)
    return found[1], number


class StateTable(dict[tuple[str, str], AlertState]):
    """The machine's (rule id, key) states, also found by key: which rules of a pair have one."""

    def __init__(self) -> None:
        super().__init__()
        self.by_key: dict[str, set[str]] = {}

    def __setitem__(self, k: tuple[str, str], st: AlertState) -> None:
        super().__setitem__(k, st)
        self.by_key.setdefault(k[1], set()).add(k[0])

    def __delitem__(self, k: tuple[str, str]) -> None:
        super().__delitem__(k)
        self._forget(k)

    def pop(self, k: tuple[str, str], *default: Any) -> Any:
        if k in self:
            self._forget(k)
        return super().pop(k, *default)

    def _forget(self, k: tuple[str, str]) -> None:
        ids = self.by_key.get(k[1])
        if ids is not None:
            ids.discard(k[0])
            if not ids:
                del self.by_key[k[1]]


class PairIndex:
    """One pair's rules by position: the general ones, and the thresholds sorted per operator."""

    __slots__ = ("general", "position", "quiet", "sorted")

    def __init__(self, ids: Sequence[str], thresholds: Sequence[Threshold | None]) -> None:
        self.position = {rule_id: i for i, rule_id in enumerate(ids)}
        self.general = [i for i, t in enumerate(thresholds) if t is None]
        by_op: dict[str, list[tuple[float, int]]] = {">": [], ">=": [], "<": [], "<=": []}
        for i, t in enumerate(thresholds):
            if t is not None:
                by_op[t[0]].append((t[1], i))
        self.sorted = {
            op: ([c for c, _ in entries], [i for _, i in entries])
            for op, entries in ((op, sorted(entries)) for op, entries in by_op.items())
        }
        # A price within these bounds holds no comparison (the common case: thresholds far
        # from the price): the lowest ``>`` and ``>=`` constants, the highest ``<`` and ``<=``.
        lowest = [self.sorted[op][0][0] if self.sorted[op][0] else math.inf for op in (">", ">=")]
        highest = [
            self.sorted[op][0][-1] if self.sorted[op][0] else -math.inf for op in ("<", "<=")
        ]
        self.quiet = (lowest[0], lowest[1], highest[0], highest[1])

    def holding(self, price: float) -> list[int]:
        """Positions of the threshold rules whose comparison holds at ``price``."""
        if math.isnan(price):  # every comparison is false
            return []
        above, at_least, below, at_most = self.quiet
        if price <= above and price < at_least and price >= below and price > at_most:
            return []
        limits, at = self.sorted[">"]
        found = at[: bisect_left(limits, price)]
        limits, at = self.sorted[">="]
        found += at[: bisect_right(limits, price)]
        limits, at = self.sorted["<"]
        found += at[bisect_right(limits, price) :]
        limits, at = self.sorted["<="]
        found += at[bisect_left(limits, price) :]
        return found

    def visit(self, price: Any, with_state: set[str] | None) -> Sequence[int]:
        """The positions a quote at ``price`` must evaluate, in rule order; ``with_state``: the
        ids of the pair's key that have a state. A price that is not a float (None) visits all."""
        if type(price) is not float:
            return range(len(self.position))
        extra = self.holding(price)
        if with_state:
            position = self.position
            extra += [position[r] for r in with_state if r in position]
        if not extra:
            return self.general
        return sorted({*self.general, *extra})
