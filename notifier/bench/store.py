"""Store throughput, SQLite next to PostgreSQL: what one notification costs the store (the
engine's transaction — rule state and outbox row together — then the sent mark), and how many
a second one member can record. Prints figures; asserts nothing.

    python -m notifier.bench.store [--count N] [--store postgresql://USER@HOST:PORT/DB]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from notifier.bench.probes import percentile
from notifier.dispatch.outbox import NewRow, Outbox
from notifier.rules.state import AlertState, StateStore
from notifier.secrets import mask_urls
from notifier.store import Store

__all__ = ["main", "measure", "store_figures"]


def measure(store: Store, count: int) -> dict[str, float]:
    """Record ``count`` notifications as the daemon does; per-notification figures."""
    states, outbox = StateStore(store), Outbox(store)
    timings: list[float] = []
    begun = time.perf_counter()
    for n in range(count):
        started = time.perf_counter()
        with store.transaction():
            states.save(AlertState("bench", f"k{n}", "fp", "firing", time.time(), variables={}))
            row_id = outbox.add(
                NewRow(f"bench|{n}|{begun}", "rule", "bench", "t", "b", "info", (), time.time()),
                time.time(),
            )
        assert row_id is not None
        outbox.record_sent(row_id, ["c"], time.time())
        timings.append((time.perf_counter() - started) * 1000)
    elapsed = time.perf_counter() - begun
    return {
        "per_s": count / elapsed,
        "p50_ms": percentile(timings, 0.5),
        "p99_ms": percentile(timings, 0.99),
    }


def store_figures(directory: Path, url: str | None, count: int) -> dict[str, Any]:
    """SQLite in ``directory``, and PostgreSQL at ``url`` when given, side by side."""
    figures: dict[str, Any] = {"count": count}
    sqlite = Store.open(directory / "store-bench")
    try:
        figures["sqlite"] = measure(sqlite, count)
    finally:
        sqlite.close()
    if url:
        from notifier.store.postgres import PostgresStore  # noqa: PLC0415 - optional

        try:
            postgres = PostgresStore.connect(url)
            try:
                figures["postgresql"] = measure(postgres, count)
            finally:
                postgres.close()
        except Exception as exc:  # the rest of the bench still runs; the table says why
            figures["postgresql_error"] = mask_urls(f"{type(exc).__name__}: {exc}")
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m notifier.bench.store")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--store", help="a postgresql:// URL to measure next to SQLite")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        stores: list[tuple[str, Store]] = [("sqlite", Store.open(Path(directory)))]
        if args.store:
            from notifier.store.postgres import PostgresStore  # noqa: PLC0415 - optional

            stores.append(("postgresql", PostgresStore.connect(args.store)))
        print(f"{'store':<12} {'notifications/s':>16} {'p50 ms':>8} {'p99 ms':>8}")
        for name, store in stores:
            figures = measure(store, args.count)
            print(
                f"{name:<12} {figures['per_s']:>16.0f} "
                f"{figures['p50_ms']:>8.2f} {figures['p99_ms']:>8.2f}"
            )
            store.close()


if __name__ == "__main__":
    main()
