"""The functions of SPEC §8 as rule expressions and templates call them: ``price_at``,
``change``, ``pct_change``, ``min_price``, ``max_price``, ``avg_price`` and ``price_of``.

They are globals of the rule environment that read the history of whichever engine is
evaluating: the engine calls ``WindowFunctions.activate(pair)`` before it evaluates the rules of
a pair (``None`` for orders, intents and feeds), which costs one assignment per event. A rule's
windows and pairs are literals checked at load (``windowcalls.py``), so at run time a call is
two dictionary lookups and O(1) amortised work on the series.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from notifier.durations import parse_duration
from notifier.events import PairKey
from notifier.history.book import HistoryBook
from notifier.history.series import PairSeries
from notifier.rules.bounds import ENV

__all__ = ["PAIR_FUNCTIONS", "WINDOW_FUNCTIONS", "WindowFunctions"]

WINDOW_FUNCTIONS = ("price_at", "change", "pct_change", "min_price", "max_price", "avg_price")
PAIR_FUNCTIONS = (*WINDOW_FUNCTIONS, "price_of")


class WindowFunctions:
    """Binds the window functions to one history book and clock."""

    def __init__(self, book: HistoryBook, clock: Callable[[], float]) -> None:
        self.book = book
        self.clock = clock
        self.own: PairKey | None = None
        self.pairs: dict[str, PairKey] = {}  # a pair as rules write it -> its key
        self._seconds: dict[str, float] = {}

    def activate(self, own: PairKey | None) -> None:
        """Make these functions, reading ``own`` by default, the ones rules call now."""
        global _active  # noqa: PLW0603 - the engine evaluating right now; see the module doc
        _active = self
        self.own = own

    def series(self, pair: str | None) -> PairSeries | None:
        key = self.own if pair is None else self.pairs.get(pair)
        return None if key is None else self.book.series.get(key)

    def seconds(self, window: str) -> float:
        found = self._seconds.get(window)
        if found is None:
            found = self._seconds[window] = parse_duration(window)
        return found

    def price_at(self, window: str, pair: str | None = None) -> float | None:
        series = self.series(pair)
        if series is None:
            return None
        return series.price_at(self.clock() - self.seconds(window))

    def change(self, window: str, pair: str | None = None) -> float | None:
        series = self.series(pair)
        if series is None or series.price is None:
            return None
        then = series.price_at(self.clock() - self.seconds(window))
        return None if then is None else series.price - then

    def pct_change(self, window: str, pair: str | None = None) -> float | None:
        series = self.series(pair)
        if series is None or series.price is None:
            return None
        then = series.price_at(self.clock() - self.seconds(window))
        return (series.price / then - 1) * 100 if then else None

    def _stat_of(self, window: str, pair: str | None) -> Any:
        key = self.own if pair is None else self.pairs.get(pair)
        return None if key is None else self.book.stat(key, self.seconds(window))

    def min_price(self, window: str, pair: str | None = None) -> float | None:
        stat = self._stat_of(window, pair)
        return None if stat is None else stat.low(self.clock())

    def max_price(self, window: str, pair: str | None = None) -> float | None:
        stat = self._stat_of(window, pair)
        return None if stat is None else stat.high(self.clock())

    def avg_price(self, window: str, pair: str | None = None) -> float | None:
        stat = self._stat_of(window, pair)
        return None if stat is None else stat.average(self.clock())

    def price_of(self, pair: str) -> float | None:
        series = self.series(pair)
        return None if series is None else series.price


_active: WindowFunctions | None = None


def _global(name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if _active is None:
            return None  # no history (``notifier check``): like a pair without quotes
        method: Callable[..., Any] = getattr(_active, name)
        return method(*args)

    call.__name__ = name
    return call


for _name in PAIR_FUNCTIONS:
    ENV.globals[_name] = _global(_name)
