"""Quote history per watched pair, kept in the store, read by rules through window functions
(SPEC §8): ``PairSeries`` holds one pair's buckets, ``WindowStat`` one sliding window's
lowest, highest and average price, ``HistoryBook`` every pair and their persistence."""

from __future__ import annotations

from notifier.history.series import PairSeries
from notifier.history.window import WindowStat

__all__ = ["PairSeries", "WindowStat"]
