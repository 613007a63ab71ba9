"""The quote history against a brute-force reference on random quote streams (SPEC §8), and
the window functions evaluated natively and through Jinja with the same results."""

from __future__ import annotations

import bisect
import math
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from notifier.events import PairKey
from notifier.history.book import HistoryBook
from notifier.history.pricing import Pricing
from notifier.history.series import PairSeries, bucket_end
from notifier.rules.sandbox import Expression
from notifier.rules.windowfns import WindowFunctions
from tests.test_history_persist import _image as image
from tests.test_rules_native import same

PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
START = 1_700_000_000.0

GAPS = st.one_of(
    st.floats(min_value=0.0, max_value=2.0),
    st.sampled_from([0.0, 0.05, 0.1, 0.35, 1.0, 7.5, 59.0, 61.0, 400.0, 3599.0, 3700.0, 9000.0]),
)
PRICES = st.floats(min_value=1.0, max_value=1000.0)
STREAMS = st.lists(st.tuples(GAPS, PRICES), min_size=1, max_size=120)
WINDOWS = st.sampled_from([0.3, 1.0, 4.0, 30.0, 60.0, 90.0, 600.0, 3600.0, 5400.0, 20000.0])


class Reference:
    """Every quote kept: the slow, obvious answers."""

    def __init__(self, stream: list[tuple[float, float]]) -> None:
        self.times: list[float] = []
        self.prices: list[float] = []
        at = START
        for gap, price in stream:
            at += gap
            self.times.append(at)
            self.prices.append(price)

    def in_force(self, at: float) -> float | None:
        i = bisect.bisect_right(self.times, at)
        return self.prices[i - 1] if i else None

    def during(self, begin: float, end: float) -> list[float]:
        """Prices in force at some moment of ``[begin, end]``."""
        found = [p for t, p in zip(self.times, self.prices, strict=True) if begin < t <= end]
        before = self.in_force(begin)
        return found + ([before] if before is not None else [])

    def average(self, begin: float, end: float) -> float:
        begin = max(begin, self.times[0])
        area, at = 0.0, begin
        price = self.in_force(begin)
        assert price is not None
        for t, p in zip(self.times, self.prices, strict=True):
            if begin < t <= end:
                area += price * (t - at)
                at, price = t, p
        area += price * (end - at)
        return area / (end - begin) if end > begin else price


def fed(stream: list[tuple[float, float]], lag: float) -> tuple[PairSeries, Reference, float]:
    series = PairSeries(7 * 86400)
    reference = Reference(stream)
    for at, price in zip(reference.times, reference.prices, strict=True):
        series.record(at, price)
    now = reference.times[-1] + lag
    series.advance(now)
    return series, reference, now


def resolution(series: PairSeries, age: float) -> float:
    """The width of the finest tier that reaches ``age`` — or of the next one, at the oldest
    bucket of a tier, whose start is known only to the coarser tier that holds older ages."""
    level = series.level_for(age)
    return series.tiers[min(level + 1, len(series.tiers) - 1)].width


@PROPERTIES
@given(STREAMS, st.floats(min_value=0.0, max_value=30.0), WINDOWS)
@example(  # the window's start in the oldest second an hour back, after a long gap
    stream=[(1.5, 1.0), (1.5, 1.0), (1.5, 1.0), (2.0, 2.0), (3599.0, 1.0)], lag=5.0, window=3600.0
)
def test_price_at_is_a_price_in_force_within_the_resolution(
    stream: list[tuple[float, float]], lag: float, window: float
) -> None:
    """The price ``D`` ago is one that was in force within one bucket before ``now - D``, and
    none exactly while the history does not reach back that far."""
    series, reference, now = fed(stream, lag)
    at = now - window
    got = series.price_at(at)
    if at < reference.times[0]:
        assert got is None
        return
    width = resolution(series, window)
    assert got in reference.during(at - width, at), (got, at, width)


