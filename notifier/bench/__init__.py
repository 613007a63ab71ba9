"""``notifier bench``: measured figures of the pipeline (see README, Benchmarks).

The package also holds the bench's child processes (``python -m notifier.bench.<name>``), so
importing it stays cheap: the orchestration loads only when ``run_bench`` is called.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["run_bench"]


async def run_bench(
    json_path: Path | None = None,
    quick: bool = False,
    rules: list[int] | None = None,
    plot: Path | None = None,
    store: str | None = None,
) -> int:
    """Run every benchmark (or the ``rules`` cost curve), print the table, write ``json_path``
    and ``plot``; the exit code."""
    from notifier.bench.runner import run  # noqa: PLC0415 - see the module docstring

    return await run(json_path, quick=quick, rules=rules, plot=plot, store=store)
