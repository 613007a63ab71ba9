"""What every bench phase works with: the plan, the child processes, the simulator's control
API and the daemon's observation points (``/metrics``, ``/api/v1/status``)."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from notifier.bench.probes import NotifySocket, counter_values
from notifier.bench.procs import Child, Children, cpu_for
from notifier.bench.report import Results
from notifier.bench.workload import AMOUNT, LATENCY_PAIRS, PAIR_COUNT, BenchFiles, bench_pairs

__all__ = ["COUNTERS", "FULL", "QUICK", "START_TIMEOUT", "Harness", "Plan", "say"]

COUNTERS = {
    "frames": ("notifier_events_total", "source=quote"),
    "evaluations": ("notifier_rule_evaluations_total", "kind=quote"),
    "reloads": ("notifier_reloads_total", "outcome=ok"),
    "reload_seconds": ("notifier_reload_seconds_sum", ""),
    "reload_count": ("notifier_reload_seconds_count", ""),
}
START_TIMEOUT = 60.0


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


def say(text: str) -> None:
    """Progress on stderr; the table and nothing else goes to stdout."""
    print(f"notifier bench: {text}", file=sys.stderr, flush=True)


class Harness:
    """One run's processes and figures, and the calls the phases make on them."""

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

    # -- processes ---------------------------------------------------------------------------

    async def start_simulator(self) -> dict[str, Any]:
        say("starting the simulator")
        sim = await self.children.start(
            "simulator", ["python", "-m", "notifier.bench.simproc"], cpu=self.sim_cpu
        )
        info: dict[str, Any] = orjson.loads(await sim.readline(START_TIMEOUT))
        self.sim_url = f"http://127.0.0.1:{info['port']}"
        self.results.placement["simulator"] = (
            f"`python -m notifier.bench.simproc` child ({sim.where}), {self.sim_url}"
        )
        return info

    async def start_daemon(
        self,
        name: str,
        notify: NotifySocket,
        timeout: float = START_TIMEOUT,  # noqa: ASYNC109 - a start with many rules is long
    ) -> tuple[Child, float]:
        """Start ``notifier run`` on the test CPU; the child and its seconds to READY=1."""
        assert self.files is not None
        argv = ["python", "-m", "notifier.bench.daemonproc", "run", "-c", str(self.files.config)]
        env = {"NOTIFY_SOCKET": str(notify.path)}
        begun = time.perf_counter()
        child = await self.children.start(name, argv, cpu=self.test_cpu, env=env, stdout=False)
        wait = asyncio.create_task(notify.wait_ready(timeout))
        exited = asyncio.create_task(child.process.wait())
        done, _ = await asyncio.wait([wait, exited], return_when=asyncio.FIRST_COMPLETED)
        if wait not in done:
            wait.cancel()
            raise RuntimeError(f"daemon exited with {child.process.returncode}: {child.tail_log()}")
        exited.cancel()
        return child, wait.result() - begun

    # -- simulator control -------------------------------------------------------------------

    async def sim(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.sim_url}{path}"
        request = self.http.post(url, json=body or {}) if body is not None else self.http.get(url)
        async with request as response:
            answer: dict[str, Any] = await response.json(loads=orjson.loads)
        if response.status != 200:
            raise RuntimeError(f"simulator {path}: {answer}")
        return answer

    async def sim_quotes(self) -> dict[str, Any]:
        quotes: dict[str, Any] = (await self.sim("/_sim/stats"))["quotes"]
        return quotes

    async def script_latency_pairs(self, amount_out: int) -> None:
        for pair in self.pairs[:LATENCY_PAIRS]:
            body = {"in_mint": pair[0], "out_mint": pair[1], "amount": AMOUNT,
                    "amount_out": amount_out}  # fmt: skip
            await self.sim("/_sim/quotes/set", body)

    async def flood(self, rate: float | None, seconds: float) -> None:
        """Start a flood (after the previous one ended) with a fresh record of send times."""
        for _ in range(600):  # a flood ends by itself, within its duration
            if not (await self.sim("/_bench/flood"))["running"]:
                break
            await asyncio.sleep(0.1)
        await self.sim("/_bench/send_times", {"slots": []})  # keep the record small
        await self.sim("/_bench/flood", {"rate_per_s": rate, "duration_s": seconds})

    # -- daemon observation ------------------------------------------------------------------

    def daemon_url(self, path: str) -> str:
        assert self.files is not None
        return f"http://127.0.0.1:{self.files.http_port}{path}"

    async def counters(self) -> dict[str, float]:
        async with self.http.get(self.daemon_url("/metrics")) as response:
            text = await response.text()
        return counter_values(text, COUNTERS)

    async def status(self) -> dict[str, Any]:
        async with self.http.get(self.daemon_url("/api/v1/status")) as response:
            status: dict[str, Any] = await response.json(loads=orjson.loads)
        return status

    async def wait_subscribed(self, daemon: Child, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            quotes = await self.sim_quotes()
            if quotes["subscriptions"] >= PAIR_COUNT and quotes["connections"] >= 2:
                return
            if daemon.process.returncode is not None:
                raise RuntimeError(f"daemon exited: {daemon.tail_log()}")
            await asyncio.sleep(0.05)
        raise RuntimeError(f"daemon did not subscribe {PAIR_COUNT} pairs within {timeout:g}s")

    async def wait_quiet(self, born: float, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Let start-up finish: the watcher's catch-up reload done, no reload for 1.5 s."""
        deadline = time.monotonic() + timeout
        last, quiet = -1.0, 0
        while time.monotonic() < deadline and (quiet < 3 or time.monotonic() - born < 3.0):
            reloads = (await self.counters())["reloads"]
            quiet = quiet + 1 if reloads == last else 0
            last = reloads
            await asyncio.sleep(0.5)

    async def drain(self, daemon: Child, frames_before: float, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait for the flood to end and the daemon to read every frame it pushed; past
        ``timeout`` drop the quote sockets (discarding the backlog) and wait for the
        resubscription. True when the daemon read everything."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            flood = await self.sim("/_bench/flood")
            if not flood["running"]:
                frames = (await self.counters())["frames"]
                if frames >= frames_before + flood["updates"]:
                    return True
            await asyncio.sleep(0.2)
        say(f"the daemon's backlog was not read within {timeout:g}s: dropping its sockets")
        await self.sim("/_sim/quotes/drop", {})
        await asyncio.sleep(0.5)
        await self.wait_subscribed(daemon)
        return False