@PROPERTIES
@given(STREAMS, st.floats(min_value=0.0, max_value=30.0), WINDOWS)
@example(stream=[(3599.0, 1.0)], lag=2.0, window=5400.0)  # a long window's first bucket
@example(stream=[(0.0, 2.0), (0.0, 1.0)], lag=1.1, window=1.0)  # a start on a boundary
@example(  # a constant price over a long window: its oldest bucket holds 3 of its 3.6 s
    stream=[(0.0, 1.0), (3599.0, 1.0), (3599.0, 1.0)], lag=0.0, window=5400.0
)
def test_min_max_and_average_match_the_reference(
    stream: list[tuple[float, float]], lag: float, window: float
) -> None:
    """Lowest and highest are prices in force in the window, its start taken at most one
    bucket early; the time-weighted average is as close as that bucket allows."""
    book = HistoryBook()
    pair: PairKey = ("A", "B", "1", True)
    book.watch({pair: Pricing(1, True, None, None, "A/B")})
    series, reference, now = fed(stream, lag)
    book.series[pair] = series
    stat = book.stat(pair, window)
    assert stat is not None
    width = stat.width
    exact = reference.during(now - window, now)
    # One bucket early, and a microsecond more: a window start that falls on a bucket boundary
    # may round to the bucket before it (times near 1.7e9 s carry ~0.2 µs of float error).
    wide = reference.during(now - window - width - 1e-6, now)
    low, high = stat.low(now), stat.high(now)
    assert low is not None
    assert high is not None
    assert min(wide) <= low <= min(exact)
    assert max(exact) <= high <= max(wide)
    average = stat.average(now)
    assert average is not None
    slack = (max(wide) - min(wide)) * (2 * width / max(window, width)) + 1e-6 * max(wide)
    candidates = [reference.average(b, now) for b in (now - window - width, now - window)]
    assert min(candidates) - slack <= average <= max(candidates) + slack


@PROPERTIES
@given(st.lists(GAPS, min_size=1, max_size=60), st.floats(min_value=0.0, max_value=30.0), WINDOWS)
@example(gaps=[0.0, 9000.0], lag=0.0, window=5400.0)  # a gap filled in at once
@example(gaps=[0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.625, 1.375], lag=1.0, window=30.0)
def test_a_constant_price_averages_to_itself(gaps: list[float], lag: float, window: float) -> None:
    """However the buckets cut the window, a price that never moved averages to itself: the
    covered time and the areas summed must describe the same stretch."""
    book = HistoryBook()
    pair: PairKey = ("A", "B", "1", True)
    book.watch({pair: Pricing(1, True, None, None, "A/B")})
    series, _, now = fed([(gap, 123.25) for gap in gaps], lag)
    book.series[pair] = series
    stat = book.stat(pair, window)
    assert stat is not None
    assert stat.low(now) == stat.high(now) == 123.25
    average = stat.average(now)
    assert average is not None
    # Times near 1.7e9 s carry ~0.2 µs of float error, and every bucket edge in the window
    # (100 ms ones: up to 300 in 30 s) adds its own rounding, of either sign: ten microseconds
    # of the time covered. (One microsecond was too tight: 9 quotes a second apart and a 30 s
    # window gave 1.3 µs.)
    covered = max(min(window, now - START - gaps[0]), 0.1)
    assert abs(average - 123.25) <= 123.25 * (1e-5 / covered + 1e-9), average


@PROPERTIES
@given(STREAMS, WINDOWS, st.lists(st.floats(min_value=0.0, max_value=5.0), max_size=20))
def test_a_window_kept_live_matches_one_built_afterwards(
    stream: list[tuple[float, float]], window: float, later: list[float]
) -> None:
    """Statistics fed quote by quote agree with statistics built from the rings at the end."""
    book = HistoryBook()
    pair: PairKey = ("A", "B", "1", True)
    book.watch({pair: Pricing(1, True, None, None, "A/B")})
    live = book.stat(pair, window)
    assert live is not None
    at = START
    for gap, price in stream:
        at += gap
        book.series[pair].record(at, price)
    for gap in later:
        at += gap
        book.series[pair].advance(at)
    rebuilt = HistoryBook()
    rebuilt.watch(book.pricing)
    rebuilt.series[pair] = book.series[pair]
    built = rebuilt.stat(pair, window)
    assert built is not None
    assert (live.low(at), live.high(at)) == (built.low(at), built.high(at))


# -- native and Jinja agree on the functions ----------------------------------------------------

