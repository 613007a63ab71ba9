"""Watching the rules directory: a reload per batch of saves, and a missing directory looked
for until it is back.

watchfiles watches the directory recursively (a Kubernetes ConfigMap mount swaps a ``..data``
symlink in a subfolder); its first, empty yield says the watch is armed, and the first reload
after it catches up on saves made before. Its synchronous ``watch`` is stepped on a worker
thread, one wait at a time, as its ``awatch`` does through anyio (whose asyncio backend would
cost ~1.2 MB of RSS for that alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import watchfiles

from notifier.rules.loader import RULE_SUFFIXES

__all__ = ["watch_rules_dir"]

WATCH_STEP_MS = 30  # watchfiles yields a batch once no new change arrived for this long
WATCH_READY_MS = 250  # an idle watch wakes this often; its first wake-up marks it armed
DIR_POLL = 1.0  # how often a missing rules dir is looked for


async def watch_rules_dir(
    directory: Path,
    *,
    stop: asyncio.Event,
    watching: asyncio.Event,
    reload: Callable[[], Awaitable[None]],
    dir_error: Callable[[], str | None],
) -> None:
    """Call ``reload`` on each batch of rule-file changes until ``stop``; while ``directory``
    is missing, look for it every ``DIR_POLL`` seconds and reload once it is back (``reload``
    also says, once, that it is gone). ``watching`` is set once changes are being watched."""
    while not stop.is_set():
        present = await asyncio.to_thread(directory.is_dir)
        if not present or dir_error() is not None:
            await reload()
        if present:
            await _watch_dir(directory, stop, watching, reload)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), DIR_POLL)


class _Stopping:
    """What the watch thread checks between steps: the daemon stops, or this watch ends."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self.ended = threading.Event()

    def is_set(self) -> bool:
        return self._stop.is_set() or self.ended.is_set()


async def _watch_dir(
    directory: Path,
    stop: asyncio.Event,
    watching: asyncio.Event,
    reload: Callable[[], Awaitable[None]],
) -> None:
    """Reload on each batch of changes until the watch stops or ``directory`` goes."""
    stopping = _Stopping(stop)
    batches: Generator[set[tuple[watchfiles.Change, str]]] = watchfiles.watch(
        directory,
        watch_filter=_rule_filter,
        step=WATCH_STEP_MS,
        stop_event=stopping,
        recursive=True,
        rust_timeout=WATCH_READY_MS,
        yield_on_timeout=True,
        raise_interrupt=False,
    )
    # A thread of its own, as anyio gave awatch: the wait must not hold up the default
    # executor's workers (history saves, store calls).
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rulewatch")
    waiting: asyncio.Future[set[tuple[watchfiles.Change, str]] | None] | None = None
    try:
        while True:
            waiting = asyncio.get_running_loop().run_in_executor(thread, next, batches, None)
            changes = await waiting
            if changes is None:  # stopped
                return
            if not await asyncio.to_thread(directory.is_dir):  # a hung mount blocks here
                return
            if not changes and watching.is_set():
                continue
            if not watching.is_set():
                watching.set()  # catch up on saves made before the watch was armed
            await reload()
    finally:
        stopping.ended.set()  # the thread's wait returns within a step
        if waiting is not None and not waiting.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(waiting)
        batches.close()
        thread.shutdown(wait=False)


def _rule_filter(change: watchfiles.Change, path: str) -> bool:
    name = Path(path).name
    return name.endswith(RULE_SUFFIXES) or name == "..data"
