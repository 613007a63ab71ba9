"""What the bench observes the daemon through: sd_notify, the bench:// datagrams, /metrics,
/proc — plus the percentile arithmetic the figures use."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from prometheus_client.parser import text_string_to_metric_families

from notifier.bench.workload import latency_title_slot

__all__ = [
    "CpuMeter",
    "Delivery",
    "LatencyCollector",
    "NotifySocket",
    "commit_latency_ms",
    "counter_values",
    "cpu_busy_seconds",
    "cpu_seconds",
    "percentile",
]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with ``fraction`` of values at or below it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def counter_values(text: str, wanted: dict[str, tuple[str, str]]) -> dict[str, float]:
    """Read samples from a Prometheus exposition: ``{key: (sample name, "label=value")}``
    (an empty label string takes the sample whatever its labels)."""
    found = dict.fromkeys(wanted, 0.0)
    lookup = {}
    for key, (name, label) in wanted.items():
        label_name, _, label_value = label.partition("=")
        lookup[(name, label_name, label_value)] = key
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for (name, label_name, label_value), key in lookup.items():
                if sample.name == name and (
                    not label_name or sample.labels.get(label_name) == label_value
                ):
                    found[key] = float(sample.value)
    return found


def commit_latency_ms(directory: Path, commits: int = 40) -> tuple[float, float]:
    """p50 and p99 of one small SQLite commit in ``directory`` that waits for the disk (WAL,
    ``synchronous=FULL``): the fsync every send waits for before its channel (the daemon's
    store commits on the event loop without it, then syncs the log on the sender's thread)."""
    path = directory / "commit-probe.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE probe (at REAL, body TEXT)")
        timings = []
        for _ in range(commits):
            begun = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO probe VALUES (?, ?)", (time.time(), "x" * 200))
            db.execute("COMMIT")
            timings.append((time.perf_counter() - begun) * 1000)
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                Path(f"{path}{suffix}").unlink()
    return percentile(timings, 0.5), percentile(timings, 0.99)


def cpu_busy_seconds(cpu: int | None) -> float:
    """Time ``cpu`` (all CPUs when None) spent busy or stolen by the hypervisor, from
    ``/proc/stat``: with a process's own CPU time, what *other* processes took from it."""
    name = "cpu" if cpu is None else f"cpu{cpu}"
    for line in Path("/proc/stat").read_text(encoding="ascii").splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            ticks = [int(f) for f in fields[1:]]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
            return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # up to steal
    return math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuMeter:
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


class NotifySocket:
    """A ``$NOTIFY_SOCKET`` the way systemd offers one: records when ``READY=1`` arrives.

    Keeps reading every datagram for as long as it is open, so the daemon's later ``STATUS=``
    and ``WATCHDOG=1`` messages never find a dead socket.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ready_at: float | None = None  # time.perf_counter() of the first READY=1
        self._ready = asyncio.Event()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.setblocking(False)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def wait_ready(self, timeout: float) -> float:  # noqa: ASYNC109 - a start may hang
        """``perf_counter()`` of the first ``READY=1``; raises ``RuntimeError`` on timeout."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise RuntimeError(f"no READY=1 on {self.path} within {timeout:g}s") from None
        assert self.ready_at is not None
        return self.ready_at

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self._sock, 65536)
            if self.ready_at is None and b"READY=1" in data.split(b"\n"):
                self.ready_at = time.perf_counter()
                self._ready.set()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One latency notification as the ``bench://`` channel saw it."""

    slot: int
    evaluated_at: float  # the engine's clock when it evaluated the quote (the body: ``now``)
    called_at: float  # time.time() when apprise called the channel


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, sink: list[Delivery]) -> None:
        self._sink = sink

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int] | str) -> None:
        title, _, rest = data.decode("utf-8", "replace").partition("\n")
        body, _, called = rest.rpartition("\n")
        slot = latency_title_slot(title)
        if slot is not None:
            with contextlib.suppress(ValueError):
                self._sink.append(Delivery(slot, float(body), float(called)))


class LatencyCollector:
    """The UDP end of the ``bench://`` channel: what each latency notification carried."""

    def __init__(self) -> None:
        self.received: list[Delivery] = []
        self._transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self.received), local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._transport is not None:
            self._transport.close()

    def take(self) -> list[Delivery]:
        """Everything received since the last call."""
        taken, self.received[:] = list(self.received), []
        return taken