CALLS = st.sampled_from(
    [
        "price_at('4s')",
        "change('30s')",
        "pct_change('1m')",
        "min_price('90s')",
        "max_price('1h')",
        "avg_price('10m')",
        "pct_change('2h', 'SOL/USDC')",
        "price_of('SOL/USDC')",
        "price_of('FOGO/USDC')",
        "price",
    ]
)
CONDITIONS = st.tuples(
    CALLS,
    st.sampled_from(["<", ">", "==", "is none", "is not none", "-"]),
    CALLS | st.sampled_from(["0", "-3", "150.5"]),
).map(lambda t: f"{t[0]} {t[1]}" if t[1].startswith("is") else f"{t[0]} {t[1]} {t[2]}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STREAMS, CONDITIONS, st.floats(min_value=0.0, max_value=10.0))
def test_native_and_jinja_agree_on_window_functions(
    stream: list[tuple[float, float]], source: str, lag: float
) -> None:
    """Every window function, in comparisons and arithmetic, gives the same value or error
    natively as through Jinja, on random histories."""
    own: PairKey = ("A", "B", "1", True)
    other: PairKey = ("SOL", "USDC", "1", True)
    book = HistoryBook()
    book.watch({own: Pricing(1, True, None, None, "A/B"), other: Pricing(1, True, None, None, "S")})
    series, _, now = fed(stream, lag)
    book.series[own] = series
    book.series[other] = fed(stream[::-1], lag)[0]
    functions = WindowFunctions(book, lambda: now)
    functions.pairs = {"SOL/USDC": other}
    functions.activate(own)
    variables: dict[str, Any] = {"price": series.price}
    results = []
    for native in (True, False):
        expression = Expression(source, native=native)
        assert expression.native is native
        try:
            results.append(("value", expression(variables)))
        except Exception as exc:
            results.append(("error", str(exc)))
    assert results[0][0] == results[1][0], (source, results)
    assert same(results[0][1], results[1][1]), (source, results)


@PROPERTIES
@given(
    st.lists(
        st.tuples(
            st.one_of(
                GAPS,
                st.floats(min_value=0.0, max_value=0.06),  # many quotes per 100 ms bucket
                st.floats(min_value=-0.2, max_value=0.0),  # out of order
                st.just(1e-7),
            ),
            st.integers(min_value=0, max_value=10**12),
        ),
        min_size=1,
        max_size=300,
    ),
    st.sampled_from([(1, True, None, None), (10**6, True, 1e6, 1e9), (10**9, False, 1e9, 1e6)]),
)
def test_the_quote_recorder_keeps_what_record_keeps(
    stream: list[tuple[float, int]], shape: tuple[int, bool, float | None, float | None]
) -> None:
    """The per-quote recorder (the hot case inlined, bucket ends known without dividing) leaves
    every tier bit for bit as ``record`` of the priced quote does, with quotes in the same
    100 ms bucket, across bucket edges, and arriving out of order."""
    pricer = Pricing(*shape, "A/B").pricer()
    plain, fast = PairSeries(7 * 86400), PairSeries(7 * 86400)
    record_quote = fast.recorder(pricer)
    at = START
    for gap, amount_out in stream:
        at += gap
        price = pricer(amount_out)
        if price is not None:
            plain.record(at, price)
        record_quote(at, amount_out)
    assert image(fast) == image(plain)


@PROPERTIES
@given(
    st.floats(min_value=1.0e9, max_value=2.5e9),
    st.sampled_from([0.1, 1.0, 3.6, 7.2, 0.3]),
    st.floats(min_value=-2.0, max_value=2.0),
)
def test_a_bucket_ends_where_the_division_says(at: float, width: float, shift: float) -> None:
    """``bucket_end`` is the least time the division puts past the bucket, so a quote before
    it is in the bucket without dividing (which rounds, so it is not always ``(i+1)·width``)."""
    index = math.floor(at / width)
    end = bucket_end(index, width)
    assert math.floor(end / width) > index
    assert math.floor(math.nextafter(end, -math.inf) / width) <= index
    probe = end + shift * width * 1e-9  # a few ulps either side of the edge
    assert (math.floor(probe / width) > index) == (probe >= end)
