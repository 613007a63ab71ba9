"""The send pool: long-lived daemon workers in front of apprise; a hung call holds only its own."""

from __future__ import annotations

import asyncio
import functools
import sys
import threading

import pytest

from notifier.dispatch.pool import SWITCH_INTERVAL, SendPool, prompt_switches


async def test_sequential_sends_reuse_one_worker() -> None:
    """Twenty sends one after another start one thread, not twenty."""
    pool = SendPool(keep=4)
    try:
        for i in range(20):
            assert await pool.submit(functools.partial(pow, i, 2)) == i**2
        assert pool.workers == 1
    finally:
        pool.close()


async def test_with_a_handoff_a_worker_has_taken_the_call_when_submit_returns() -> None:
    """The loop hands a send over and waits (GIL released) until a worker took it up, an
    idle one or a new one, instead of leaving it waiting behind the rest of its turn."""
    pool = SendPool(keep=2)
    release = threading.Event()
    try:
        await pool.submit(lambda: None)  # one idle worker
        taken_by_idle = pool.submit(release.wait, handoff=30.0)
        assert pool.waiting == 0
        taken_by_new = pool.submit(release.wait, handoff=30.0)  # none idle: a new one
        assert pool.waiting == 0
        assert pool.workers == 2
        release.set()
        assert list(await asyncio.gather(taken_by_idle, taken_by_new)) == [True, True]
    finally:
        release.set()
        pool.close()


async def test_a_hung_call_does_not_hold_up_the_next_one() -> None:
    """While one call blocks (past its caller's timeout), the next runs on another worker."""
    pool = SendPool(keep=1)
    release = threading.Event()
    try:
        stuck = pool.submit(release.wait)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stuck, 0.05)  # the caller gives up; the call goes on
        assert await asyncio.wait_for(pool.submit(lambda: "next"), 5) == "next"
        assert pool.workers == 2
    finally:
        release.set()
        pool.close()


async def test_exceptions_reach_the_awaiting_coroutine() -> None:
    pool = SendPool(keep=1)
    try:
        with pytest.raises(ValueError, match="boom"):
            await pool.submit(lambda: int("boom"))
    finally:
        pool.close()


async def test_workers_are_daemon_threads_and_close_lets_idle_ones_exit() -> None:
    """A hung send never keeps the process from exiting; close() does not wait for it."""
    pool = SendPool(keep=2, name="test-send")
    release = threading.Event()
    stuck = pool.submit(release.wait)
    await asyncio.gather(*(pool.submit(lambda: None) for _ in range(3)))
    workers = [t for t in threading.enumerate() if t.name == "test-send"]
    assert workers
    assert all(t.daemon for t in workers)
    pool.close()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
    for _ in range(200):  # the idle workers exit; the stuck one is still in its call
        if pool.workers == 1:
            break
        await asyncio.sleep(0.01)
    assert pool.workers == 1
    release.set()
    assert await stuck is True
    for _ in range(200):
        if pool.workers == 0:
            break
        await asyncio.sleep(0.01)
    assert pool.workers == 0


def test_prompt_switches_shortens_the_gil_switch_interval_and_never_lengthens_it() -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        prompt_switches()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        sys.setswitchinterval(0.0002)
        prompt_switches()
        assert sys.getswitchinterval() == pytest.approx(0.0002)
    finally:
        sys.setswitchinterval(before)
