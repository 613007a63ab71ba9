"""The benchmark run: simulator and daemon as separate processes on loopback, five figures.

Placement (the machine this is written for has two cores): the simulator and the bench's own
orchestration share the first CPU; the process under test — the daemon, or the bare receive
loop it is compared with — has the second CPU to itself. Each phase says what load it runs
(``phases``); ``harness`` holds what they share.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from notifier.bench import phases
from notifier.bench.harness import FULL, QUICK, Harness, Plan, say
from notifier.bench.history import history_figures
from notifier.bench.probes import LatencyCollector, NotifySocket, commit_latency_ms
from notifier.bench.procs import Children, free_port
from notifier.bench.report import Results, machine_info, render_table, write_json
from notifier.bench.scale import scale_point
from notifier.bench.scalereport import plot_scale, render_scale
from notifier.bench.store import store_figures
from notifier.bench.workload import LATENCY_IDLE, write_files

__all__ = ["Plan", "run"]


async def run(
    json_path: Path | None,
    *,
    quick: bool = False,
    rules: list[int] | None = None,
    plot: Path | None = None,
    store: str | None = None,
) -> int:
    """Run every phase (with ``rules``: the cost curve of those rule counts instead), print the
    table, write ``json_path`` (and ``plot``); 0 once every figure is measured."""
    plan = QUICK if quick else FULL
    results = Results(machine=machine_info(), plan=plan.name)
    own_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        with tempfile.TemporaryDirectory(prefix="notifier-bench-") as tmp:
            root = Path(tmp)
            timeout = aiohttp.ClientTimeout(total=60)
            children = Children(root)
            async with children, aiohttp.ClientSession(timeout=timeout) as http:
                harness = Harness(root, children, http, plan, results)
                if not rules:
                    results.store = store_figures(root, store, 300 if quick else 2000)
                try:
                    await (_scale_phases(harness, rules) if rules else _run_phases(harness))
                except (RuntimeError, OSError, aiohttp.ClientError) as exc:
                    results.error = f"{type(exc).__name__}: {exc}"
                    say(f"bench failed: {results.error}")
            results.processes = [
                {"name": c.name, "pid": c.pid, "exit_code": c.process.returncode}
                for c in children.started
            ]
    finally:
        if own_cpus is not None:
            os.sched_setaffinity(0, own_cpus)
    sys.stdout.write(render_scale(results) if rules else render_table(results))
    sys.stdout.flush()
    if json_path is not None:
        write_json(results, json_path)
    if plot is not None and results.scale and not plot_scale(results, plot):
        say("no plot: matplotlib is not installed (pip install -e '.[bench]')")
    return 0 if results.error is None else 1


async def _prepare_daemon(h: Harness, sim: dict[str, str], collector: LatencyCollector) -> None:
    """The daemon's config, rules and channel, and the latency pairs quoted idle."""
    h.files = write_files(
        h.root / "daemon",
        quotes_url=sim["quotes_ws"],
        http_port=free_port(),
        notify_port=collector.port,
        pairs=h.pairs,
    )
    await h.script_latency_pairs(LATENCY_IDLE)


async def _scale_phases(h: Harness, counts: list[int]) -> None:
    """The ``--rules`` curve: one daemon after another, each with its count of rules."""
    if h.sim_cpu is not None:
        os.sched_setaffinity(0, {h.sim_cpu})
    sim = await h.start_simulator()
    async with LatencyCollector() as collector:
        await _prepare_daemon(h, sim, collector)
        for count in counts:
            h.results.scale.append(await scale_point(h, count, collector))


async def _run_phases(h: Harness) -> None:
    """The phases in order, around one measured daemon started once."""
    if h.sim_cpu is not None:
        os.sched_setaffinity(0, {h.sim_cpu})
    h.results.placement["bench"] = (
        f"this process (pid {os.getpid()}" + _cpu(h.sim_cpu) + "): orchestration only"
    )
    say("quote history: memory and cost per window rule, in-process")
    h.results.windows["history"] = history_figures(quick=h.plan.name == "quick")
    p50, p99 = commit_latency_ms(h.root)  # before anything else runs: nothing to block
    h.results.disk = {"path": str(h.root), "commit_p50_ms": p50, "commit_p99_ms": p99}
    say(f"SQLite commit with its fsync here: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    sim = await h.start_simulator()
    async with LatencyCollector() as collector:
        await _prepare_daemon(h, sim, collector)
        startups = [await phases.startup_run(h, i) for i in range(h.plan.startup_runs)]
        await phases.bare_throughput(h)
        async with NotifySocket(h.root / "notify-main.sock") as notify:
            daemon, started = await h.start_daemon("daemon", notify)
            startups.append(started)
            h.results.startup = {
                "runs": len(startups),
                "median_s": statistics.median(startups),
                "samples_s": startups,
                "note": "process start -> READY=1, 1,000 rules, state dir reused",
            }
            h.results.placement["daemon"] = (
                f"`notifier run` via `python -m notifier.bench.daemonproc` ({daemon.where})"
            )
            born = time.monotonic() - started  # when the process was started
            await h.wait_subscribed(daemon)
            await h.wait_quiet(born)
            await phases.daemon_throughput(h, daemon)
            await phases.latency(h, daemon, collector)
            await phases.reload(h, daemon)
            await phases.memory(h, daemon, born)
            await phases.window_throughput(h, daemon)
            code = await h.children.stop(daemon)
            h.results.daemon_exit_code = code


def _cpu(cpu: int | None) -> str:
    return "" if cpu is None else f", CPU {cpu}"
