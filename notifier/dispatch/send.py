"""The send stage: the channels a row still owes, and one apprise call per channel on that
channel's lane, awaited at most the delivery timeout.

Nothing is sent before the commit that wrote the row is on disk. The loop syncs the store
right before it starts a send (``start``: one fsync covers every commit made so far, so the
rows the loop starts together share it), and hands the call to a worker that is running
before the loop goes on (``HANDOFF``): the worker then needs the GIL once, not again after
its own fsync, behind whatever the loop does next. Only when the loop's sync failed does the
worker sync itself, and a disk that still refuses is reported on the row (a retry after a
backoff).

A call still running at the timeout is not abandoned: its outcome is uncertain (the channel
may have taken the message), so the row is retried for that channel after a backoff, and a
late confirmation is still recorded. After ``LATE_ANSWERS`` timeouts (plus ``THREAD_GRACE``)
the wait ends (``late_answer``), which frees the lane's slot; a call that never returns keeps
only its own worker thread. apprise is called without a deadline of its own: with one, it
would run the service on yet another thread, one more wake-up on every send's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Callable
from typing import Any

from notifier.dispatch.channels import Channel, Channels, RowSender, SendResult
from notifier.dispatch.lanes import Lane
from notifier.dispatch.outbox import OutboxRow
from notifier.dispatch.pool import THREAD_GRACE
from notifier.dispatch.ratelimit import ALL
from notifier.durations import format_duration
from notifier.store import Store

__all__ = [
    "HANDOFF",
    "LATE_ANSWERS",
    "answer",
    "late_answer",
    "owed",
    "start",
    "timed_out",
    "unsendable",
]

LATE_ANSWERS = 4  # a late answer is awaited up to this many delivery timeouts
HANDOFF = 0.002  # the loop waits at most this long for a send's worker to have started


def owed(channels: Channels, row: OutboxRow, route: tuple[str, ...]) -> list[Channel]:
    """The channels ``route`` selects that have not confirmed ``row``."""
    return [c for c in channels.select(route) if c.key not in row.done]


def unsendable(channels: Channels, route: tuple[str, ...]) -> SendResult:
    """The failure of a row no channel is owed: retryable only while no channel is loaded."""
    if not channels.channels:  # no usable apprise config yet: wait for a reload
        return SendResult(False, frozenset(), frozenset(), True, "no channels loaded")
    wanted = ", ".join(route) or ALL  # a tag no channel has will not start matching by itself
    return SendResult(False, frozenset(), frozenset(), False, f"no channel matches tags: {wanted}")


def start(
    lane: Lane,
    channels: Channels,
    channel: Channel,
    row: OutboxRow,
    *,
    timeout: float,
    store: Store,
) -> asyncio.Future[SendResult]:
    """Submit the apprise call for ``row`` to ``channel`` on its lane (or hand the row to the
    channel's own sender); running on return. The store is synced first, here and then on
    the worker: nothing is sent before the commit that wrote it is on disk."""
    lane.running.add(row.id)
    on_disk = _sync_first(store)
    if channel.sender is not None:
        return asyncio.ensure_future(_synced_then_submit(store, channel.sender, row, timeout))
    call = functools.partial(
        _synced_then_send,
        _on_disk if on_disk else store.sync,
        channels.send,
        channel,
        title=row.title,
        body=row.body,
        severity=row.severity,
        timeout=None,  # on this worker, no hop to apprise's own thread: answer() bounds it
    )
    return lane.pool.submit(call, handoff=HANDOFF)


def _sync_first(store: Store) -> bool:
    """Sync the store on the caller's thread (the loop's) unless it is synced: one fsync
    for every commit so far. True once the row is on disk; False (a disk that refuses) leaves
    it to the worker's own sync, which reports it on the row (not sent, retried later)."""
    if not store.synced:
        with contextlib.suppress(sqlite3.Error):
            store.sync()
    return store.synced


def _on_disk() -> None:
    """The worker's sync when the loop's covered the row: commits made since (other rows,
    marks of answers) are not this send's to wait for."""


def _synced_then_send(
    sync: Callable[[], None], send: Callable[..., SendResult], channel: Channel, **kwargs: Any
) -> SendResult:
    try:
        sync()
    except sqlite3.Error as exc:  # the disk refused: not sent, tried again after a backoff
        error = f"not sent: the store could not sync the row to disk ({exc})"
        return SendResult(False, frozenset(), frozenset({channel.key}), True, error)
    return send(channel, **kwargs)


async def _synced_then_submit(
    store: Store, sender: RowSender, row: OutboxRow, within: float
) -> SendResult:
    if not store.synced:  # usually the store's own thread has synced it already
        await asyncio.to_thread(store.sync)
    return await sender.submit(row, timeout=LATE_ANSWERS * within)


def timed_out(channel: Channel, timeout: float) -> SendResult:
    error = f"no answer within {format_duration(timeout)}; it may still arrive"
    return SendResult(False, frozenset(), frozenset({channel.key}), True, error, uncertain=True)


async def late_answer(
    future: asyncio.Future[SendResult], channels: Channels, channel: Channel, delivery: float
) -> SendResult | None:
    """The answer of a call that outlived the ``delivery`` timeout, awaited up to
    ``LATE_ANSWERS`` of them in all; None once that is over."""
    try:
        return await asyncio.wait_for(
            answer(asyncio.shield(future), channels, channel),
            (LATE_ANSWERS - 1) * delivery + THREAD_GRACE,
        )
    except TimeoutError:
        return None


async def answer(
    future: asyncio.Future[SendResult], channels: Channels, channel: Channel
) -> SendResult:
    """The call's result; an exception apprise raised becomes a retryable failure."""
    try:
        return await future
    except Exception as exc:
        error = channels.redactor(f"apprise raised {type(exc).__name__}: {exc}")
        return SendResult(False, frozenset(), frozenset({channel.key}), True, error)
