"""The consumer in a burst: it lets the readers go on for a moment, so more quotes of a pair
are replaced by a newer one before the engine sees them; the newest quote of every pair is
evaluated all the same, and a steady flow is evaluated at once."""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

from notifier.evaluation import BURST_PENDING, consume
from notifier.eventqueue import EventQueue
from notifier.events import Event, PairKey, QuoteEvent
from notifier.rules.engine import Engine

PAIRS: list[PairKey] = [(f"T{i}", "USDC", "1000000", True) for i in range(256)]


class Recording:
    """Stands in for the engine: what the consumer hands it, in order."""

    def __init__(self) -> None:
        self.handled: list[Event] = []

    def handle(self, event: Event) -> None:
        self.handled.append(event)

    def next_due(self) -> float | None:
        return None


def quote(pair: PairKey, amount: int) -> QuoteEvent:
    return QuoteEvent(pair, amount, 1, 1, amount, 1_700_000_000.0)


async def run(frames_per_turn: int, turns: int) -> tuple[Recording, EventQueue]:
    """A reader emitting ``frames_per_turn`` quotes (pairs in turn) each loop turn."""
    queue, engine = EventQueue(), Recording()
    idle, timer_changed = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        consume(queue, cast(Engine, engine), lambda exc: False, idle, timer_changed)
    )
    sent = 0
    for _ in range(turns):
        for _ in range(frames_per_turn):
            sent += 1
            queue.emit(quote(PAIRS[sent % len(PAIRS)], sent))
        await asyncio.sleep(0)
    for _ in range(200):  # settle: the consumer drains what is left
        if idle.is_set() and not len(queue):
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return engine, queue


def newest_by_pair(events: list[Event]) -> dict[PairKey, int]:
    out: dict[PairKey, int] = {}
    for event in events:
        assert isinstance(event, QuoteEvent)
        out[event.pair] = event.amount_out
    return out


async def test_a_burst_is_conflated_more_and_the_newest_quote_of_each_pair_is_evaluated() -> None:
    frames, turns = len(PAIRS), 200  # every pair once a turn
    assert frames >= BURST_PENDING
    engine, queue = await run(frames, turns)
    total = frames * turns
    expected = {PAIRS[n % len(PAIRS)]: n for n in range(1, total + 1)}
    assert newest_by_pair(engine.handled) == expected
    # Without the hold every turn's quotes would be evaluated (each pair once a turn); with
    # it, each drain covers two turns at least, however slow the machine.
    assert len(engine.handled) <= total // 2 + len(PAIRS), (len(engine.handled), total)
    assert queue.conflated == total - len(engine.handled)


async def test_a_steady_flow_is_evaluated_quote_by_quote() -> None:
    engine, _ = await run(3, 100)  # a few frames a turn: never a burst
    assert len(engine.handled) == 300


async def test_after_each_batch_the_consumer_hands_over_before_the_loop_runs_anything_else() -> (
    None
):
    """``after_batch`` (the delivery's start of the batch's sends) runs once the batch's
    events are handled, in the same step: no other callback of the loop comes in between."""
    queue, engine = EventQueue(), Recording()
    seen: list[tuple[int, bool]] = []  # (events handled by then, a callback ran before)
    other_ran = False

    def other() -> None:
        nonlocal other_ran
        other_ran = True

    def after_batch() -> None:
        seen.append((len(engine.handled), other_ran))

    idle, timer_changed = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        consume(
            queue, cast(Engine, engine), lambda exc: False, idle, timer_changed,
            after_batch=after_batch,
        )
    )  # fmt: skip
    await asyncio.sleep(0)  # the consumer waits for events
    for n in range(3):
        queue.emit(quote(PAIRS[n], n + 1))
    asyncio.get_running_loop().call_soon(other)  # queued behind the consumer's wake-up
    for _ in range(200):
        if idle.is_set() and seen:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert seen[0] == (3, False)
