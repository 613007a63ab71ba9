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

__all__ = ["SCALE_TARGETS", "TARGETS", "Results", "machine_info", "render_table", "write_json"]

TARGETS: dict[str, float] = {
    "throughput_frames_per_s": 20_000,
    "throughput_ratio": 0.5,
    "latency_p99_ms": 10.0,
    "reload_p95_ms": 300.0,
    "memory_rss_mb": 100.0,
    "startup_s": 1.5,
}

# Issue #15, per rule count: burst-drain ratio, READY, RSS, reload p95, latency p99.
SCALE_TARGETS: dict[int, dict[str, float]] = {
    1_000: {"ratio": 0.6, "ready_s": 1.0, "rss_mb": 100.0, "latency_p99_ms": 5.0},
    100_000: {"ratio": 0.4, "ready_s": 10.0, "rss_mb": 250.0, "reload_p95_ms": 300.0},
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
    windows: dict[str, Any] = field(default_factory=dict)  # window rules and the history
    store: dict[str, Any] = field(default_factory=dict)  # SQLite next to PostgreSQL
    startup: dict[str, Any] = field(default_factory=dict)
    disk: dict[str, Any] = field(default_factory=dict)
    scale: list[dict[str, Any]] = field(default_factory=list)  # ``--rules``: one per count
    processes: list[dict[str, Any]] = field(default_factory=list)  # every child, once stopped
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
            "windows": self.windows,
            "store": self.store,
            "latency": self.latency,
            "reload": self.reload,
            "memory": self.memory,
            "startup": self.startup,
            "disk": self.disk,
            **({"scale": self.scale, "scale_targets": _keyed(SCALE_TARGETS)} if self.scale else {}),
            "processes": self.processes,
            "targets": TARGETS,
            "met": self.verdicts(),
            "daemon_exit_code": self.daemon_exit_code,
            "error": self.error,
        }


