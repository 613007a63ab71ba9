"""``notifier bench``: measured figures of the pipeline (see README, Benchmarks)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["run_bench"]


async def run_bench(json_path: Path | None = None, quick: bool = False) -> int:
    """Not built yet (issue #7): say so instead of printing made-up figures."""
    print("notifier bench: not implemented yet")
    return 1
