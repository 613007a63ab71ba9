"""What a pair's chart shows: its history downsampled to a few hundred points from the series'
tiers, each quote rule's thresholds (``price OP number`` comparisons of ``when`` and ``until``)
and its firing episodes. JSON-ready through ``PairChart.as_json``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from jinja2 import nodes
from jinja2.parser import Parser

from notifier.durations import format_duration
from notifier.events import PairKey
from notifier.history.series import PairSeries
from notifier.rules.bounds import ENV
from notifier.rules.compiled import QuoteRule
from notifier.timestamps import rfc3339

__all__ = [
    "DEFAULT_POINTS",
    "MAX_POINTS",
    "MIN_WINDOW",
    "WINDOWS",
    "ChartRule",
    "PairChart",
    "Point",
    "Threshold",
    "auto_window",
    "chart_rule",
    "downsample",
    "pair_key",
    "parse_pair_key",
    "thresholds",
]

WINDOWS = (300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0)  # what the page offers
DEFAULT_POINTS = 300
MIN_WINDOW = 60.0  # the shortest window asked for by name
MIN_AUTO_WINDOW = 10.0
MAX_POINTS = 2000
_OPS = {"gt": ">", "gteq": ">=", "lt": "<", "lteq": "<="}
_MIRROR = {">": "<", ">=": "<=", "<": ">", "<=": ">="}


@dataclass(frozen=True, slots=True)
class Point:
    """One bin of the chart: its middle, the lowest and highest price in force during it, and
    the price in force at its end."""

    t: float
    low: float
    high: float
    last: float


@dataclass(frozen=True, slots=True)
class Threshold:
    op: str  # > >= < <=
    value: float


@dataclass(slots=True)
class ChartRule:
    id: str
    state: str  # inactive | pending | firing
    when: list[Threshold]
    until: list[Threshold]
    episodes: list[tuple[float, float | None]] = field(default_factory=list)


@dataclass(slots=True)
class PairChart:
    name: str
    key: str
    start: float
    end: float
    points: list[Point]
    rules: list[ChartRule]

    def as_json(self) -> dict[str, Any]:
        return {
            "pair": self.name,
            "key": self.key,
            "window": format_duration(self.end - self.start),
            "from": rfc3339(self.start),
            "to": rfc3339(self.end),
            "points": [[p.t, p.low, p.high, p.last] for p in self.points],
            "rules": [
                {
                    "id": r.id,
                    "state": r.state,
                    "when": [[t.op, t.value] for t in r.when],
                    "until": [[t.op, t.value] for t in r.until],
                    "episodes": [[rfc3339(s), rfc3339(e)] for s, e in r.episodes],
                }
                for r in self.rules
            ],
        }


def pair_key(pair: PairKey) -> str:
    """The pair as the status document's ``pairs[].key`` writes it: ``in|out|amount|1``."""
    return f"{pair[0]}|{pair[1]}|{pair[2]}|{int(pair[3])}"


def parse_pair_key(text: str) -> PairKey | None:
    parts = text.split("|")
    if len(parts) != 4 or parts[3] not in {"0", "1"} or not all(parts[:3]):
        return None
    return (parts[0], parts[1], parts[2], parts[3] == "1")


def auto_window(series: PairSeries | None, now: float, longest: float) -> float:
    """The whole history (ten seconds at least), within ``longest``."""
    reach = now - series.first_at if series and series.first_at is not None else 0.0
    return min(max(reach * 1.02, MIN_AUTO_WINDOW), longest)


def downsample(series: PairSeries, start: float, end: float, bins: int) -> list[Point]:
    """At most ``bins`` points over ``[start, end]``: every kept bucket that overlaps falls in
    the bin of its middle; a bin keeps the lowest low, the highest high and the last price of
    the bucket that ends latest (finer tiers win ties: they come last)."""
    if series.first_at is None or end <= start or bins < 1:
        return []
    start = max(start, series.first_at)
    width = (end - start) / bins
    if width <= 0:
        return []
    low = [math.inf] * bins
    high = [-math.inf] * bins
    last = [math.nan] * bins
    ends = [-math.inf] * bins
    skip_fine = width >= 1.0  # the 1-second tier holds the same at the resolution drawn
    for level in range(len(series.tiers) - 1, -1, -1):
        tier = series.tiers[level]
        if level == 0 and skip_fine:
            continue
        buckets = list(tier.buckets(tier.index_of(start), tier.index_of(end)))
        if tier.open is not None:
            buckets.append(tier.open)
        for bucket in buckets:
            begin = bucket.index * tier.width
            finish = min(begin + tier.width, end)
            middle = (max(begin, start) + finish) / 2
            if finish < start or begin > end:
                continue
            slot = min(bins - 1, max(0, int((middle - start) / width)))
            low[slot] = min(low[slot], bucket.low)
            high[slot] = max(high[slot], bucket.high)
            if finish >= ends[slot]:
                ends[slot], last[slot] = finish, bucket.last
    points = [
        Point(start + (i + 0.5) * width, low[i], high[i], last[i])
        for i in range(bins)
        if not math.isnan(last[i])
    ]
    if series.price is not None:
        points.append(Point(end, series.price, series.price, series.price))
    return points


def thresholds(source: str | None) -> list[Threshold]:
    """The ``price OP number`` comparisons of a condition (either way round), in order."""
    if not source:
        return []
    try:
        tree: nodes.Node = Parser(ENV, source, state="variable").parse_expression()
    except Exception:  # the rule compiled, so this cannot fail; draw nothing if it does
        return []
    found: list[Threshold] = []
    compares = [tree] if isinstance(tree, nodes.Compare) else []
    for compare in [*compares, *tree.find_all(nodes.Compare)]:
        left = compare.expr
        for operand in compare.ops:
            op = _OPS.get(operand.op)
            right = operand.expr
            if op is not None:
                if _is_price(left) and (value := _number(right)) is not None:
                    found.append(Threshold(op, value))
                elif _is_price(right) and (value := _number(left)) is not None:
                    found.append(Threshold(_MIRROR[op], value))
            left = right
    return found


def chart_rule(rule: QuoteRule, state: str) -> ChartRule:
    when = rule.explain_when.source if rule.explain_when else None
    until = rule.explain_until.source if rule.explain_until else None
    return ChartRule(rule.id, state, thresholds(when), thresholds(until))


def _is_price(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "price"


def _number(node: nodes.Node) -> float | None:
    negative = False
    if isinstance(node, nodes.Neg):
        negative, node = True, node.node
    if isinstance(node, nodes.Const) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            return None
        return -float(node.value) if negative else float(node.value)
    return None
