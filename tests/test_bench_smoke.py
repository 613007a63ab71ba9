"""`notifier bench --quick` runs end to end and reports every figure.

Benchmarks are not tests: nothing here compares a figure with its target.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIGURES = {
    "throughput": (
        "daemon_frames_per_s",
        "daemon_evaluations_per_s",
        "daemon_events_evaluated_per_s",
        "bare_frames_per_s",
        "ratio",
    ),
    "latency": ("p50_ms", "p99_ms", "samples"),
    "reload": ("p50_ms", "p95_ms", "saves"),
    "memory": ("rss_mb", "uptime_s"),
    "startup": ("median_s", "runs"),
}
ROWS = (
    "throughput: quote frames received+parsed",
    "bare loop",
    "ratio daemon / bare",
    "latency p50 / p99",
    "hot reload p50 / p95",
    "memory: VmRSS",
    "start-up to READY=1",
    "200 reading windows: frames / ratio",
    "history: 512 pairs x 1 h at 10 quotes/s",
    "one rule, pct_change('1h') < -5",
    "store, one notification recorded: SQLite",
    "not measured (notifier bench --store postgresql://",
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_bench_prints_every_figure_and_stops_every_process(tmp_path: Path) -> None:
    """The quick run exits 0, prints each row, writes each figure, and leaves no process."""
    out = tmp_path / "bench.json"
    run = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "notifier", "bench", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for row in ROWS:
        assert row in run.stdout
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["error"] is None
    assert results["plan"] == "quick"
    assert {"cpu", "cores", "python"} <= results["machine"].keys()
    for section, keys in FIGURES.items():
        for key in keys:
            value = results[section][key]
            assert isinstance(value, int | float), (section, key, value)
            assert not math.isnan(value), (section, key)
    assert results["store"]["sqlite"]["per_s"] > 0
    windows = results["windows"]
    assert windows["throughput"]["rules"] == 1_201  # 1,000 + the reload file's + 200
    assert windows["throughput"]["ratio"] > 0
    assert windows["history"]["bytes_per_pair"] > 0
    assert set(windows["history"]["evaluation_us"]) >= {"pct_change('1h') < -5"}
    assert set(results["met"]) == set(results["targets"])
    assert results["processes"], "the bench reports the processes it started"
    for process in results["processes"]:
        assert process["exit_code"] is not None
        assert not _alive(process["pid"]), process
