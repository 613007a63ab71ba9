"""The quote history's figures, in-process: memory per pair-day of history (512 pairs x 24 h at
10 quotes/s, synthesised), the cost of recording a quote, and the cost per evaluation of a window
rule next to a plain threshold. Figures only; nothing is asserted."""

from __future__ import annotations

import copy
import time
from typing import Any

from notifier.events import PairKey, QuoteEvent
from notifier.history.book import HistoryBook
from notifier.history.series import PairSeries
from notifier.notification import Notification
from notifier.rules.compiled import compile_rule
from notifier.rules.engine import Engine
from notifier.rules.loader import parse_text
from notifier.rules.ruleset import RuleSet
from notifier.tokens import TokenTable

__all__ = ["history_figures"]

DAY = 86400.0
RATE = 10.0  # quotes per second per pair
WHENS = {
    "plain threshold (above: …)": "price > 1.0e12",
    "pct_change('1h') < -5": "pct_change('1h') < -5",
    "min_price('15m') < …": "min_price('15m') < 1.0e-12",
    "avg_price('24h') > …": "avg_price('24h') > 1.0e12",
}


class _Discard:
    def enqueue(self, notification: Notification) -> bool:
        return True


def _day_of_history(seconds: float = DAY) -> tuple[PairSeries, float]:
    """One pair fed ``RATE`` quotes a second for ``seconds``; µs per recorded quote."""
    series = PairSeries(7 * DAY)
    start = 1_700_000_000.0
    count = int(seconds * RATE)
    began = time.thread_time()
    for i in range(count):
        series.record(start + i / RATE, 150.0 + (i % 200) * 0.01)
    return series, (time.thread_time() - began) / count * 1e6


def _bytes(series: PairSeries) -> int:
    return sum(column.itemsize * len(column) for t in series.tiers
               for column in (t.last, t.low, t.high, t.area))  # fmt: skip


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _evaluation_us(when: str, quotes: int = 20_000) -> float:
    """CPU µs per quote of one rule with ``when`` on a pair with an hour of history."""
    pair_yaml = "{in: SOL, out: USDC, amount: 1}"
    text = f"rules:\n  - id: r\n    on: quote\n    pair: {pair_yaml}\n    when: {when}\n"
    parsed, errors = parse_text(text, "bench.yaml")
    assert not errors, errors
    ruleset = RuleSet([compile_rule(parsed[0], TokenTable())])
    now = [1_700_000_000.0]
    book = HistoryBook()
    engine = Engine(ruleset, _Discard(), clock=lambda: now[0], history=book)
    pair: PairKey = next(iter(ruleset.by_pair))
    events = [QuoteEvent(pair, 150_000_000 + i % 1000, 3, 1, i, 0.0) for i in range(quotes)]
    for event in events[: quotes // 2]:  # warm: history and windows filled
        now[0] += 0.2
        book.record(QuoteEvent(pair, event.amount_out, 3, 1, event.slot, now[0]))
    began = time.thread_time()
    for event in events:
        now[0] += 0.1
        engine.handle(event)
    return (time.thread_time() - began) / quotes * 1e6


def history_figures(pairs: int = 512, quick: bool = False) -> dict[str, Any]:
    """Memory of ``pairs`` pairs holding a day of history each, and the per-quote costs."""
    series, record_us = _day_of_history(DAY / 24 if quick else DAY)
    per_pair = _bytes(series)
    before = _rss_kib()
    book = [copy.deepcopy(series) for _ in range(pairs)]
    grown = (_rss_kib() - before) * 1024
    del book
    return {
        "pairs": pairs,
        "hours": 1 if quick else 24,
        "quotes_per_s": RATE,
        "bytes_per_pair": per_pair,
        "buckets_per_pair": per_pair // 32,
        "mb_all_pairs": per_pair * pairs / 1e6,
        "rss_growth_mb": grown / 1e6,
        "record_us": record_us,
        "evaluation_us": {label: _evaluation_us(when) for label, when in WHENS.items()},
    }
