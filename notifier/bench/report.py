"""The bench's results: the machine they were taken on, the table on stdout, the JSON file."""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from notifier import __version__

__all__ = ["TARGETS", "Results", "machine_info", "render_table", "write_json"]

TARGETS: dict[str, float] = {
    "throughput_frames_per_s": 20_000,
    "throughput_ratio": 0.5,
    "latency_p99_ms": 10.0,
    "reload_p95_ms": 300.0,
    "memory_rss_mb": 100.0,
    "startup_s": 1.5,
}


@dataclass(slots=True)
class Results:
    """Every figure of one run; a phase that did not run leaves its dict empty."""

    machine: dict[str, Any]
    plan: str
    placement: dict[str, str] = field(default_factory=dict)
    throughput: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    reload: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    startup: dict[str, Any] = field(default_factory=dict)
    daemon_exit_code: int | None = None
    error: str | None = None

    def verdicts(self) -> dict[str, bool | None]:
        """Each target: met, missed, or None when its figure was not measured."""
        t, lat, rel = self.throughput, self.latency, self.reload
        mem, start = self.memory, self.startup
        return {
            "throughput_frames_per_s": _at_least(
                t.get("daemon_frames_per_s"), "throughput_frames_per_s"
            ),
            "throughput_ratio": _at_least(t.get("ratio"), "throughput_ratio"),
            "latency_p99_ms": _at_most(lat.get("p99_ms"), "latency_p99_ms"),
            "reload_p95_ms": _at_most(
                rel.get("p95_ms") if not rel.get("timeouts") else math.inf, "reload_p95_ms"
            )
            if rel
            else None,
            "memory_rss_mb": _at_most(mem.get("rss_mb"), "memory_rss_mb"),
            "startup_s": _at_most(start.get("median_s"), "startup_s"),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "plan": self.plan,
            "placement": self.placement,
            "throughput": self.throughput,
            "latency": self.latency,
            "reload": self.reload,
            "memory": self.memory,
            "startup": self.startup,
            "targets": TARGETS,
            "met": self.verdicts(),
            "daemon_exit_code": self.daemon_exit_code,
            "error": self.error,
        }


def _at_least(value: float | None, target: str) -> bool | None:
    return None if value is None or math.isnan(value) else value >= TARGETS[target]


def _at_most(value: float | None, target: str) -> bool | None:
    return None if value is None or math.isnan(value) else value <= TARGETS[target]


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "notifier": __version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _num(value: Any, fmt: str = ",.0f") -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "—"
    return format(value, fmt)


def _mark(verdict: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "not measured"}[verdict]


def render_table(r: Results) -> str:
    """The human report: header (machine, placement, workload), one row per figure."""
    m, t, lat, rel, mem, st = r.machine, r.throughput, r.latency, r.reload, r.memory, r.startup
    v = r.verdicts()
    lines = [
        f"notifier bench ({r.plan} run{', shortened windows' if r.plan == 'quick' else ''})",
        f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"{m['implementation']} {m['python']}, {m['system']}, notifier {m['notifier']}",
    ]
    lines += [f"  {part:<10} {where}" for part, where in r.placement.items()]
    lines += [
        "workload: 1,000 quote rules over 512 pairs, 2 quote connections (256 pairs each), "
        "quotes from the simulator on loopback",
        "",
    ]
    rows: list[tuple[str, str, str, str]] = [("figure", "result", "target", "")]
    rows.append(
        ("throughput: frames received+parsed",
         f"{_num(t.get('daemon_frames_per_s'))} /s", "≥ 20,000 /s",
         _mark(v["throughput_frames_per_s"]))
    )  # fmt: skip
    rows.append(
        ("  rule evaluations",
         f"{_num(t.get('daemon_evaluations_per_s'))} /s", "", "")
    )  # fmt: skip
    rows.append(
        ("  quote events evaluated (after conflation)",
         f"{_num(t.get('daemon_events_evaluated_per_s'))} /s "
         f"({_num(100 * t['conflated_share'] if 'conflated_share' in t else None, '.0f')}% "
         "conflated)", "", "")
    )  # fmt: skip
    rows.append(
        ("  bare loop (orjson.loads only)",
         f"{_num(t.get('bare_frames_per_s'))} /s", "", "")
    )  # fmt: skip
    rows.append(
        ("  ratio daemon / bare", _num(t.get("ratio"), ".2f"), "≥ 0.5",
         _mark(v["throughput_ratio"]))
    )  # fmt: skip
    rows.append(
        (f"latency p50 / p99 ({_num(lat.get('load_frames_per_s'))} frames/s)",
         f"{_num(lat.get('p50_ms'), '.2f')} / {_num(lat.get('p99_ms'), '.2f')} ms",
         "p99 ≤ 10 ms", _mark(v["latency_p99_ms"]))
    )  # fmt: skip
    timeouts = rel.get("timeouts")
    rows.append(
        (f"hot reload p50 / p95 ({_num(rel.get('saves'))} saves)",
         f"{_num(rel.get('p50_ms'))} / {_num(rel.get('p95_ms'))} ms"
         + (f", {timeouts} timed out" if timeouts else ""),
         "p95 ≤ 300 ms", _mark(v["reload_p95_ms"]))
    )  # fmt: skip
    rows.append(
        (f"memory: VmRSS after {_num(mem.get('uptime_s'))} s",
         f"{_num(mem.get('rss_mb'), '.1f')} MB (peak {_num(mem.get('peak_mb'), '.1f')})",
         "≤ 100 MB", _mark(v["memory_rss_mb"]))
    )  # fmt: skip
    rows.append(
        (f"start-up to READY=1 (median of {_num(st.get('runs'))})",
         f"{_num(st.get('median_s'), '.2f')} s", "≤ 1.5 s", _mark(v["startup_s"]))
    )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for i, row in enumerate(rows):
        cells = [row[j].ljust(widths[j]) for j in range(3)]
        lines.append(f"{cells[0]}  {cells[1]}  {cells[2]}  {row[3]}".rstrip())
        if i == 0:
            lines.append("-" * (sum(widths) + 6 + 12))
    notes = []
    if t:
        notes.append(
            f"throughput window {_num(t.get('window_s'), '.1f')} s under a full-speed flood; "
            f"the simulator sent {_num(t.get('daemon_sim_sent_per_s'))} frames/s to the daemon "
            f"and {_num(t.get('bare_sim_sent_per_s'))} /s to the bare loop; daemon CPU "
            f"{_num(100 * t['daemon_cpu_share'] if 'daemon_cpu_share' in t else None, '.0f')}%"
        )
    if lat:
        notes.append(
            f"latency: frame written by the simulator -> apprise calls the channel, "
            f"{lat.get('samples')} notifications, max {_num(lat.get('max_ms'), '.2f')} ms, "
            f"daemon CPU {_num(100 * lat.get('daemon_cpu_share', math.nan), '.0f')}%"
        )
    if st:
        samples = ", ".join(f"{s:.2f}" for s in st.get("samples_s", []))
        notes.append(f"start-up samples: {samples} s ({st.get('note', '')})")
    if r.daemon_exit_code is not None:
        notes.append(f"daemon exit code after SIGTERM: {r.daemon_exit_code}")
    if r.error:
        notes.append(f"ERROR: {r.error}")
    lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def write_json(results: Results, path: Path) -> None:
    path.write_bytes(
        orjson.dumps(results.as_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        + b"\n"
    )
