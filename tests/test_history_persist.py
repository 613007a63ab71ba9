"""The quote history saved to a real SQLite store and restored: every tier's ring comes back
bit for bit, whether saved at once, incrementally, by the periodic saver between quotes, or at
another block size than the current one (then the next save moves it to the current size)."""

from __future__ import annotations

import asyncio
import math
import threading
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.events import PairKey
from notifier.history.blocks import block_size, ring_tenth
from notifier.history.book import HistoryBook
from notifier.history.persist import HistoryStore
from notifier.history.pricing import Pricing
from notifier.history.series import PairSeries
from notifier.store import Store

START = 1_700_000_000.0
PAIRS: list[PairKey] = [(f"In{i}", "Out", "1000000", True) for i in range(3)]
GAPS = st.sampled_from([0.01, 0.05, 0.1, 0.35, 1.0, 7.5, 61.0, 400.0, 3700.0, 9000.0])
STREAMS = st.lists(
    st.tuples(st.integers(0, 2), GAPS, st.floats(1.0, 1000.0)), min_size=1, max_size=150
)


def _book() -> HistoryBook:
    book = HistoryBook(max_window=86400.0)
    book.watch({pair: Pricing(1, True, None, None, pair[0]) for pair in PAIRS})
    return book


def _play(book: HistoryBook, stream: list[tuple[int, float, float]], at: float) -> float:
    for which, gap, price in stream:
        at += gap
        book.series[PAIRS[which]].record(at, price)
    return at


def _image(series: PairSeries) -> list[object]:
    """Everything a restore brings back, NaN compared by its bits."""
    out: list[object] = [series.first_at, series.last_at, series.price, series.first_price]
    for tier in series.tiers:
        columns = (tier.last, tier.low, tier.high, tier.area)
        out += [tier.head, tier.base, tier.open, *(c.tobytes() for c in columns)]
    return out


def _restored(store: Store) -> HistoryBook:
    book = _book()
    HistoryStore(store).load(book)
    return book


def _same(book: HistoryBook, restored: HistoryBook) -> None:
    for pair in PAIRS:
        if book.series[pair].first_at is None:
            assert restored.series[pair].first_at is None
        else:
            assert _image(restored.series[pair]) == _image(book.series[pair]), pair


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=STREAMS, second=STREAMS)
def test_saved_history_restores_every_ring(
    tmp_path_factory: pytest.TempPathFactory,
    first: list[tuple[int, float, float]],
    second: list[tuple[int, float, float]],
) -> None:
    store = Store.open(tmp_path_factory.mktemp("store"))
    try:
        book, saver = _book(), HistoryStore(store)
        at = _play(book, first, START)
        saver.save(book)
        _play(book, second, at)  # the second save writes only what changed
        saver.save(book)
        _same(book, _restored(store))
    finally:
        store.close()


