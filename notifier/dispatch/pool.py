"""The thread boundary in front of apprise: long-lived worker threads for blocking sends.

apprise blocks, so each send runs off the event loop. Starting a thread per send costs a
thread start and a first wait for the GIL on the latency path; ``SendPool`` keeps idle
workers waiting on a queue instead. Unlike ``concurrent.futures.ThreadPoolExecutor`` it
never makes a job wait for a busy worker: when none is idle it starts another, so a call
that hangs past its caller's timeout holds only its own worker. Workers are daemon threads,
so a hung call never keeps the process from exiting either.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["SWITCH_INTERVAL", "THREAD_GRACE", "SendPool", "prompt_switches", "run_in_thread"]

T = TypeVar("T")

THREAD_GRACE = 5.0  # apprise enforces the timeout itself; this only catches a hung apprise
# A worker woken for a send waits this long at most for the GIL while the event loop is busy
# with quotes (CPython's default is 5 ms, paid twice per send: our worker, apprise's).
SWITCH_INTERVAL = 0.001

_Job = tuple[
    Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop, threading.Event | None
]


class SendPool:
    """Runs blocking calls on worker threads and hands each result to an asyncio future.

    At most ``keep`` workers stay idle; more start while every worker is busy (a burst, or
    calls that hang) and exit once they are done and ``keep`` others are idle. Cancelling
    the future only stops waiting: the call itself cannot be interrupted.
    """

    def __init__(self, keep: int, name: str = "notifier-send") -> None:
        self._keep = keep
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # workers waiting for a job that no queued job is promised to
        self._workers = 0
        self._closed = False

    @property
    def workers(self) -> int:
        """Worker threads alive now (idle, busy or stuck in a call)."""
        return self._workers

    @property
    def waiting(self) -> int:
        """Calls submitted that no worker has taken up yet."""
        return self._jobs.qsize()

    def submit(self, call: Callable[[], T], *, handoff: float = 0.0) -> asyncio.Future[T]:
        """Start ``call`` on a worker now; the future (of the running loop) gets its outcome.

        With ``handoff``, wait up to that long for the worker to have started it: the caller
        (the event loop) lets go of the GIL meanwhile, so the worker does not wait for it
        behind the rest of the loop's turn (up to the switch interval, and again after each
        blocking call). The loop then resumes once the call blocks or a switch comes round.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("send pool is closed")
            start = self._idle == 0
            if start:
                self._workers += 1
            else:
                self._idle -= 1
        started = threading.Event() if handoff > 0 else None
        self._jobs.put((call, future, loop, started))
        if start:
            threading.Thread(target=self._work, name=self._name, daemon=True).start()
        if started is not None:
            started.wait(handoff)
        return future

    def close(self) -> None:
        """Let idle workers exit and refuse new jobs; busy ones exit when their call returns.
        Does not wait for them. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, 0
        for _ in range(idle):
            self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, future, loop, started = job
            if started is not None:
                started.set()
            report = _outcome(call, future)
            with self._lock:
                # Counted idle before the caller hears back, so its next job reuses this one.
                stay = not self._closed and self._idle < self._keep
                if stay:
                    self._idle += 1
                else:
                    self._workers -= 1
            with contextlib.suppress(RuntimeError):  # loop already closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, future, report)
            del job, call, future, report, started  # drop the result before waiting again
            if not stay:
                return
        with self._lock:
            self._workers -= 1


def _outcome(call: Callable[[], Any], future: asyncio.Future[Any]) -> Callable[[], None]:
    try:
        result = call()
    except BaseException as exc:  # handed to the awaiting coroutine, not swallowed
        return functools.partial(future.set_exception, exc)
    return functools.partial(future.set_result, result)


def _settle(future: asyncio.Future[Any], report: Callable[[], None]) -> None:
    if not future.done():  # the caller may have stopped waiting (timeout, cancel)
        report()


def prompt_switches(interval: float = SWITCH_INTERVAL) -> None:
    """Let a thread waiting for the GIL have it within ``interval`` (never lengthens it).
    Process-wide; it costs only while threads compete, which here means while a send runs."""
    if sys.getswitchinterval() > interval:
        sys.setswitchinterval(interval)


def run_in_thread(call: Callable[[], T]) -> asyncio.Future[T]:
    """Run a blocking ``call`` in a daemon thread; a send stuck in a channel then never keeps
    the process from exiting, and cancelling the future just stops waiting for it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            result = call()
        except BaseException as exc:  # handed to the awaiting coroutine, not swallowed
            report = functools.partial(future.set_exception, exc)
        else:
            report = functools.partial(future.set_result, result)
        with contextlib.suppress(RuntimeError):  # loop already closed: nobody is waiting
            loop.call_soon_threadsafe(settle, report)

    threading.Thread(target=work, name="notifier-send", daemon=True).start()
    return future
