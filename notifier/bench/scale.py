"""``notifier bench --rules N[,N…]``: the cost curve of the rule count (issue #15).

For each count, over the same 512 pairs: a daemon started with that many rules (seconds to
``READY=1``, first start and restart), quote bursts drained by it and by the bare reader in
turn, latency at 5,000 frames/s, hot reload of one changed file among the others, and VmRSS.

A burst is ``BURST_FRAMES`` quote frames the simulator writes at once, already framed, to one
consumer's connections (`notifier.bench.simproc`); the drain rate is those frames over the time
from the write to the consumer's last frame (the bare loop's own clock; the daemon's
``notifier_feed_last_event_timestamp_seconds``). Bursts alternate bare, daemon, bare, …; the
ratio is the median of each daemon burst over the bare one before it.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from notifier.bench import phases
from notifier.bench.harness import Harness, say
from notifier.bench.probes import LatencyCollector, NotifySocket, counter_values, percentile
from notifier.bench.procs import Child, read_rss_kib
from notifier.bench.workload import PAIR_COUNT, scale_rule_files

__all__ = ["BURST_FRAMES", "scale_point"]

BURST_FRAMES = 60_000
LAST_EVENT = ("notifier_feed_last_event_timestamp_seconds", "feed=quote")
SCALE_START_TIMEOUT = 600.0


async def _bare_reader(h: Harness) -> tuple[Child, list[int]]:
    pairs_file = h.root / "pairs.json"
    pairs_file.write_bytes(orjson.dumps(h.pairs))
    quotes_ws = h.sim_url.replace("http://", "ws://") + "/api/v1/stream"
    argv = ["python", "-m", "notifier.bench.bare", quotes_ws, str(pairs_file)]
    bare = await h.children.start("bare", argv, cpu=h.test_cpu)
    answer = orjson.loads(await bare.readline(60.0))
    if answer["subscribed"] != PAIR_COUNT:
        raise RuntimeError(f"bare loop subscribed {answer['subscribed']} pairs, not {PAIR_COUNT}")
    return bare, [int(p) for p in answer["ports"]]


async def _ask(bare: Child, line: str) -> dict[str, Any]:
    await bare.writeline(line)
    answer: dict[str, Any] = orjson.loads(await bare.readline(10.0))
    return answer


async def _burst(h: Harness, ports: list[int], *, exclude: bool) -> float:
    body = {"frames": BURST_FRAMES, "ports": ports, "exclude": exclude}
    return float((await h.sim("/_bench/burst", body))["written_at"])


async def _bare_burst(h: Harness, bare: Child, ports: list[int], timeout: float) -> float:  # noqa: ASYNC109
    """One burst to the bare loop: its frames per second."""
    before = (await _ask(bare, "count"))["frames"]
    await _ask(bare, f"target {before + BURST_FRAMES}")
    written = await _burst(h, ports, exclude=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = await _ask(bare, "count")
        if answer["reached_at"] is not None:
            return BURST_FRAMES / (float(answer["reached_at"]) - written)
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the bare loop did not drain a burst within {timeout:g}s")


async def _daemon_burst(h: Harness, ports: list[int], timeout: float) -> dict[str, float]:  # noqa: ASYNC109
    """One burst to the daemon's connections: frames per second, and evaluations meanwhile."""
    wanted = {**_counters(), "last": LAST_EVENT}
    before = await _read(h, wanted)
    written = await _burst(h, ports, exclude=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = await _read(h, wanted)
        if now["frames"] >= before["frames"] + BURST_FRAMES:
            # The gauge is the receive time of the last frame; without it, when it was seen.
            last = now["last"] if now["last"] > written else time.time()
            return {
                "frames_per_s": BURST_FRAMES / (last - written),
                "evaluations": now["evaluations"] - before["evaluations"],
            }
        # As often as the bare loop is asked (the end is the gauge's time, not the poll's):
        # each poll renders /metrics on the daemon's loop, in the middle of its burst.
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the daemon did not drain a burst within {timeout:g}s")


def _counters() -> dict[str, tuple[str, str]]:
    return {
        "frames": ("notifier_events_total", "source=quote"),
        "evaluations": ("notifier_rule_evaluations_total", "kind=quote"),
        "reloads": ("notifier_reloads_total", "outcome=ok"),
    }


async def _read(h: Harness, wanted: dict[str, tuple[str, str]]) -> dict[str, float]:
    async with h.http.get(h.daemon_url("/metrics")) as response:
        return counter_values(await response.text(), wanted)


async def _bursts(h: Harness, daemon: Child, rules: int) -> dict[str, Any]:
    bare, ports = await _bare_reader(h)
    timeout = 120.0
    bare_rates: list[float] = []
    daemon_runs: list[dict[str, float]] = []
    try:
        for n in range(5 if h.plan.name == "full" else 2):
            bare_rates.append(await _bare_burst(h, bare, ports, timeout))
            await asyncio.sleep(0.5)
            daemon_runs.append(await _daemon_burst(h, ports, timeout))
            await asyncio.sleep(0.5)
            say(
                f"{rules:,} rules, burst {n + 1}: daemon {daemon_runs[-1]['frames_per_s']:,.0f} "
                f"/ bare {bare_rates[-1]:,.0f} frames/s"
            )
    finally:
        await h.children.stop(bare)
    await asyncio.sleep(1.0)
    daemon_rates = [run["frames_per_s"] for run in daemon_runs]
    ratios = [d / b for d, b in zip(daemon_rates, bare_rates, strict=True)]
    evaluated = statistics.median(run["evaluations"] for run in daemon_runs)
    return {
        "burst_frames": BURST_FRAMES,
        "daemon_frames_per_s": statistics.median(daemon_rates),
        "bare_frames_per_s": statistics.median(bare_rates),
        "ratio": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
        "daemon_samples": daemon_rates,
        "bare_samples": bare_rates,
        "rule_evaluations_per_burst": evaluated,
        "quote_events_evaluated_per_burst": evaluated / (rules / PAIR_COUNT),
    }


async def _reload(h: Harness, files: list[Path], rules: int) -> dict[str, Any]:
    """Saves of one load file among the others (a threshold and an id changed), each timed
    from before the write until the daemon counts one more good reload."""
    target = files[len(files) // 2]
    original = target.read_text(encoding="utf-8")
    first_id = original.split("id: ", 1)[1].split("\n", 1)[0]
    temp = target.parent / f".{target.name}.swp"
    saves = 20 if h.plan.name == "full" else 3
    timings: list[float] = []
    timeouts = 0
    for n in range(saves):
        text = original.replace(f"id: {first_id}\n", f"id: {first_id}-v{n}\n", 1)
        before = (await _read(h, _counters()))["reloads"]
        begun = time.perf_counter()
        temp.write_text(text, encoding="utf-8")
        temp.replace(target)
        while True:
            if (await _read(h, _counters()))["reloads"] > before:
                timings.append((time.perf_counter() - begun) * 1000)
                break
            if time.perf_counter() - begun > 60.0:
                timeouts += 1
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
    status = await h.status()
    listed = {rule for f in status["rules"]["files"] for rule in f["rules"]}
    if f"{first_id}-v{saves - 1}" not in listed:
        raise RuntimeError("hot reload: the last saved rule is not in the daemon's status")
    return {
        "saves": saves,
        "timeouts": timeouts,
        "p50_ms": percentile(timings, 0.50),
        "p95_ms": percentile(timings, 0.95),
        "max_ms": max(timings, default=math.nan),
        "file_rules": original.count("\n  - id: "),
        "rules_loaded": rules,
    }


async def _start(h: Harness, name: str) -> tuple[Child, float]:
    async with NotifySocket(h.root / f"notify-{name}.sock") as notify:
        return await h.start_daemon(name, notify, timeout=SCALE_START_TIMEOUT)


async def scale_point(h: Harness, rules: int, collector: LatencyCollector) -> dict[str, Any]:
    """Every figure of one rule count."""
    assert h.files is not None
    for old in h.files.rules_dir.glob("*.yaml"):
        old.unlink()
    written = []
    for name, text in scale_rule_files(h.pairs, rules).items():
        (h.files.rules_dir / name).write_text(text, encoding="utf-8")
        written.append(h.files.rules_dir / name)
    say(f"{rules:,} rules in {len(written)} files: first start")
    first, ready_first = await _start(h, f"scale-{rules}-first")
    await h.children.stop(first)
    daemon, ready = await _start(h, f"scale-{rules}")
    say(f"{rules:,} rules: READY=1 after {ready_first:.2f} s (first), {ready:.2f} s (restart)")
    born = time.monotonic() - ready
    await h.wait_subscribed(daemon, timeout=120.0)
    await h.wait_quiet(born, timeout=120.0)
    point: dict[str, Any] = {"rules": rules, "files": len(written)}
    point["ready_first_s"], point["ready_s"] = ready_first, ready
    point["burst"] = await _bursts(h, daemon, rules)
    await phases.latency(h, daemon, collector)
    point["latency"] = dict(h.results.latency)
    point["reload"] = await _reload(h, [p for p in written if p.name.startswith("load")], rules)
    rss, hwm = read_rss_kib(daemon.pid)
    point["rss_mb"], point["peak_rss_mb"] = rss * 1024 / 1e6, hwm * 1024 / 1e6
    point["daemon_exit_code"] = await h.children.stop(daemon)
    burst, lat = point["burst"], point["latency"]
    say(
        f"{rules:,} rules: ratio {burst['ratio']:.2f}, READY {ready:.2f} s, RSS "
        f"{point['rss_mb']:.0f} MB, reload p95 {point['reload']['p95_ms']:.0f} ms, latency "
        f"p99 {lat['p99_ms']:.1f} ms"
    )
    return point