def test_a_gap_in_a_saved_block_stays_a_gap(tmp_path: Path) -> None:
    """A bucket the save did not have (NaN) is left alone, its neighbours restored."""
    store = Store.open(tmp_path)
    try:
        book = _book()
        _play(book, [(0, 0.3, 10.0 + n) for n in range(40)], START)
        HistoryStore(store).save(book)
        rows = store.read("SELECT level, block, data FROM quote_history WHERE level = 0")
        level, block, data = rows[0]
        values = array("d")
        values.frombytes(bytes(data))
        gap = next(i for i in range(len(values) // 4) if not math.isnan(values[i])) + 1
        values[gap] = math.nan
        with store.transaction() as db:
            db.execute(
                "UPDATE quote_history SET data = ? WHERE level = ? AND block = ?",
                (values.tobytes(), level, block),
            )
        fine = _restored(store).series[PAIRS[0]].tiers[0]
        original = book.series[PAIRS[0]].tiers[0]
        slot = fine.slot(block * (len(values) // 4) + gap)
        assert math.isnan(fine.last[slot])
        assert math.isnan(fine.area[slot])
        assert fine.last[slot - 1] == original.last[slot - 1]
        assert fine.last[slot + 1] == original.last[slot + 1]
    finally:
        store.close()


class _WhoWrites(HistoryStore):
    """Notes the thread that writes each batch."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.writers: set[str] = set()

    def _write(self, batch: Any, *, wait: bool = True) -> None:
        self.writers.add(threading.current_thread().name)
        super()._write(batch, wait=wait)


@pytest.mark.parametrize("remote", [False, True], ids=["local", "remote"])
async def test_the_periodic_saver_writes_between_quotes_then_a_stop_saves_the_rest(
    tmp_path: Path, remote: bool
) -> None:
    """A local store's batches are written on the event loop between quotes; a remote one's
    (PostgreSQL: each statement waits for the network) by a worker thread. Either way a stop
    while a save is under way loses nothing and lands nothing out of order."""
    store = Store.open(tmp_path)
    store.remote = remote  # what PostgresStore says; the thread logic is the store's own
    try:
        book, saver = _book(), _WhoWrites(store)
        at = _play(book, [(n % 3, 0.35, 100.0 + n % 17) for n in range(600)], START)
        task = asyncio.create_task(saver.keep_saved(book, interval=0.01))
        for _ in range(2000):  # until the saver has written every pair
            await asyncio.sleep(0.01)
            if len(store.read("SELECT pair FROM quote_history_pairs")) == len(PAIRS):
                break
        assert (threading.current_thread().name in saver.writers) is not remote
        assert len(saver.writers) == 1
        _play(book, [(n % 3, 0.05, 50.0 + n % 11) for n in range(300)], at)
        task.cancel()  # as the daemon stops: maybe between two batches, or during one
        await asyncio.gather(task, return_exceptions=True)
        saver.save_quietly(book)
        _same(book, _restored(store))
    finally:
        store.close()


def _seven(capacity: int) -> int:
    return min(7, capacity)


def _block_sizes(store: Store) -> set[tuple[int, int]]:
    """(level, buckets a block) of every saved block."""
    rows = store.read("SELECT level, data FROM quote_history")
    return {(level, len(bytes(data)) // 32) for level, data in rows}


def _current_sizes(book: HistoryBook) -> set[tuple[int, int]]:
    tiers = next(iter(book.series.values())).tiers
    return {(level, block_size(tier.capacity)) for level, tier in enumerate(tiers)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=STREAMS, second=STREAMS, old=st.sampled_from([ring_tenth, _seven]))
def test_a_history_saved_at_another_block_size_restores_then_moves_to_the_current_size(
    tmp_path_factory: pytest.TempPathFactory,
    first: list[tuple[int, float, float]],
    second: list[tuple[int, float, float]],
    old: Callable[[int], int],
) -> None:
    store = Store.open(tmp_path_factory.mktemp("store"))
    try:
        book = _book()
        at = _play(book, first, START)
        HistoryStore(store, block_size=old).save(book)
        restored, saver = _book(), HistoryStore(store)
        saver.load(restored)
        _same(book, restored)
        _play(book, second, at)
        _play(restored, second, at)
        saver.save(restored)  # every pair, changed or not, is rewritten at the current size
        assert _block_sizes(store) <= _current_sizes(book)
        _same(book, _restored(store))
    finally:
        store.close()


def test_a_history_saved_before_blocks_recorded_their_size_is_rewritten_once(
    tmp_path: Path,
) -> None:
    """The state rows of an older version carry no block size: their blocks are tenths of the
    ring. They restore bit for bit; the next save leaves only blocks of the current size, and
    the save after it writes only what changed."""
    store = Store.open(tmp_path)
    try:
        book = _book()
        stream = [(n % 3, gap, 10.0 + n % 23) for n, gap in enumerate([0.35, 7.5, 1.0] * 400)]
        at = _play(book, stream, START)
        HistoryStore(store, block_size=ring_tenth).save(book)
        with store.transaction() as db:  # as the older version wrote them
            for text, state in store.read("SELECT pair, state FROM quote_history_pairs"):
                older = orjson.loads(state)
                for tier in older["tiers"]:
                    del tier["block"]
                db.execute(
                    "UPDATE quote_history_pairs SET state = ? WHERE pair = ?",
                    (orjson.dumps(older), text),
                )
        assert (1, 360) in _block_sizes(store)

        restored, saver = _book(), HistoryStore(store)
        saver.load(restored)
        _same(book, restored)
        assert saver.save(restored) > len(PAIRS) * 10  # all of it, though nothing changed
        assert _block_sizes(store) <= _current_sizes(book)
        _same(book, _restored(store))

        _play(book, [(0, 0.5, 77.0)], at)
        _play(restored, [(0, 0.5, 77.0)], at)
        tiers = len(book.series[PAIRS[0]].tiers)
        assert 0 < saver.save(restored) <= tiers + 1  # one pair's changed blocks, no more
        _same(book, _restored(store))
    finally:
        store.close()
