"""The daemon's two evaluation loops: events from the queue through the rule engine, in
slices that let the event loop breathe, and the engine's timers (``for:``, ``repeat``,
windows). A store that cannot write is reported once through ``store_failed``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from notifier.eventqueue import EventQueue
from notifier.rules.engine import Engine

__all__ = ["BURST_HOLD", "BURST_PENDING", "EVAL_SLICE", "consume", "run_timers"]

log = logging.getLogger("notifier.daemon")

EVAL_SLICE = 0.02  # seconds of evaluation after which the consumer lets the loop run
# A burst: this many events pending (quotes of distinct pairs, conflated) when the consumer
# wakes. It then lets the readers go on while they still bring frames, up to BURST_HOLD, so
# more quotes of a pair are replaced by a newer one before the engine sees them (every quote
# is in the history already). Half the benchmark's 512 pairs: above what a steady flow is
# expected to leave pending (not measured how far above). In the benchmark's bursts the reader
# already drains long stretches first, and the hold made no measurable difference there.
BURST_PENDING = 256
BURST_HOLD = 0.002


async def consume(
    queue: EventQueue,
    engine: Engine,
    store_failed: Callable[[BaseException], bool],
    idle: asyncio.Event,
    timer_changed: asyncio.Event,
    *,
    after_batch: Callable[[], None] = lambda: None,
) -> None:
    """Evaluate every event the sources queue; ``idle`` is set while the queue is empty.
    ``after_batch`` runs after each batch (and each slice of a long one) before the loop
    does anything else: the delivery's start of the sends the batch's decisions wrote."""
    while True:
        if not len(queue):
            idle.set()
        await queue.wait()
        idle.clear()
        if len(queue) >= BURST_PENDING:
            await _let_readers_go_on(queue)
        before = engine.next_due()
        slice_end = time.perf_counter() + EVAL_SLICE
        for event in queue.drain():
            try:
                engine.handle(event)
            except Exception as exc:
                if not store_failed(exc):  # a store outage is said once
                    log.exception("rule engine failed on %s; event skipped", type(event).__name__)
            if time.perf_counter() > slice_end:  # a long batch: let the loop run between
                after_batch()
                await asyncio.sleep(0)
                slice_end = time.perf_counter() + EVAL_SLICE
        after_batch()
        if engine.next_due() != before:
            timer_changed.set()
        if len(queue):
            await asyncio.sleep(0)  # let the readers run between batches
        # else queue.wait() above suspends anyway: no extra switch per batch


async def _let_readers_go_on(queue: EventQueue) -> None:
    """Yield to the readers while each loop turn still brings frames, for ``BURST_HOLD`` at
    most."""
    hold_until = time.perf_counter() + BURST_HOLD
    while time.perf_counter() < hold_until:
        received = queue.received
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # one turn to read the socket, one for the reader task
        if queue.received == received:
            return


async def run_timers(
    engine: Engine, store_failed: Callable[[BaseException], bool], timer_changed: asyncio.Event
) -> None:
    """Tick the engine when its earliest timer is due, or sooner when ``timer_changed``."""
    while True:
        due = engine.next_due()
        timeout = None if due is None else max(0.0, due - time.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(timer_changed.wait(), timeout)
        timer_changed.clear()
        try:
            engine.tick()
        except Exception as exc:
            if not store_failed(exc):
                log.exception("rule timer failed")
