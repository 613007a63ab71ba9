"""The benchmark run: simulator and daemon as separate processes on loopback, five figures.

Placement (the machine this is written for has two cores): the simulator and the bench's own
orchestration share the first CPU; the process under test — the daemon, or the bare receive
loop it is compared with — has the second CPU to itself. Each phase says what load it runs.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from notifier.bench.probes import (
    LatencyCollector,
    NotifySocket,
    commit_latency_ms,
    counter_values,
    cpu_busy_seconds,
    cpu_seconds,
    percentile,
)
from notifier.bench.procs import Child, Children, cpu_for, free_port, read_rss_kib
from notifier.bench.report import Results, machine_info, render_table, write_json
from notifier.bench.workload import (
    AMOUNT,
    LATENCY_ARMED,
    LATENCY_IDLE,
    LATENCY_PAIRS,
    PAIR_COUNT,
    RULE_COUNT,
    BenchFiles,
    bench_pairs,
    reload_rule_yaml,
    write_files,
)
from notifier.events import PairKey

__all__ = ["Plan", "run"]

COUNTERS = {
    "frames": ("notifier_events_total", "source=quote"),
    "evaluations": ("notifier_rule_evaluations_total", "kind=quote"),
    "reloads": ("notifier_reloads_total", "outcome=ok"),
    "reload_seconds": ("notifier_reload_seconds_sum", ""),
    "reload_count": ("notifier_reload_seconds_count", ""),
}
START_TIMEOUT = 60.0
LATENCY_RATE = 5_000.0
SATURATE = None  # flood rate: a quarter above what the consumer reads (see simproc)
EQUAL_LOAD = 25_000.0  # frames/s both consumers get when their CPU costs are compared
Reader = Callable[[], Awaitable[dict[str, float]]]


@dataclass(frozen=True, slots=True)
class Plan:
    """How long each phase runs; ``QUICK`` is for the smoke test and says so in the output."""

    name: str
    startup_runs: int  # dedicated starts, besides the measured daemon's own start
    warmup_s: float
    window_s: float
    latency_s: float
    reload_saves: int
    memory_after_s: float


FULL = Plan("full", 8, 2.0, 10.0, 30.0, 50, 60.0)
QUICK = Plan("quick", 1, 1.0, 2.0, 3.0, 3, 10.0)


async def run(json_path: Path | None, *, quick: bool = False) -> int:
    """Run every phase, print the table, write ``json_path``; 0 once every figure is measured."""
    plan = QUICK if quick else FULL
    results = Results(machine=machine_info(), plan=plan.name)
    own_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        with tempfile.TemporaryDirectory(prefix="notifier-bench-") as tmp:
            root = Path(tmp)
            timeout = aiohttp.ClientTimeout(total=60)
            children = Children(root)
            async with children, aiohttp.ClientSession(timeout=timeout) as http:
                bench = _Bench(root, children, http, plan, results)
                try:
                    await bench.run()
                except (RuntimeError, OSError, aiohttp.ClientError) as exc:
                    results.error = f"{type(exc).__name__}: {exc}"
                    _say(f"bench failed: {results.error}")
            results.processes = [
                {"name": c.name, "pid": c.pid, "exit_code": c.process.returncode}
                for c in children.started
            ]
    finally:
        if own_cpus is not None:
            os.sched_setaffinity(0, own_cpus)
    sys.stdout.write(render_table(results))
    sys.stdout.flush()
    if json_path is not None:
        write_json(results, json_path)
    return 0 if results.error is None else 1


def _say(text: str) -> None:
    """Progress on stderr; the table and nothing else goes to stdout."""
    print(f"notifier bench: {text}", file=sys.stderr, flush=True)


class _Bench:
    def __init__(
        self,
        root: Path,
        children: Children,
        http: aiohttp.ClientSession,
        plan: Plan,
        results: Results,
    ) -> None:
        self.root = root
        self.children = children
        self.http = http
        self.plan = plan
        self.results = results
        self.pairs = bench_pairs()
        self.sim_cpu, self.test_cpu = cpu_for(0), cpu_for(1)
        self.sim_url = ""
        self.files: BenchFiles | None = None

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> None:
        if self.sim_cpu is not None:
            os.sched_setaffinity(0, {self.sim_cpu})
        self.results.placement["bench"] = (
            f"this process (pid {os.getpid()}" + _cpu(self.sim_cpu) + "): orchestration only"
        )
        p50, p99 = commit_latency_ms(self.root)  # before anything else runs: nothing to block
        self.results.disk = {"path": str(self.root), "commit_p50_ms": p50, "commit_p99_ms": p99}
        _say(f"SQLite commit (WAL, synchronous=FULL) here: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        sim = await self._start_simulator()
        async with LatencyCollector() as collector:
            self.files = write_files(
                self.root / "daemon",
                quotes_url=sim["quotes_ws"],
                http_port=free_port(),
                notify_port=collector.port,
                pairs=self.pairs,
            )
            await self._script_latency_pairs(LATENCY_IDLE)
            startups = [await self._startup_run(i) for i in range(self.plan.startup_runs)]
            await self._bare_throughput()
            async with NotifySocket(self.root / "notify-main.sock") as notify:
                daemon, started = await self._start_daemon("daemon", notify)
                startups.append(started)
                self.results.startup = {
                    "runs": len(startups),
                    "median_s": statistics.median(startups),
                    "samples_s": startups,
                    "note": "process start -> READY=1, 1,000 rules, state dir reused",
                }
                self.results.placement["daemon"] = (
                    f"`notifier run` via `python -m notifier.bench.daemonproc` ({daemon.where})"
                )
                born = time.monotonic() - started  # when the process was started
                await self._wait_subscribed(daemon)
                await self._wait_quiet(born)
                await self._daemon_throughput(daemon)
                await self._latency(daemon, collector)
                await self._reload(daemon)
                await self._memory(daemon, born)
                code = await self.children.stop(daemon)
                self.results.daemon_exit_code = code

    # -- processes ---------------------------------------------------------------------------

    async def _start_simulator(self) -> dict[str, Any]:
        _say("starting the simulator")
        sim = await self.children.start(
            "simulator", ["python", "-m", "notifier.bench.simproc"], cpu=self.sim_cpu
        )
        info: dict[str, Any] = orjson.loads(await sim.readline(START_TIMEOUT))
        self.sim_url = f"http://127.0.0.1:{info['port']}"
        self.results.placement["simulator"] = (
            f"`python -m notifier.bench.simproc` child ({sim.where}), {self.sim_url}"
        )
        return info

    async def _start_daemon(self, name: str, notify: NotifySocket) -> tuple[Child, float]:
        assert self.files is not None
        argv = ["python", "-m", "notifier.bench.daemonproc", "run", "-c", str(self.files.config)]
        env = {"NOTIFY_SOCKET": str(notify.path)}
        begun = time.perf_counter()
        child = await self.children.start(name, argv, cpu=self.test_cpu, env=env, stdout=False)
        wait = asyncio.create_task(notify.wait_ready(START_TIMEOUT))
        exited = asyncio.create_task(child.process.wait())
        done, _ = await asyncio.wait([wait, exited], return_when=asyncio.FIRST_COMPLETED)
        if wait not in done:
            wait.cancel()
            raise RuntimeError(f"daemon exited with {child.process.returncode}: {child.tail_log()}")
        exited.cancel()
        return child, wait.result() - begun

    async def _startup_run(self, index: int) -> float:
        async with NotifySocket(self.root / f"notify-{index}.sock") as notify:
            child, elapsed = await self._start_daemon(f"startup-{index}", notify)
            _say(f"start-up run {index + 1}: READY=1 after {elapsed:.2f}s")
            await self.children.stop(child)
        return elapsed

    # -- simulator control -------------------------------------------------------------------

    async def _sim(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.sim_url}{path}"
        request = self.http.post(url, json=body or {}) if body is not None else self.http.get(url)
        async with request as response:
            answer: dict[str, Any] = await response.json(loads=orjson.loads)
        if response.status != 200:
            raise RuntimeError(f"simulator {path}: {answer}")
        return answer

    async def _sim_quotes(self) -> dict[str, Any]:
        quotes: dict[str, Any] = (await self._sim("/_sim/stats"))["quotes"]
        return quotes

    async def _script_latency_pairs(self, amount_out: int) -> None:
        for pair in self.pairs[:LATENCY_PAIRS]:
            body = {"in_mint": pair[0], "out_mint": pair[1], "amount": AMOUNT,
                    "amount_out": amount_out}  # fmt: skip
            await self._sim("/_sim/quotes/set", body)

    async def _flood(self, rate: float | None, seconds: float) -> None:
        """Start a flood (after the previous one ended) with a fresh record of send times."""
        for _ in range(600):  # a flood ends by itself, within its duration
            if not (await self._sim("/_bench/flood"))["running"]:
                break
            await asyncio.sleep(0.1)
        await self._sim("/_bench/send_times", {"slots": []})  # keep the record small
        await self._sim("/_bench/flood", {"rate_per_s": rate, "duration_s": seconds})

    # -- daemon observation ------------------------------------------------------------------

    def _daemon_url(self, path: str) -> str:
        assert self.files is not None
        return f"http://127.0.0.1:{self.files.http_port}{path}"

    async def _counters(self) -> dict[str, float]:
        async with self.http.get(self._daemon_url("/metrics")) as response:
            text = await response.text()
        return counter_values(text, COUNTERS)

    async def _status(self) -> dict[str, Any]:
        async with self.http.get(self._daemon_url("/api/v1/status")) as response:
            status: dict[str, Any] = await response.json(loads=orjson.loads)
        return status

    async def _wait_subscribed(self, daemon: Child, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            quotes = await self._sim_quotes()
            if quotes["subscriptions"] >= PAIR_COUNT and quotes["connections"] >= 2:
                return
            if daemon.process.returncode is not None:
                raise RuntimeError(f"daemon exited: {daemon.tail_log()}")
            await asyncio.sleep(0.05)
        raise RuntimeError(f"daemon did not subscribe {PAIR_COUNT} pairs within {timeout:g}s")

    async def _wait_quiet(self, born: float, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Let start-up finish: the watcher's catch-up reload done, no reload for 1.5 s."""
        deadline = time.monotonic() + timeout
        last, quiet = -1.0, 0
        while time.monotonic() < deadline and (quiet < 3 or time.monotonic() - born < 3.0):
            reloads = (await self._counters())["reloads"]
            quiet = quiet + 1 if reloads == last else 0
            last = reloads
            await asyncio.sleep(0.5)

    async def _drain(self, daemon: Child, frames_before: float, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait for the flood to end and the daemon to read every frame it pushed; past
        ``timeout`` drop the quote sockets (discarding the backlog) and wait for the
        resubscription. True when the daemon read everything."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            flood = await self._sim("/_bench/flood")
            if not flood["running"]:
                frames = (await self._counters())["frames"]
                if frames >= frames_before + flood["updates"]:
                    return True
            await asyncio.sleep(0.2)
        _say(f"the daemon's backlog was not read within {timeout:g}s: dropping its sockets")
        await self._sim("/_sim/quotes/drop", {})
        await asyncio.sleep(0.5)
        await self._wait_subscribed(daemon)
        return False

    # -- 1. throughput -------------------------------------------------------------------------

    async def _window(
        self, read: Reader, pid: int, seconds: float
    ) -> tuple[dict[str, float], float, _CpuMeter]:
        """Rates of the consumer's counters (``read``) and of the simulator's quotes sent, and
        the CPU use, between two readings ``seconds`` apart."""
        first, sim_first = await read(), await self._sim_quotes()
        meter = _CpuMeter(pid, self.test_cpu)
        await asyncio.sleep(seconds)
        last, sim_last = await read(), await self._sim_quotes()
        meter.stop()
        rates = {k: (last[k] - first[k]) / meter.elapsed for k in first}
        sim_rate = (sim_last["quotes_sent"] - sim_first["quotes_sent"]) / meter.elapsed
        return rates, sim_rate, meter

    async def _load(
        self, name: str, read: Reader, pid: int, rate: float | None
    ) -> dict[str, float]:
        """One measured window of a consumer under a flood (``rate`` None: saturating)."""
        plan = self.plan
        await self._flood(rate, plan.warmup_s + plan.window_s + 0.5)
        await asyncio.sleep(plan.warmup_s)
        rates, sim_rate, cpu = await self._window(read, pid, plan.window_s)
        load = "full speed" if rate is None else f"{rate:,.0f} frames/s offered"
        _say(f"{name} at {load}: {rates['frames']:,.0f} frames/s read at {cpu.share:.0%} CPU")
        return {
            **rates,
            "sim_sent": sim_rate,
            "cpu": cpu.share,
            "others": cpu.others,
            "window": cpu.elapsed,
        }

    async def _bare_throughput(self) -> None:
        _say("throughput: bare receive loop (aiohttp + orjson.loads only)")
        pairs_file = self.root / "pairs.json"
        pairs_file.write_bytes(orjson.dumps(self.pairs))
        quotes_ws = self.sim_url.replace("http://", "ws://") + "/api/v1/stream"
        argv = ["python", "-m", "notifier.bench.bare", quotes_ws, str(pairs_file)]
        bare = await self.children.start("bare", argv, cpu=self.test_cpu)
        self.results.placement["bare loop"] = f"`python -m notifier.bench.bare` ({bare.where})"
        subscribed = orjson.loads(await bare.readline(START_TIMEOUT))["subscribed"]
        if subscribed != PAIR_COUNT:
            raise RuntimeError(f"bare loop subscribed {subscribed} pairs, not {PAIR_COUNT}")

        async def read() -> dict[str, float]:
            await bare.writeline("count")
            return {"frames": float(orjson.loads(await bare.readline(10.0))["frames"])}

        full = await self._load("bare loop", read, bare.pid, SATURATE)
        equal = await self._load("bare loop", read, bare.pid, EQUAL_LOAD)
        await self.children.stop(bare)
        await asyncio.sleep(1.0)  # the flood ends; the simulator forgets the closed sockets
        self.results.throughput.update(
            {
                "bare_frames_per_s": full["frames"],
                "bare_sim_sent_per_s": full["sim_sent"],
                "bare_cpu_share": full["cpu"],
                "bare_others_cpu_share": full["others"],
                "bare_frames_at_equal_load_per_s": equal["frames"],
                "bare_cpu_share_at_equal_load": equal["cpu"],
                "bare_others_cpu_share_at_equal_load": equal["others"],
            }
        )

    async def _daemon_throughput(self, daemon: Child) -> None:
        _say("throughput: daemon with 1,000 rules over 512 pairs")
        t = self.results.throughput
        before = (await self._counters())["frames"]
        full = await self._load("daemon", self._counters, daemon.pid, SATURATE)
        t["backlog_read"] = await self._drain(daemon, before, timeout=15.0)
        before = (await self._counters())["frames"]
        equal = await self._load("daemon", self._counters, daemon.pid, EQUAL_LOAD)
        t["backlog_read_at_equal_load"] = await self._drain(daemon, before, timeout=15.0)
        frames, evaluations = full["frames"], full["evaluations"]
        events = evaluations / (RULE_COUNT / PAIR_COUNT)  # every pair gets the same share
        bare_cpu = t.get("bare_cpu_share_at_equal_load", math.nan)
        t.update(
            {
                "daemon_frames_per_s": frames,
                "daemon_evaluations_per_s": evaluations,
                "daemon_events_evaluated_per_s": events,
                "conflated_share": max(0.0, 1.0 - events / frames) if frames else 0.0,
                "daemon_sim_sent_per_s": full["sim_sent"],
                "daemon_cpu_share": full["cpu"],
                "daemon_others_cpu_share": full["others"],
                "equal_load_frames_per_s": EQUAL_LOAD,
                "daemon_frames_at_equal_load_per_s": equal["frames"],
                "daemon_evaluations_at_equal_load_per_s": equal["evaluations"],
                "daemon_cpu_share_at_equal_load": equal["cpu"],
                "daemon_others_cpu_share_at_equal_load": equal["others"],
                # Same frames, same chunking: the throughput ratio if each had a whole core.
                "ratio": _div(bare_cpu, equal["cpu"]),
                "ratio_received": _div(frames, t.get("bare_frames_per_s", math.nan)),
                # At full speed, per CPU-second: varies with how much the daemon conflated.
                "ratio_full_speed_per_cpu": _div(
                    _div(frames, full["cpu"]),
                    _div(t.get("bare_frames_per_s", math.nan), t.get("bare_cpu_share", math.nan)),
                ),
                "window_s": full["window"],
                "rules": RULE_COUNT,
                "pairs": PAIR_COUNT,
                "connections": 2,
            }
        )

    # -- 2. latency ----------------------------------------------------------------------------

    async def _latency(self, daemon: Child, collector: LatencyCollector) -> None:
        seconds = self.plan.latency_s
        _say(f"latency: {LATENCY_RATE:,.0f} frames/s for {seconds:g}s, ~10 crossings/s")
        await self._script_latency_pairs(LATENCY_ARMED)
        await asyncio.sleep(0.5)
        collector.take()
        before = await self._counters()
        cpu = _CpuMeter(daemon.pid, self.test_cpu)
        await self._flood(LATENCY_RATE, seconds)
        await asyncio.sleep(seconds)
        cpu.stop()
        kept_up = await self._drain(daemon, before["frames"], timeout=10.0)
        await asyncio.sleep(1.0)  # the last notifications leave the outbox
        received = collector.take()
        reloads = (await self._counters())["reloads"] - before["reloads"]
        await self._script_latency_pairs(LATENCY_IDLE)
        answer = await self._sim("/_bench/send_times", {"slots": [d.slot for d in received]})
        sent = {int(slot): at for slot, at in answer["send_times"].items()}
        matched = [d for d in received if d.slot in sent]
        if not matched:
            raise RuntimeError("latency: no notification reached the bench:// channel")
        total = [(d.called_at - sent[d.slot]) * 1000 for d in matched]
        to_engine = [(d.evaluated_at - sent[d.slot]) * 1000 for d in matched]
        to_apprise = [(d.called_at - d.evaluated_at) * 1000 for d in matched]
        self.results.latency = {
            "load_frames_per_s": LATENCY_RATE,
            "duration_s": seconds,
            "samples": len(matched),
            "p50_ms": percentile(total, 0.50),
            "p99_ms": percentile(total, 0.99),
            "max_ms": max(total),
            "to_engine_p50_ms": percentile(to_engine, 0.50),
            "to_engine_p99_ms": percentile(to_engine, 0.99),
            "engine_to_apprise_p50_ms": percentile(to_apprise, 0.50),
            "engine_to_apprise_p99_ms": percentile(to_apprise, 0.99),
            "reloads_during": reloads,
            "backlog_read": kept_up,
            "daemon_cpu_share": cpu.share,
            "others_cpu_share": cpu.others,
        }
        _say(
            f"latency: p50 {self.results.latency['p50_ms']:.2f} ms, "
            f"p99 {self.results.latency['p99_ms']:.2f} ms over {len(matched)} notifications"
        )

    # -- 3. hot reload -------------------------------------------------------------------------

    async def _reload(self, daemon: Child) -> None:
        assert self.files is not None
        saves = self.plan.reload_saves
        _say(f"hot reload: {saves} saves of a rule file (atomic rename), idle quotes")
        target, temp = self.files.reload_file, self.files.rules_dir / ".reload.yaml.swp"
        timings: list[float] = []
        timeouts = 0
        before = await self._counters()
        for n in range(saves):
            pair: PairKey = self.pairs[n % len(self.pairs)]
            wanted = f"reload-{n}"
            begun = time.perf_counter()
            temp.write_text(reload_rule_yaml(n, pair), encoding="utf-8")
            temp.replace(target)
            while True:
                if wanted in _active_ids(await self._status()):
                    timings.append((time.perf_counter() - begun) * 1000)
                    break
                if time.perf_counter() - begun > 10.0:
                    timeouts += 1
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
        if daemon.process.returncode is not None:
            raise RuntimeError(f"daemon exited during reloads: {daemon.tail_log()}")
        after = await self._counters()
        reloads = after["reload_count"] - before["reload_count"]
        work = (after["reload_seconds"] - before["reload_seconds"]) / reloads if reloads else 0
        self.results.reload = {
            "saves": saves,
            "timeouts": timeouts,
            "p50_ms": percentile(timings, 0.50),
            "p95_ms": percentile(timings, 0.95),
            "max_ms": max(timings, default=float("nan")),
            "reloads": reloads,
            "reload_work_mean_ms": work * 1000,
            "rules_loaded": RULE_COUNT,
        }
        _say(
            f"hot reload: p50 {self.results.reload['p50_ms']:.0f} ms, "
            f"p95 {self.results.reload['p95_ms']:.0f} ms"
        )

    # -- 4. memory -----------------------------------------------------------------------------

    async def _memory(self, daemon: Child, born: float) -> None:
        steady = 3.0 if self.plan.name == "full" else 1.0
        remaining = max(steady, self.plan.memory_after_s - (time.monotonic() - born))
        _say(f"memory: {LATENCY_RATE:,.0f} frames/s for {remaining:.0f}s, then VmRSS")
        await self._flood(LATENCY_RATE, remaining + 1.0)
        await asyncio.sleep(remaining)
        rss, hwm = read_rss_kib(daemon.pid)
        self.results.memory = {
            "rss_mb": rss * 1024 / 1e6,
            "peak_mb": hwm * 1024 / 1e6,
            "rss_mib": rss / 1024,
            "uptime_s": time.monotonic() - born,
            "load_frames_per_s": LATENCY_RATE,
        }
        await asyncio.sleep(1.0)
        _say(f"memory: VmRSS {rss * 1024 / 1e6:.1f} MB (peak {hwm * 1024 / 1e6:.1f} MB)")


class _CpuMeter:
    """CPU time of the process under test, and what other processes took from its CPU."""

    def __init__(self, pid: int, cpu: int | None) -> None:
        self._pid, self._cpu = pid, cpu
        self._begun = time.perf_counter()
        self._own = cpu_seconds(pid)
        self._busy = cpu_busy_seconds(cpu)
        self.elapsed = self.share = self.others = math.nan

    def stop(self) -> None:
        self.elapsed = time.perf_counter() - self._begun
        self.share = (cpu_seconds(self._pid) - self._own) / self.elapsed
        busy = (cpu_busy_seconds(self._cpu) - self._busy) / self.elapsed
        self.others = max(0.0, busy - self.share) if self._cpu is not None else math.nan


def _div(a: float, b: float) -> float:
    return a / b if b else math.nan


def _active_ids(status: dict[str, Any]) -> set[str]:
    return {rule for f in status["rules"]["files"] for rule in f["rules"]}


def _cpu(cpu: int | None) -> str:
    return "" if cpu is None else f", CPU {cpu}"