def _keyed(targets: dict[int, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {str(count): figures for count, figures in targets.items()}


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
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "notifier": __version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def _num(value: Any, fmt: str = ",.0f") -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "—"
    return format(value, fmt)


def _mark(verdict: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "not measured"}[verdict]


def _pct(value: Any) -> str:
    return _num(100 * value if isinstance(value, int | float) else None, ".0f") + "%"


def render_table(r: Results) -> str:
    """The human report: header (machine, placement, workload), one row per figure, notes."""
    m, t, lat, rel, mem, st = r.machine, r.throughput, r.latency, r.reload, r.memory, r.startup
    v = r.verdicts()
    lines = [
        f"notifier bench ({r.plan} run{', shortened windows' if r.plan == 'quick' else ''})",
        f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"{m['implementation']} {m['python']}, {m['system']}, notifier {m['notifier']}, "
        f"load average at start {m['loadavg_at_start'][0]:.2f}",
        *(f"  {part:<10} {where}" for part, where in r.placement.items()),
        "workload: 1,000 quote rules over 512 pairs, 2 quote connections of 256 pairs",
        "",
    ]
    timeouts = rel.get("timeouts")
    rows: list[tuple[str, str, str, str]] = [
        ("figure", "result", "target", ""),
        ("throughput: quote frames received+parsed",
         f"{_num(t.get('daemon_frames_per_s'))} /s at {_pct(t.get('daemon_cpu_share'))} CPU",
         "≥ 20,000 /s", _mark(v["throughput_frames_per_s"])),
        ("  rule evaluations",
         f"{_num(t.get('daemon_evaluations_per_s'))} /s "
         f"(~{_num(t.get('daemon_events_evaluated_per_s'))} quote events)", "", ""),
        ("  conflated (newer quote of the same pair)",
         _pct(t.get("conflated_share")), "", ""),
        ("  bare loop, same flood (simulator-bound)",
         f"{_num(t.get('bare_frames_per_s'))} /s at {_pct(t.get('bare_cpu_share'))} CPU",
         "", ""),
        (f"  CPU at {_num(t.get('equal_load_frames_per_s'))} frames/s: daemon / bare",
         f"{_pct(t.get('daemon_cpu_share_at_equal_load'))} / "
         f"{_pct(t.get('bare_cpu_share_at_equal_load'))}", "", ""),
        ("  ratio daemon / bare, equal load (CPU per frame)",
         _num(t.get("ratio"), ".2f"), "≥ 0.5", _mark(v["throughput_ratio"])),
        ("  ratio at full speed, per CPU-second",
         _num(t.get("ratio_full_speed_per_cpu"), ".2f")
         + f" (by rate {_num(t.get('ratio_received'), '.2f')})", "", ""),
        (f"latency p50 / p99 at {_num(lat.get('load_frames_per_s'))} frames/s",
         f"{_num(lat.get('p50_ms'), '.1f')} / {_num(lat.get('p99_ms'), '.1f')} ms",
         "p99 ≤ 10 ms", _mark(v["latency_p99_ms"])),
        ("  frame sent -> rule evaluated",
         f"{_num(lat.get('to_engine_p50_ms'), '.1f')} / "
         f"{_num(lat.get('to_engine_p99_ms'), '.1f')} ms", "", ""),
        ("  rule evaluated -> apprise calls channel",
         f"{_num(lat.get('engine_to_apprise_p50_ms'), '.1f')} / "
         f"{_num(lat.get('engine_to_apprise_p99_ms'), '.1f')} ms", "", ""),
        (f"hot reload p50 / p95 ({_num(rel.get('saves'))} saves)",
         f"{_num(rel.get('p50_ms'))} / {_num(rel.get('p95_ms'))} ms"
         + (f", {timeouts} timed out" if timeouts else ""),
         "p95 ≤ 300 ms", _mark(v["reload_p95_ms"])),
        (f"memory: VmRSS after {_num(mem.get('uptime_s'))} s",
         f"{_num(mem.get('rss_mb'), '.1f')} MB (peak {_num(mem.get('peak_mb'), '.1f')})",
         "≤ 100 MB", _mark(v["memory_rss_mb"])),
        *_window_rows(r.windows),
        *_store_rows(r.store),
        (f"start-up to READY=1, median of {_num(st.get('runs'))}",
         f"{_num(st.get('median_s'), '.2f')} s", "≤ 1.5 s", _mark(v["startup_s"])),
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for i, row in enumerate(rows):
        cells = [row[j].ljust(widths[j]) for j in range(3)]
        lines.append(f"{cells[0]}  {cells[1]}  {cells[2]}  {row[3]}".rstrip())
        if i == 0:
            lines.append("-" * (sum(widths) + 6 + len("not measured")))
    lines += ["", *(f"- {note}" for note in _notes(r))]
    return "\n".join(lines) + "\n"


def _window_rows(w: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Rows for the quote history: throughput with window rules, memory, cost per rule."""
    t, h = w.get("throughput") or {}, w.get("history") or {}
    rows = []
    if t:
        rows.append((
            f"with {_num(t.get('rules'))} rules, 200 reading windows: frames / ratio",
            f"{_num(t.get('daemon_frames_per_s'))} /s / {_num(t.get('ratio'), '.2f')}", "", "",
        ))  # fmt: skip
    if h:
        rows.append((
            f"history: {_num(h.get('pairs'))} pairs x {_num(h.get('hours'))} h at "
            f"{_num(h.get('quotes_per_s'))} quotes/s",
            f"{_num(h.get('mb_all_pairs'), '.1f')} MB "
            f"({_num((h.get('bytes_per_pair') or 0) / 1024, '.0f')} KiB a pair, "
            f"{_num(h.get('record_us'), '.2f')} us a quote)", "", "",
        ))  # fmt: skip
        for label, us in (h.get("evaluation_us") or {}).items():
            rows.append((f"  one rule, {label}", f"{_num(us, '.2f')} us a quote", "", ""))
    return rows


def _store_rows(store: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """One notification recorded: state and outbox row in one transaction, then the sent mark."""
    if not store:
        return []
    rows = []
    for name, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        f = store.get(name)
        if f:
            result = f"{_num(f.get('per_s'))} /s, p50 / p99 {_num(f.get('p50_ms'), '.2f')} / "
            result += f"{_num(f.get('p99_ms'), '.2f')} ms"
        elif name == "postgresql" and store.get("postgresql_error"):
            result = f"failed: {store['postgresql_error']}"[:80]
        else:
            result = "not measured (notifier bench --store postgresql://…)"
        rows.append((f"store, one notification recorded: {label}", result, "", ""))
    return rows


def _notes(r: Results) -> list[str]:
    t, lat, rel, mem, st, disk = r.throughput, r.latency, r.reload, r.memory, r.startup, r.disk
    notes = []
    if t:
        notes.append(
            f"throughput: {_num(t.get('window_s'), '.1f')} s windows; full speed = the "
            "simulator pushes a quarter more than the consumer reads (it wrote "
            f"{_num(t.get('daemon_sim_sent_per_s'))} /s to the daemon, "
            f"{_num(t.get('bare_sim_sent_per_s'))} /s to the bare loop, which it cannot "
            "saturate from one core); the ratio compares CPU time per frame when both get "
            f"the same {_num(t.get('equal_load_frames_per_s'))} frames/s, i.e. their "
            "throughputs given a whole core each; other processes took "
            f"{_pct(t.get('daemon_others_cpu_share'))} / {_pct(t.get('bare_others_cpu_share'))} "
            "of the test CPU at full speed, "
            f"{_pct(t.get('daemon_others_cpu_share_at_equal_load'))} / "
            f"{_pct(t.get('bare_others_cpu_share_at_equal_load'))} at equal load"
        )
    if lat:
        notes.append(
            f"latency: simulator writes the frame -> apprise calls the channel, "
            f"{lat.get('samples')} notifications, max {_num(lat.get('max_ms'), '.1f')} ms, "
            f"daemon CPU {_pct(lat.get('daemon_cpu_share'))} (others "
            f"{_pct(lat.get('others_cpu_share'))}), "
            f"{_num(lat.get('reloads_during'))} reload(s) during the window"
        )
    if rel:
        notes.append(
            f"hot reload: wall clock from before the write until GET /api/v1/status lists the "
            f"new rule (polled every 10 ms); the daemon's own reload work averaged "
            f"{_num(rel.get('reload_work_mean_ms'), '.0f')} ms over {_num(rel.get('reloads'))} "
            "reloads"
        )
    if mem:
        notes.append(
            f"memory: VmRSS of the daemon {_num(mem.get('uptime_s'))} s after its start, after "
            f"the phases above, under {_num(mem.get('load_frames_per_s'))} frames/s"
        )
    if disk:
        notes.append(
            f"disk: one SQLite commit that waits for the disk (what a send waits for) takes "
            f"p50 {_num(disk.get('commit_p50_ms'), '.1f')} / "
            f"p99 {_num(disk.get('commit_p99_ms'), '.1f')} ms here"
        )
    if st:
        samples = ", ".join(f"{s:.2f}" for s in st.get("samples_s", []))
        notes.append(f"start-up samples: {samples} s ({st.get('note', '')})")
    if r.daemon_exit_code is not None:
        notes.append(f"daemon exit code after SIGTERM: {r.daemon_exit_code}")
    if r.processes:
        codes = ", ".join(f"{p['name']} {p['exit_code']}" for p in r.processes)
        notes.append(f"child processes, all stopped (exit codes): {codes}")
    if r.error:
        notes.append(f"ERROR: {r.error}")
    return notes


def write_json(results: Results, path: Path) -> None:
    path.write_bytes(orjson.dumps(results.as_json(), option=orjson.OPT_INDENT_2) + b"\n")
