"""A pair's chart drawn as SVG on the server: the price line and its range band, each rule's
threshold lines, the ``until`` band and firing episodes shaded; time labels in the browser's
zone. Classes carry the look (the page's stylesheet, light and dark); presentation attributes
are the fallback when the SVG is opened on its own."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from notifier.dashboard.chartdata import ChartRule, PairChart
from notifier.rules.why import number

__all__ = ["MAX_WIDTH", "MIN_WIDTH", "draw_chart"]

MIN_WIDTH, MAX_WIDTH = 240, 2400
HEIGHT = 200
LEFT, RIGHT, TOP, BOTTOM = 58, 10, 10, 22
PALETTE = 6  # rule colours r0 … r5 in the stylesheet
_TIME_STEPS = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800,
)  # fmt: skip


class _Scale:
    def __init__(self, lo: float, hi: float, out_lo: float, out_hi: float) -> None:
        self.lo, self.hi = lo, hi if hi > lo else lo + 1.0
        self.out_lo, self.out_hi = out_lo, out_hi

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo
        return self.out_lo + (value - self.lo) / span * (self.out_hi - self.out_lo)


def draw_chart(chart: PairChart, width: int, zone: ZoneInfo) -> str:
    """The chart as an ``<svg>`` element ``width`` pixels wide."""
    width = max(MIN_WIDTH, min(MAX_WIDTH, width))
    x = _Scale(chart.start, chart.end, LEFT, width - RIGHT)
    lo, hi = _value_range(chart)
    y = _Scale(lo, hi, HEIGHT - BOTTOM, TOP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {HEIGHT}" width="{width}" height="{HEIGHT}" '
        f'aria-label="{escape(_summary(chart))}">',
        f"<title>{escape(_summary(chart))}</title>",
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{width - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="#8884"/>',
    ]
    for index, rule in enumerate(chart.rules):
        parts += _episodes(rule, index, chart, x)
    parts += _value_axis(lo, hi, y, width)
    parts += _time_axis(chart.start, chart.end, x, zone)
    for index, rule in enumerate(chart.rules):
        parts += _rule_lines(rule, index, y, (lo, hi), width)
    parts += _price(chart, x, y)
    parts.append("</svg>")
    return "".join(parts)


def _summary(chart: PairChart) -> str:
    last = chart.points[-1].last if chart.points else None
    text = f"{chart.name}: " + (f"price {number(last)}" if last is not None else "no quotes yet")
    return text + "".join(f"; {r.id} {r.state}" for r in chart.rules)


def _value_range(chart: PairChart) -> tuple[float, float]:
    """The prices drawn, widened to the thresholds near them and padded a little."""
    values = [v for p in chart.points for v in (p.low, p.high)]
    limits = [t.value for r in chart.rules for t in (*r.when, *r.until)]
    if not values:
        values = limits or [0.0, 1.0]
    lo, hi = min(values), max(values)
    reach = max(hi - lo, abs(hi) * 0.01, 1e-12)
    for limit in limits:  # a threshold far away would flatten the line: it is labelled instead
        if lo - reach <= limit <= hi + reach:
            lo, hi = min(lo, limit), max(hi, limit)
    pad = max(hi - lo, abs(hi) * 0.002, 1e-12) * 0.08
    return lo - pad, hi + pad


def _episodes(rule: ChartRule, index: int, chart: PairChart, x: _Scale) -> Iterable[str]:
    for start, end in rule.episodes:
        left = x(max(start, chart.start))
        right = x(min(end if end is not None else chart.end, chart.end))
        if right < LEFT or right - left < 0:
            continue
        span = f"{rule.id} firing" + (" (still)" if end is None else "")
        yield (
            f'<rect class="episode r{index % PALETTE}" x="{left:.1f}" y="{TOP}" '
            f'width="{max(right - left, 1.5):.1f}" height="{HEIGHT - TOP - BOTTOM}" '
            f'fill="#e5484d" fill-opacity="0.15"><title>{escape(span)}</title></rect>'
        )


def _rule_lines(
    rule: ChartRule, index: int, y: _Scale, bounds: tuple[float, float], width: int
) -> Iterable[str]:
    colour = f"r{index % PALETTE}"
    lo, hi = bounds
    when, until = rule.when, rule.until
    if when and until:  # hysteresis: between the two it neither fires nor resolves
        top, bottom = y(max(when[0].value, until[0].value)), y(min(when[0].value, until[0].value))
        top, bottom = max(top, TOP), min(bottom, HEIGHT - BOTTOM)
        if bottom > top:
            yield (
                f'<rect class="band {colour}" x="{LEFT}" y="{top:.1f}" '
                f'width="{width - LEFT - RIGHT}" height="{bottom - top:.1f}" '
                f'fill="#f5a524" fill-opacity="0.12"><title>{escape(rule.id)}: until band'
                "</title></rect>"
            )
    for kind, items in (("when", when), ("until", until)):
        for threshold in items:
            label = f"{rule.id} {'until ' if kind == 'until' else ''}{threshold.op} "
            label += number(threshold.value)
            if threshold.value > hi or threshold.value < lo:
                arrow = "↑" if threshold.value > hi else "↓"
                edge = TOP + 10 if threshold.value > hi else HEIGHT - BOTTOM - 4
                yield (
                    f'<text class="edge {colour}" x="{width - RIGHT - 4}" y="{edge}" '
                    f'text-anchor="end" font-size="11">{arrow} {escape(label)}</text>'
                )
                continue
            level = y(threshold.value)
            dash = ' stroke-dasharray="5 4"' if kind == "until" else ""
            yield (
                f'<line class="{kind} {colour}" x1="{LEFT}" x2="{width - RIGHT}" '
                f'y1="{level:.1f}" y2="{level:.1f}" stroke="#e5484d"{dash}>'
                f"<title>{escape(label)}</title></line>"
                f'<text class="label {colour}" x="{width - RIGHT - 4}" '
                f'y="{level + (12 if kind == "until" else -3):.1f}" '
                f'text-anchor="end" font-size="11">{escape(label)}</text>'
            )


def _price(chart: PairChart, x: _Scale, y: _Scale) -> Iterable[str]:
    points = chart.points
    if not points:
        yield (
            f'<text class="empty" x="{LEFT + 8}" y="{HEIGHT / 2:.0f}" font-size="13">'
            "no quotes yet</text>"
        )
        return
    upper = " ".join(f"{x(p.t):.1f},{y(p.high):.1f}" for p in points)
    lower = " ".join(f"{x(p.t):.1f},{y(p.low):.1f}" for p in reversed(points))
    yield f'<polygon class="range" points="{upper} {lower}" fill="#3e63dd" fill-opacity="0.15"/>'
    line = " ".join(f"{x(p.t):.1f},{y(p.last):.1f}" for p in points)
    yield f'<polyline class="price" points="{line}" fill="none" stroke="#3e63dd"/>'


def _value_axis(lo: float, hi: float, y: _Scale, width: int) -> Iterable[str]:
    raw = (hi - lo) / 4
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), 10 * magnitude)
    value = math.ceil(lo / step) * step
    while value <= hi:
        level = y(value)
        yield (
            f'<line class="grid" x1="{LEFT}" x2="{width - RIGHT}" y1="{level:.1f}" '
            f'y2="{level:.1f}" stroke="#8883"/>'
            f'<text class="tick" x="{LEFT - 4}" y="{level + 4:.1f}" text-anchor="end" '
            f'font-size="11">{escape(number(round(value, 12)))}</text>'
        )
        value += step


def _time_axis(start: float, end: float, x: _Scale, zone: ZoneInfo) -> Iterable[str]:
    span = end - start
    wanted = max(2, int((x.out_hi - x.out_lo) / 90))
    step = next((s for s in _TIME_STEPS if span / s <= wanted), _TIME_STEPS[-1])
    offset = datetime.fromtimestamp(start, zone).utcoffset()
    shift = offset.total_seconds() if offset is not None else 0.0
    moment = math.ceil((start + shift) / step) * step - shift
    fmt = "%H:%M:%S" if step < 60 else "%a %d" if step >= 86400 else "%H:%M"
    while moment <= end:
        at = x(moment)
        label = datetime.fromtimestamp(moment, zone).strftime(fmt)
        anchor = "end" if at > x.out_hi - 24 else "middle"  # the last label stays inside
        yield (
            f'<line class="grid" x1="{at:.1f}" x2="{at:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
            f'stroke="#8883"/><text class="tick" x="{at:.1f}" y="{HEIGHT - 6}" '
            f'text-anchor="{anchor}" font-size="11">{label}</text>'
        )
        moment += step
