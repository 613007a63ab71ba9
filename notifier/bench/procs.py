"""Child processes of the bench: started pinned to a CPU, always stopped, never orphaned.

Every child runs in its own session (a Ctrl-C reaches only the bench, which then stops them in
order) and calls `notifier.bench.child.adopt` first: it pins itself to the CPU chosen here, so
the parts of a measurement do not trade cores, and asks for ``PR_SET_PDEATHSIG``, so even a
bench killed with SIGKILL takes its children with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from notifier.bench.child import CPU_ENV, PARENT_ENV

__all__ = ["Child", "Children", "cpu_for", "free_port", "read_rss_kib", "stop_process"]

STOP_TIMEOUT = 15.0  # SIGTERM → SIGKILL; the daemon drains deliveries for up to 10 s


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_for(index: int) -> int | None:
    """The ``index``-th CPU this process may use (modulo their count); None off Linux."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[index % len(cpus)]


def read_rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB, from ``/proc/PID/status``."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


class Child:
    """One started child: its process, where it runs, and its log file."""

    def __init__(
        self, name: str, process: asyncio.subprocess.Process, cpu: int | None, log: Path
    ) -> None:
        self.name = name
        self.process = process
        self.cpu = cpu
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def where(self) -> str:
        return f"pid {self.pid}" + (f", CPU {self.cpu}" if self.cpu is not None else "")

    async def readline(self, timeout: float) -> bytes:  # noqa: ASYNC109 - a child may hang
        """One line of the child's stdout; raises ``RuntimeError`` on EOF or timeout."""
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise RuntimeError(f"{self.name}: no answer within {timeout:g}s") from None
        if not line:
            raise RuntimeError(f"{self.name} exited ({self.tail_log()})")
        return line

    async def writeline(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()

    def tail_log(self, lines: int = 3) -> str:
        """The last lines the child wrote to stderr, for error messages."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(text[-lines:]) or "no output"

    async def stop(self, timeout: float = STOP_TIMEOUT) -> int:  # noqa: ASYNC109
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        return await stop_process(self.process, timeout)


async def stop_process(process: asyncio.subprocess.Process, timeout: float) -> int:  # noqa: ASYNC109
    if process.returncode is not None:
        return process.returncode
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        return await process.wait()


class Children:
    """Starts children and stops every one of them on exit, errors and cancellation included."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._children: list[Child] = []
        self.started: list[Child] = []  # every child ever started, for the report

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpu: int | None,
        env: Mapping[str, str] | None = None,
        stdout: bool = True,
    ) -> Child:
        """Start ``argv`` (``python`` means this interpreter) with stdin/stdout pipes."""
        argv = [sys.executable, *argv[1:]] if argv[0] == "python" else list(argv)
        log = self._logs / f"{name}.log"
        placement = {PARENT_ENV: str(os.getpid())}
        if cpu is not None:
            placement[CPU_ENV] = str(cpu)
        with log.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, **(env or {}), **placement},
                start_new_session=True,
            )
        child = Child(name, process, cpu, log)
        self._children.append(child)
        self.started.append(child)
        return child

    async def stop(self, child: Child, timeout: float = STOP_TIMEOUT) -> int:  # noqa: ASYNC109
        code = await child.stop(timeout)
        with contextlib.suppress(ValueError):
            self._children.remove(child)
        return code

    async def stop_all(self) -> None:
        """Stop the children, newest first (the daemon before the simulator it reads)."""
        try:
            while self._children:
                with contextlib.suppress(Exception):
                    await self._children[-1].stop()
                self._children.pop()
        finally:  # interrupted again while waiting: stop waiting, kill the rest
            for child in self._children:
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
            self._children.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_all()
