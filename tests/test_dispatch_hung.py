"""A channel call that never returns: apprise is called without a deadline of its own (no
thread hop), so the send stage bounds the wait itself and frees the lane's slot."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from apprise.decorators import notify

from notifier.dispatch import Dispatcher
from notifier.metrics import Metrics
from notifier.store import Store
from tests.receivers import running, wait_until, write_apprise_yaml
from tests.test_dispatch_delivery import make_settings, note

RELEASE = threading.Event()
CALLS: list[str] = []
THREADS: list[str] = []  # the thread each call ran on


def _hanging_service(body: str, title: str, *args: Any, **kwargs: Any) -> bool:
    CALLS.append(title)
    THREADS.append(threading.current_thread().name)
    if title == "stuck":
        RELEASE.wait(120)  # never answers while the test runs
    return True


notify(on="hangtest")(_hanging_service)  # type: ignore[no-untyped-call]


async def test_a_call_that_never_returns_frees_its_lane_after_the_late_answers(
    tmp_path: Path,
) -> None:
    """One slot on the lane: the stuck call holds it for LATE_ANSWERS delivery timeouts plus
    the grace, then the lane goes on and the next row is sent; the stuck row stays owed."""
    config = write_apprise_yaml(tmp_path / "apprise.yml", [("hangtest://here", "")])
    settings = make_settings(tmp_path, config, timeout=0.25, concurrency=1)
    dispatcher = Dispatcher(Store.open(tmp_path), settings, Metrics())
    CALLS.clear()
    RELEASE.clear()
    try:
        async with running(dispatcher, grace=0.2):
            assert dispatcher.enqueue(note("stuck"))
            await wait_until(lambda: CALLS == ["stuck"], timeout=30)
            assert dispatcher.enqueue(note("next"))
            await wait_until(lambda: "next" in CALLS, timeout=60)
            assert dispatcher.pending_count() >= 1  # "stuck" is still owed
    finally:
        RELEASE.set()


async def test_the_service_runs_on_the_lanes_worker_not_a_thread_of_aprises(
    tmp_path: Path,
) -> None:
    """One hop from the event loop to the service: apprise is given no deadline of its own
    (neither the call's nor the service's), so it calls the service on the worker that called
    it instead of handing it to its own thread pool."""
    config = write_apprise_yaml(tmp_path / "apprise.yml", [("hangtest://here", "")])
    dispatcher = Dispatcher(Store.open(tmp_path), make_settings(tmp_path, config), Metrics())
    CALLS.clear()
    THREADS.clear()
    async with running(dispatcher):
        assert dispatcher.enqueue(note("quick"))
        await wait_until(lambda: CALLS == ["quick"], timeout=30)
    assert THREADS == ["notifier-send"]
