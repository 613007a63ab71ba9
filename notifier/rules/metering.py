"""What one evaluation of a rule expression or template may spend, and the running account of
it: a ``Meter`` per evaluation, found through a context variable by the bounded environment
(``bounds.py``). One that runs past its CPU or memory ``Budget`` raises ``BudgetExceeded``,
which disables the rule (``notifier.rules.engine``).
"""

from __future__ import annotations

import gc
import threading
from contextvars import ContextVar, Token
from dataclasses import dataclass
from time import perf_counter, thread_time
from typing import Literal

__all__ = [
    "DEFAULT_BUDGET",
    "MAX_STEPS",
    "Budget",
    "BudgetExceeded",
    "Meter",
    "SandboxError",
    "active_meter",
    "collector_cpu",
    "current_meter",
    "start_metering",
    "stop_metering",
]

MAX_STEPS = 100_000  # loop iterations per render
BYTES_PER_UNIT = 8  # the memory charged per character, item or 64-bit word a value holds


class SandboxError(Exception):
    """An expression or template was refused; ``line`` is 1-based within its source."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class BudgetExceeded(SandboxError):
    """One evaluation ran past its CPU or memory ``Budget`` and was stopped."""

    def __init__(self, message: str, resource: Literal["cpu", "memory"]) -> None:
        super().__init__(message)
        self.resource = resource


@dataclass(frozen=True, slots=True)
class Budget:
    """What one evaluation of an expression or one render of a template may spend:
    ``cpu`` seconds of its thread's CPU time, ``memory`` bytes of values built."""

    cpu: float = 0.05
    memory: int = 32_000_000


DEFAULT_BUDGET = Budget()


_collecting = threading.local()  # per thread: ``started`` of a collection, ``cpu`` in all


def _on_collection(phase: str, info: dict[str, int]) -> None:
    """``gc.callbacks`` hook: add up the CPU time each thread spends collecting garbage."""
    if phase == "start":
        _collecting.started = thread_time()
        return
    started = getattr(_collecting, "started", None)
    if started is not None:
        _collecting.cpu = getattr(_collecting, "cpu", 0.0) + thread_time() - started


gc.callbacks.append(_on_collection)


def collector_cpu() -> float:
    """CPU seconds the calling thread has spent in the cyclic garbage collector."""
    cpu: float = getattr(_collecting, "cpu", 0.0)
    return cpu


class Meter:
    """The running account of one evaluation against its ``Budget``.

    ``check`` is the hot path: one ``perf_counter`` call against a wall-clock deadline. Only
    once that passes is the thread's CPU time read, so time the process spent descheduled on
    a busy machine never counts against a rule: the deadline just moves to what is left. Nor
    does a garbage collection that happens to run during the evaluation (a full one scans
    every object of the process: hundreds of milliseconds with 100,000 rules loaded).
    """

    __slots__ = (
        "budget",
        "collector_started",
        "cpu_started",
        "deadline",
        "memory_left",
        "steps_left",
    )

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.cpu_started = thread_time()
        self.collector_started = collector_cpu()
        self.deadline = perf_counter() + budget.cpu
        self.memory_left = budget.memory
        self.steps_left = MAX_STEPS

    def check(self) -> None:
        if perf_counter() > self.deadline:
            self._over_time()

    def _over_time(self) -> None:
        used = thread_time() - self.cpu_started - (collector_cpu() - self.collector_started)
        if used >= self.budget.cpu:
            raise BudgetExceeded(
                f"stopped after {used * 1000:.0f} ms of CPU: over the budget of "
                f"{self.budget.cpu * 1000:g} ms per evaluation",
                "cpu",
            )
        self.deadline = perf_counter() + self.budget.cpu - used

    def charge(self, units: int) -> None:
        """Count a value of ``units`` characters, items or words the evaluation built."""
        self.memory_left -= units * BYTES_PER_UNIT
        if self.memory_left < 0:
            raise BudgetExceeded(
                f"stopped after building over {self.budget.memory / 1e6:g} MB of values: "
                "over the memory budget per evaluation",
                "memory",
            )
        self.check()


active_meter: ContextVar[Meter | None] = ContextVar("sandbox_meter", default=None)


def start_metering(budget: Budget) -> tuple[Meter, Token[Meter | None]]:
    """Meter the evaluation that starts now; ``stop_metering`` with the token when it ends."""
    meter = Meter(budget)
    return meter, active_meter.set(meter)


def stop_metering(token: Token[Meter | None]) -> None:
    active_meter.reset(token)


def current_meter() -> Meter:
    """The evaluation's meter; code run outside one (a bare Jinja call) gets a fresh one."""
    return active_meter.get() or Meter(DEFAULT_BUDGET)
