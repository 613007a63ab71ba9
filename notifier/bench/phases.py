"""The bench's five phases — start-up, throughput, latency, hot reload, memory — each a
function of the harness that records its figures in ``h.results``."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from notifier.bench.harness import START_TIMEOUT, Harness, say
from notifier.bench.probes import CpuMeter, LatencyCollector, NotifySocket, percentile
from notifier.bench.procs import Child, read_rss_kib
from notifier.bench.workload import (
    LATENCY_ARMED,
    LATENCY_IDLE,
    PAIR_COUNT,
    RULE_COUNT,
    WINDOW_RULE_COUNT,
    reload_rule_yaml,
    window_rules_yaml,
)
from notifier.events import PairKey

__all__ = [
    "bare_throughput",
    "daemon_throughput",
    "latency",
    "memory",
    "reload",
    "startup_run",
    "window_throughput",
]

LATENCY_RATE = 5_000.0
SATURATE = None  # flood rate: a quarter above what the consumer reads (see simproc)
EQUAL_LOAD = 25_000.0  # frames/s both consumers get when their CPU costs are compared
Reader = Callable[[], Awaitable[dict[str, float]]]


# -- start-up ------------------------------------------------------------------------------------


async def startup_run(h: Harness, index: int) -> float:
    """One dedicated start of the daemon: its seconds to READY=1."""
    async with NotifySocket(h.root / f"notify-{index}.sock") as notify:
        child, elapsed = await h.start_daemon(f"startup-{index}", notify)
        say(f"start-up run {index + 1}: READY=1 after {elapsed:.2f}s")
        await h.children.stop(child)
    return elapsed


# -- 1. throughput ---------------------------------------------------------------------------------


async def _window(
    h: Harness, read: Reader, pid: int, seconds: float
) -> tuple[dict[str, float], float, CpuMeter]:
    """Rates of the consumer's counters (``read``) and of the simulator's quotes sent, and
    the CPU use, between two readings ``seconds`` apart."""
    first, sim_first = await read(), await h.sim_quotes()
    meter = CpuMeter(pid, h.test_cpu)
    await asyncio.sleep(seconds)
    last, sim_last = await read(), await h.sim_quotes()
    meter.stop()
    rates = {k: (last[k] - first[k]) / meter.elapsed for k in first}
    sim_rate = (sim_last["quotes_sent"] - sim_first["quotes_sent"]) / meter.elapsed
    return rates, sim_rate, meter


async def _load(
    h: Harness, name: str, read: Reader, pid: int, rate: float | None
) -> dict[str, float]:
    """One measured window of a consumer under a flood (``rate`` None: saturating)."""
    plan = h.plan
    await h.flood(rate, plan.warmup_s + plan.window_s + 0.5)
    await asyncio.sleep(plan.warmup_s)
    rates, sim_rate, cpu = await _window(h, read, pid, plan.window_s)
    load = "full speed" if rate is None else f"{rate:,.0f} frames/s offered"
    say(f"{name} at {load}: {rates['frames']:,.0f} frames/s read at {cpu.share:.0%} CPU")
    return {
        **rates,
        "sim_sent": sim_rate,
        "cpu": cpu.share,
        "others": cpu.others,
        "window": cpu.elapsed,
    }


async def bare_throughput(h: Harness) -> None:
    """The bare receive loop's rate and CPU, the yardstick of the daemon's."""
    say("throughput: bare receive loop (aiohttp + orjson.loads only)")
    pairs_file = h.root / "pairs.json"
    pairs_file.write_bytes(orjson.dumps(h.pairs))
    quotes_ws = h.sim_url.replace("http://", "ws://") + "/api/v1/stream"
    argv = ["python", "-m", "notifier.bench.bare", quotes_ws, str(pairs_file)]
    bare = await h.children.start("bare", argv, cpu=h.test_cpu)
    h.results.placement["bare loop"] = f"`python -m notifier.bench.bare` ({bare.where})"
    subscribed = orjson.loads(await bare.readline(START_TIMEOUT))["subscribed"]
    if subscribed != PAIR_COUNT:
        raise RuntimeError(f"bare loop subscribed {subscribed} pairs, not {PAIR_COUNT}")

    async def read() -> dict[str, float]:
        await bare.writeline("count")
        return {"frames": float(orjson.loads(await bare.readline(10.0))["frames"])}

    full = await _load(h, "bare loop", read, bare.pid, SATURATE)
    equal = await _load(h, "bare loop", read, bare.pid, EQUAL_LOAD)
    await h.children.stop(bare)
    await asyncio.sleep(1.0)  # the flood ends; the simulator forgets the closed sockets
    h.results.throughput.update(
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


async def daemon_throughput(
    h: Harness, daemon: Child, *, rules: int = RULE_COUNT, into: dict[str, Any] | None = None
) -> None:
    """The daemon's rate and CPU at full speed and at the bare loop's equal load."""
    say(f"throughput: daemon with {rules:,} rules over 512 pairs")
    t = h.results.throughput if into is None else into
    before = (await h.counters())["frames"]
    full = await _load(h, "daemon", h.counters, daemon.pid, SATURATE)
    t["backlog_read"] = await h.drain(daemon, before, timeout=15.0)
    before = (await h.counters())["frames"]
    equal = await _load(h, "daemon", h.counters, daemon.pid, EQUAL_LOAD)
    t["backlog_read_at_equal_load"] = await h.drain(daemon, before, timeout=15.0)
    frames, evaluations = full["frames"], full["evaluations"]
    events = evaluations / (rules / PAIR_COUNT)  # every pair gets about the same share
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
            "rules": rules,
            "pairs": PAIR_COUNT,
            "connections": 2,
        }
    )


# -- 2. latency ------------------------------------------------------------------------------------


async def latency(h: Harness, daemon: Child, collector: LatencyCollector) -> None:
    """From the simulator's send to the bench:// channel's call, under a steady flood."""
    seconds = h.plan.latency_s
    say(f"latency: {LATENCY_RATE:,.0f} frames/s for {seconds:g}s, ~10 crossings/s")
    await h.script_latency_pairs(LATENCY_ARMED)
    await asyncio.sleep(0.5)
    collector.take()
    before = await h.counters()
    cpu = CpuMeter(daemon.pid, h.test_cpu)
    await h.flood(LATENCY_RATE, seconds)
    await asyncio.sleep(seconds)
    cpu.stop()
    kept_up = await h.drain(daemon, before["frames"], timeout=10.0)
    await asyncio.sleep(1.0)  # the last notifications leave the outbox
    received = collector.take()
    reloads = (await h.counters())["reloads"] - before["reloads"]
    await h.script_latency_pairs(LATENCY_IDLE)
    answer = await h.sim("/_bench/send_times", {"slots": [d.slot for d in received]})
    sent = {int(slot): at for slot, at in answer["send_times"].items()}
    matched = [d for d in received if d.slot in sent]
    if not matched:
        raise RuntimeError("latency: no notification reached the bench:// channel")
    total = [(d.called_at - sent[d.slot]) * 1000 for d in matched]
    to_engine = [(d.evaluated_at - sent[d.slot]) * 1000 for d in matched]
    to_apprise = [(d.called_at - d.evaluated_at) * 1000 for d in matched]
    h.results.latency = {
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
    say(
        f"latency: p50 {h.results.latency['p50_ms']:.2f} ms, "
        f"p99 {h.results.latency['p99_ms']:.2f} ms over {len(matched)} notifications"
    )


# -- 3. hot reload ---------------------------------------------------------------------------------


async def reload(h: Harness, daemon: Child) -> None:
    """From a rule file's atomic save to the new rule in the daemon's status."""
    assert h.files is not None
    saves = h.plan.reload_saves
    say(f"hot reload: {saves} saves of a rule file (atomic rename), idle quotes")
    target, temp = h.files.reload_file, h.files.rules_dir / ".reload.yaml.swp"
    timings: list[float] = []
    timeouts = 0
    before = await h.counters()
    for n in range(saves):
        pair: PairKey = h.pairs[n % len(h.pairs)]
        wanted = f"reload-{n}"
        begun = time.perf_counter()
        temp.write_text(reload_rule_yaml(n, pair), encoding="utf-8")
        temp.replace(target)
        while True:
            if wanted in _active_ids(await h.status()):
                timings.append((time.perf_counter() - begun) * 1000)
                break
            if time.perf_counter() - begun > 10.0:
                timeouts += 1
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
    if daemon.process.returncode is not None:
        raise RuntimeError(f"daemon exited during reloads: {daemon.tail_log()}")
    after = await h.counters()
    reloads = after["reload_count"] - before["reload_count"]
    work = (after["reload_seconds"] - before["reload_seconds"]) / reloads if reloads else 0
    h.results.reload = {
        "saves": saves,
        "timeouts": timeouts,
        "p50_ms": percentile(timings, 0.50),
        "p95_ms": percentile(timings, 0.95),
        "max_ms": max(timings, default=float("nan")),
        "reloads": reloads,
        "reload_work_mean_ms": work * 1000,
        "rules_loaded": RULE_COUNT,
    }
    say(
        f"hot reload: p50 {h.results.reload['p50_ms']:.0f} ms, "
        f"p95 {h.results.reload['p95_ms']:.0f} ms"
    )


async def window_throughput(h: Harness, daemon: Child) -> None:
    """Throughput again with 200 rules that read the quote history added (hot reloaded)."""
    assert h.files is not None
    loaded = (await h.status())["rules"]["loaded"]
    (h.files.rules_dir / "windows.yaml").write_text(window_rules_yaml(h.pairs), encoding="utf-8")
    began = time.perf_counter()
    while (await h.status())["rules"]["loaded"] < loaded + WINDOW_RULE_COUNT:
        if time.perf_counter() - began > 30.0:
            raise RuntimeError("the window rules did not load within 30 s")
        await asyncio.sleep(0.05)
    t = h.results.throughput
    into: dict[str, Any] = {
        "bare_cpu_share_at_equal_load": t.get("bare_cpu_share_at_equal_load", math.nan),
        "bare_frames_per_s": t.get("bare_frames_per_s", math.nan),
        "bare_cpu_share": t.get("bare_cpu_share", math.nan),
    }
    await daemon_throughput(h, daemon, rules=loaded + WINDOW_RULE_COUNT, into=into)
    h.results.windows["throughput"] = into


# -- 4. memory -------------------------------------------------------------------------------------


async def memory(h: Harness, daemon: Child, born: float) -> None:
    """The daemon's VmRSS after ``plan.memory_after_s`` of uptime under a steady flood."""
    steady = 3.0 if h.plan.name == "full" else 1.0
    remaining = max(steady, h.plan.memory_after_s - (time.monotonic() - born))
    say(f"memory: {LATENCY_RATE:,.0f} frames/s for {remaining:.0f}s, then VmRSS")
    await h.flood(LATENCY_RATE, remaining + 1.0)
    await asyncio.sleep(remaining)
    rss, hwm = read_rss_kib(daemon.pid)
    h.results.memory = {
        "rss_mb": rss * 1024 / 1e6,
        "peak_mb": hwm * 1024 / 1e6,
        "rss_mib": rss / 1024,
        "uptime_s": time.monotonic() - born,
        "load_frames_per_s": LATENCY_RATE,
    }
    await asyncio.sleep(1.0)
    say(f"memory: VmRSS {rss * 1024 / 1e6:.1f} MB (peak {hwm * 1024 / 1e6:.1f} MB)")


def _div(a: float, b: float) -> float:
    return a / b if b else math.nan


def _active_ids(status: dict[str, Any]) -> set[str]:
    return {rule for f in status["rules"]["files"] for rule in f["rules"]}
