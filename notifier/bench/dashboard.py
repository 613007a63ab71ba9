"""``python -m notifier.bench.dashboard``: what the dashboard costs with the bench workload
(512 pairs, 1,000 rules): the page's first render and first paint, an update's size and cost,
and the daemon's throughput with a page open against none.

The daemon runs as in ``notifier bench`` (its own CPU). For throughput the open page is a
plain client doing what the page's script does on the network — the stream, and the four
charts a screen shows every five seconds — because a browser on the simulator's CPU would slow
the simulator, not the daemon. The page itself is then loaded in Debian's Chromium through
Playwright (when both are there) under the same load, for first paint and the script's cost per
update. Figures are printed as JSON; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from notifier.bench.harness import FULL, QUICK, Harness, say
from notifier.bench.phases import EQUAL_LOAD, SATURATE, _load
from notifier.bench.probes import LatencyCollector, NotifySocket
from notifier.bench.procs import Children, free_port
from notifier.bench.report import Results, machine_info
from notifier.bench.workload import LATENCY_IDLE, write_files

__all__ = ["main", "measure"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PAGE_LOADS = 5


async def measure(quick: bool = False) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    results = Results(machine=machine_info(), plan=plan.name)
    figures: dict[str, Any] = {"plan": plan.name}
    with tempfile.TemporaryDirectory(prefix="notifier-dash-bench-") as tmp:
        root = Path(tmp)
        children = Children(root)
        timeout = aiohttp.ClientTimeout(total=60)
        async with children, aiohttp.ClientSession(timeout=timeout) as http:
            h = Harness(root, children, http, plan, results)
            if h.sim_cpu is not None:
                os.sched_setaffinity(0, {h.sim_cpu})  # this process and the browser it starts
            sim = await h.start_simulator()
            async with LatencyCollector() as collector:
                h.files = write_files(
                    root / "daemon", quotes_url=sim["quotes_ws"], http_port=free_port(),
                    notify_port=collector.port, pairs=h.pairs,
                )  # fmt: skip
                await h.script_latency_pairs(LATENCY_IDLE)
                async with NotifySocket(root / "notify.sock") as notify:
                    daemon, _ = await h.start_daemon("daemon", notify)
                    born = time.monotonic()
                    await h.wait_subscribed(daemon)
                    await h.wait_quiet(born)
                    figures["first_render"] = await _first_render(h)
                    figures["throughput"] = await _throughput(h, daemon.pid)
                    figures["browser"] = await _browser(h, daemon.pid)
                    await h.children.stop(daemon)
    return figures


async def _first_render(h: Harness) -> dict[str, Any]:
    """GET / as the server answers it: the first render of every section."""
    times, size = [], 0
    for _ in range(PAGE_LOADS):
        begun = time.perf_counter()
        async with h.http.get(h.daemon_url("/")) as response:
            size = len(await response.read())
        times.append((time.perf_counter() - begun) * 1000)
    say(f"GET /: {statistics.median(times):.0f} ms median, {size / 1024:.0f} KiB")
    return {"get_page_ms_median": statistics.median(times), "get_page_ms": times,
            "page_bytes": size}  # fmt: skip


async def _throughput(h: Harness, pid: int) -> dict[str, Any]:
    """Equal load and full speed with no page and with one, alternating (none, page, none,
    page, none) so that drift on a shared machine falls on both sides."""
    runs: dict[str, list[dict[str, Any]]] = {"none": [], "page": []}
    for label in ("none", "page", "none", "page", "none"):
        opened: dict[str, Any] = {}
        async with _reader(h, opened) if label == "page" else _nothing():
            before = await _refreshes(h)
            equal = await _load(h, f"daemon, page {label}", h.counters, pid, EQUAL_LOAD)
            full = await _load(h, f"daemon, page {label}", h.counters, pid, SATURATE)
            opened.update(await opened.pop("read", _no_figures)())
            spent, count = (a - b for a, b in zip(await _refreshes(h), before, strict=True))
            if count:
                opened["refresh_ms_mean"] = spent / count * 1000
                opened["refreshes"] = count
        runs[label].append({
            "cpu_share_at_equal_load": equal["cpu"],
            "frames_at_equal_load_per_s": equal["frames"],
            "frames_full_speed_per_s": full["frames"],
            "cpu_share_full_speed": full["cpu"],
            **opened,
        })  # fmt: skip
    out: dict[str, Any] = dict(runs)
    for label, samples in runs.items():
        for name in ("cpu_share_at_equal_load", "frames_full_speed_per_s", "cpu_share_full_speed"):
            out[f"{label}_{name}_mean"] = statistics.fmean(s[name] for s in samples)
    base_cpu = out["none_cpu_share_at_equal_load_mean"]
    page_cpu = out["page_cpu_share_at_equal_load_mean"]
    out["cpu_added_at_equal_load"] = page_cpu / base_cpu - 1
    # frames per CPU-second of the daemon: what it reads with its core to itself
    out["capacity_drop"] = 1 - base_cpu / page_cpu
    out["full_speed_drop"] = (
        1 - out["page_frames_full_speed_per_s_mean"] / out["none_frames_full_speed_per_s_mean"]
    )
    say(
        f"page open: CPU at {EQUAL_LOAD:,.0f} frames/s {out['cpu_added_at_equal_load']:+.1%}, "
        f"full-speed frames {-out['full_speed_drop']:+.1%}"
    )
    return out


async def _browser(h: Harness, pid: int) -> dict[str, Any]:
    """The page in Chromium under the equal load: first paint, and what each update costs."""
    opened: dict[str, Any] = {}
    async with _page(h, opened):
        if "read" not in opened:
            return {"client": "none: chromium or playwright is missing"}
        load = await _load(h, "daemon, page in chromium", h.counters, pid, EQUAL_LOAD)
        figures: dict[str, Any] = await opened["read"]()
    figures["daemon_cpu_share_at_equal_load"] = load["cpu"]
    return figures


async def _refreshes(h: Harness) -> tuple[float, float]:
    """Seconds the daemon spent looking for changes for open pages, and how many looks."""
    async with h.http.get(h.daemon_url("/metrics")) as response:
        text = await response.text()
    found = dict.fromkeys(("sum", "count"), 0.0)
    for line in text.splitlines():
        for name in found:
            if line.startswith(f"notifier_dashboard_refresh_seconds_{name} "):
                found[name] = float(line.split()[1])
    return found["sum"], found["count"]


def _chromium_present() -> bool:
    return CHROMIUM.exists()


async def _no_figures() -> dict[str, Any]:
    return {}


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


@contextlib.asynccontextmanager
async def _page(h: Harness, into: dict[str, Any]) -> AsyncIterator[None]:
    """The dashboard in Chromium for the block; ``into["read"]`` reads its figures (nothing
    when Chromium or Playwright is missing)."""
    try:
        from playwright.async_api import async_playwright  # noqa: PLC0415 - optional
    except ImportError:
        async_playwright = None  # type: ignore[assignment]
    if async_playwright is None or not _chromium_present():
        yield
        return
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 1000})
        begun = time.perf_counter()
        await page.goto(h.daemon_url("/"), wait_until="load")
        loaded = (time.perf_counter() - begun) * 1000
        await page.locator("#pairs").scroll_into_view_if_needed()
        paint = await page.evaluate(
            "Object.fromEntries(performance.getEntriesByType('paint')"
            ".map(e => [e.name, e.startTime]))"
        )
        say(f"browser: load {loaded:.0f} ms, first contentful paint "
            f"{paint.get('first-contentful-paint', float('nan')):.0f} ms")  # fmt: skip

        async def read() -> dict[str, Any]:
            costs = await page.evaluate("window.notifierDashboard")
            apply_ms = sorted(costs["applyMs"]) or [float("nan")]
            return {
                "client": "chromium",
                "load_ms": loaded,
                "first_contentful_paint_ms": paint.get("first-contentful-paint"),
                "messages": costs["messages"],
                "message_bytes_mean": costs["bytes"] / max(costs["messages"], 1),
                "apply_ms_median": apply_ms[len(apply_ms) // 2],
                "apply_ms_p95": apply_ms[int(len(apply_ms) * 0.95)],
                "charts_drawn": await page.locator("svg.chart").count(),
            }

        into["read"] = read
        try:
            yield
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def _reader(h: Harness, into: dict[str, Any]) -> AsyncIterator[None]:
    """The page's traffic without a browser: the stream, and four charts every five seconds."""
    counts = {"messages": 0, "bytes": 0, "charts": 0}

    async def stream() -> None:
        endless = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with h.http.get(h.daemon_url("/dashboard/stream"), timeout=endless) as response:
            tail = b""
            while chunk := await response.content.readany():  # a full snapshot is one long line
                counts["bytes"] += len(chunk)
                counts["messages"] += (tail + chunk).count(b"\ndata:") + chunk.startswith(b"data:")
                tail = chunk[-1:]

    async def charts() -> None:
        keys = [quote(f"{p[0]}|{p[1]}|{p[2]}|1", safe="") for p in h.pairs[:4]]
        while True:
            for key in keys:
                async with h.http.get(h.daemon_url(f"/dashboard/pairs/{key}/chart.svg?w=560")) as r:
                    await r.read()
                counts["charts"] += 1
            await asyncio.sleep(5)

    tasks = [asyncio.create_task(stream()), asyncio.create_task(charts())]

    async def read() -> dict[str, Any]:
        return {"client": "stream reader", "messages": counts["messages"],
                "message_bytes_mean": counts["bytes"] / max(counts["messages"], 1),
                "charts_drawn": counts["charts"]}  # fmt: skip

    into["read"] = read
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notifier.bench.dashboard")
    parser.add_argument("--quick", action="store_true", help="short windows (a smoke run)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(quick=args.quick))
    text = orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode()
    sys.stdout.write(text + "\n")
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
