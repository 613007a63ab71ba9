"""``HistoryBook``: the history of every watched pair, the window statistics rules read, and
their persistence in the store (``persist.py``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from notifier.events import PairKey, QuoteEvent
from notifier.history.pricing import Pricing
from notifier.history.series import PairSeries
from notifier.history.window import WindowStat

__all__ = ["DEFAULT_MAX_WINDOW", "HistoryBook"]

log = logging.getLogger(__name__)

DEFAULT_MAX_WINDOW = 7 * 86400.0


class HistoryBook:
    """One ``PairSeries`` per watched pair, fed by every quote (before conflation)."""

    def __init__(self, max_window: float = DEFAULT_MAX_WINDOW) -> None:
        self.max_window = max_window
        self.series: dict[PairKey, PairSeries] = {}
        self.pricing: dict[PairKey, Pricing] = {}
        self._stats: dict[tuple[PairKey, float], WindowStat] = {}
        # Per watched pair, its series' ``record`` of an output amount: ``record`` runs for
        # every quote, so it is one lookup and one call.
        self.recorders: dict[PairKey, Callable[[float, int], None]] = {}

    def watch(self, pricing: Mapping[PairKey, Pricing]) -> None:
        """The pairs the rules read now; their series start (or carry on) here. Series of
        pairs no longer read are kept until their history would be pruned anyway."""
        self.pricing = dict(pricing)
        for pair in pricing:
            if pair not in self.series:
                self.series[pair] = PairSeries(self.max_window)
        self.recorders = {
            pair: self.series[pair].recorder(found.pricer()) for pair, found in pricing.items()
        }

    def record(self, event: QuoteEvent) -> None:
        """A quote of a watched pair enters its history; others are ignored."""
        record = self.recorders.get(event.pair)
        if record is not None:
            record(event.at, event.amount_out)

    def advance(self, now: float) -> None:
        """Close every bucket that ended by ``now`` (the clock moves windows too)."""
        for series in self.series.values():
            series.advance(now)

    def stat(self, pair: PairKey, window: float) -> WindowStat | None:
        """The sliding statistics of ``pair`` over ``window``, kept from the first ask on."""
        found = self._stats.get((pair, window))
        if found is None:
            series = self.series.get(pair)
            if series is None:
                return None
            found = self._stats[(pair, window)] = WindowStat(series, window)
        return found

    def keep_stats(self, wanted: Iterable[tuple[PairKey, float]]) -> None:
        """Stop the statistics no rule reads any more (after a reload)."""
        keep = set(wanted)
        for key in [k for k in self._stats if k not in keep]:
            self._stats.pop(key).close()

    def price(self, pair: PairKey) -> float | None:
        series = self.series.get(pair)
        return None if series is None else series.price
