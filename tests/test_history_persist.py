"""The quote history's periodic save in slices (off the event loop) writes what the
one-transaction save writes, and a restart restores it the same."""

from __future__ import annotations

from pathlib import Path

from notifier.events import PairKey
from notifier.history.book import HistoryBook
from notifier.history.persist import SLICE_PAIRS, HistoryStore
from notifier.history.series import PairSeries
from notifier.store import Store

PAIRS: list[PairKey] = [(f"in{i}", f"out{i}", "1000", True) for i in range(SLICE_PAIRS * 2 + 5)]


def _book() -> HistoryBook:
    book = HistoryBook(max_window=3600.0)
    for pair in PAIRS:
        book.series[pair] = PairSeries(book.max_window)
    return book


def _feed(book: HistoryBook, start: float, seconds: int) -> None:
    for n, pair in enumerate(PAIRS):
        series = book.series[pair]
        for step in range(seconds * 4):
            series.record(start + step / 4, 100.0 + n + (step % 7) / 10)


def _tables(store: Store) -> list[list[tuple[object, ...]]]:
    return [
        [tuple(r) for r in store.read("SELECT pair, level, block, data FROM quote_history"
                                      " ORDER BY pair, level, block")],
        [tuple(r) for r in store.read("SELECT pair, state, saved_at FROM quote_history_pairs"
                                      " ORDER BY pair")],
    ]  # fmt: skip


async def test_a_save_in_slices_writes_what_one_save_writes(tmp_path: Path) -> None:
    book = _book()
    whole, sliced = Store.open(tmp_path / "whole"), Store.open(tmp_path / "sliced")
    whole_saver, sliced_saver = HistoryStore(whole), HistoryStore(sliced)
    start = 1_700_000_000.0
    for round_ in range(3):  # the first save, then two that write only what changed
        _feed(book, start + round_ * 200, 200)
        written = whole_saver.save(book)
        assert await sliced_saver.save_in_slices(book) == written > 0
        assert _tables(sliced) == _tables(whole)
    assert await sliced_saver.save_in_slices(book) == 0  # nothing new

    restored = _book()
    assert HistoryStore(sliced).load(restored) == len(PAIRS)
    for pair in PAIRS:
        before, after = book.series[pair], restored.series[pair]
        assert (after.first_at, after.last_at, after.price) == (
            before.first_at,
            before.last_at,
            before.price,
        )
        for old, new in zip(before.tiers, after.tiers, strict=True):
            assert new.head == old.head
            for column in ("last", "low", "high", "area"):
                assert getattr(new, column).tobytes() == getattr(old, column).tobytes()
    whole.close()
    sliced.close()
