"""Delivery: outbox row and rate limit (one commit) → send to each channel on its lane →
confirm, retry or give up, per channel.

Each stage is a small module this class schedules: ``outbox`` (durable rows and dedup),
``ratelimit`` (per-tag budget, decided in the transaction that writes the row) and ``digest``
(what it held back), ``launch`` (a due row to its sends), ``lanes`` (per channel: sends at a
time, worker threads, backoff), ``send`` (one apprise call per channel, with a timeout),
``retry`` (full-jitter backoff until ``delivery.retry_for``, then dead-letter and report to
the ``errors_to`` tags). A row's sends start as soon as the transaction that wrote it
committed (``Store.after_commit``), never before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from notifier.config import Settings
from notifier.dispatch.answers import Answers
from notifier.dispatch.channels import (
    SECRET_LOGGERS,
    Channels,
    RowSender,
    describe,
    url_secrets,
)
from notifier.dispatch.lanes import Lanes
from notifier.dispatch.launch import Launcher, Stage
from notifier.dispatch.outage import StoreOutage
from notifier.dispatch.outbox import NewRow, Outbox, OutboxRow
from notifier.dispatch.pool import prompt_switches
from notifier.dispatch.ratelimit import Admission, Admit, RateLimiter
from notifier.dispatch.retry import RetryPolicy
from notifier.durations import format_duration
from notifier.metrics import Metrics

if TYPE_CHECKING:
    from notifier.notification import Notification
    from notifier.store import Store

__all__ = ["SCAN_LIMIT", "Dispatcher", "Stage"]

log = logging.getLogger("notifier.dispatch")

# Due rows looked at per pass: rows waiting only for a busy lane are skipped, so the other
# lanes find their work among them.
SCAN_LIMIT = 1000
PRUNE_EVERY = 3600.0
MAX_SLEEP = 60.0  # re-check the outbox at least this often (clock jumps, pruning)
RECHECK = 0.01  # a transaction is open on the store: look for due rows again this soon


class Dispatcher:
    """Durable delivery: what the daemon enqueues reaches every channel it routes to, once.

    ``enqueue`` is synchronous and durable on return; ``run`` is the delivery loop;
    ``drain`` lets in-flight sends finish on shutdown. Everything else (stats, reload) is
    for the daemon's control plane.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        *,
        now: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        senders: Sequence[RowSender] = (),  # channels of their own kind: the Telegram bot's
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._now = now
        delivery = settings.delivery
        self._retry = RetryPolicy(delivery.retry_for, delivery.backoff_cap, rng)
        self._lanes = Lanes(delivery.concurrency, delivery.backoff_cap, rng)
        prompt_switches()  # a send's threads get the GIL within 1 ms of a busy loop
        self._store = store
        self._outbox = Outbox(store)
        self._limiter = RateLimiter(
            settings.delivery.rate_limit, settings.delivery.rate_limits, self._outbox
        )
        self._admit: Admit = Admission(self._limiter, self._outbox, metrics).admit
        self._redactor = url_secrets()
        self._detach_redactor = self._redactor.attach(SECRET_LOGGERS)
        self._channels = Channels.load(settings.apprise_config, self._redactor, senders)
        self.channel_errors: list[str] = list(self._channels.errors)
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._stopped = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._running = False
        self._stopping = False
        self._next_prune = 0.0
        self._pending_stale = False  # the gauge of pending rows wants counting again
        self._outage = StoreOutage(
            store,
            self._outbox,
            metrics,
            now=now,
            admit=self._admit,
            report_error=self.report_error,
            resumed=self._resumed,
            wake=self.wake,
        )
        self._answers = Answers(
            store,
            self._outbox,
            settings,
            metrics,
            channels=lambda: self._channels,
            lanes=self._lanes,
            retry=self._retry,
            outage=self._outage,
            admit=self._admit,
            recorded=self._refresh_pending,
            wake=self.wake,
            now=now,
        )
        self._launch = Launcher(
            self._outbox,
            self._limiter,
            self._lanes,
            self._answers,
            self._outage,
            admit=self._admit,
            channels=lambda: self._channels,
            timeout=lambda: self._settings.delivery.timeout,
            now=now,
            busy=self._settled.clear,
            poke=self._poke,
            recheck=self._refresh_pending,
            stopping=lambda: self._stopping,
        )
        self._in_flight = self._launch.in_flight
        self._count_pending()

    @property
    def stage(self) -> Stage | None:
        """The talkback stage, run right before sending (the talkback service sets it)."""
        return self._launch.stage

    @stage.setter
    def stage(self, stage: Stage | None) -> None:
        self._launch.stage = stage

    # -- the daemon's API ------------------------------------------------------------------

    def enqueue(self, n: Notification) -> bool:
        """Write ``n`` to the outbox (durable on return). False: its key was already there."""
        row = NewRow.of(n)
        return self._add(row)

    def report_error(self, key: str, title: str, body: str) -> bool:
        """Enqueue a message to the ``errors_to`` tags (deduplicated on ``key``).

        An empty ``errors_to`` disables these reports. Reports are never themselves
        reported when they fail, so a dead admin channel cannot loop.
        """
        if not self._settings.errors_to:
            return False
        return self._add(NewRow.error(key, title, body, self._settings.errors_to, self._now()))

    def reload_channels(self) -> list[str]:
        """Rebuild the apprise generation from ``apprise_config`` (the constructor loads the
        first); returns its problems for the caller to log or report, URLs masked.

        A config that yields no channel at all does not replace a working one.
        """
        loaded = self._channels.load_again(self._settings.apprise_config)
        if self._channels.replaced_by(loaded, self._settings.apprise_config):
            self._channels = loaded
            self._lanes.keep_only(c.key for c in loaded.channels)
        self.channel_errors = list(loaded.errors)
        self.wake()
        return list(loaded.errors)

    @property
    def channels(self) -> Channels:
        """The current apprise generation."""
        return self._channels

    def pending_count(self) -> int:
        return self._outbox.pending_count()

    def stats(self) -> dict[str, Any]:
        """Outbox counts and channels for ``notifier status``; URLs only in privacy form."""
        counts = self._outbox.counts()
        outage = self._outage.current
        oldest = self._outbox.oldest_pending()
        return {
            **counts,
            "in_flight": len(self._in_flight),
            "store_problem": self.store_problem,
            "held_in_memory": 0 if outage is None else len(outage.held),
            "oldest_pending_age": None if oldest is None else max(self._now() - oldest, 0.0),
            "channels": len(self._channels),
            "channel_list": [describe(c) for c in self._channels.channels],
            "channel_errors": list(self.channel_errors),
        }

    def wake(self) -> None:
        """Re-check the outbox now (after an enqueue, a reload, or a test moving the clock).
        Safe to call from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._poke()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._poke()
        else:
            loop.call_soon_threadsafe(self._poke)

    async def wait_settled(self) -> None:
        """Return once nothing is in flight and no pending row is due (a barrier, not a sleep)."""
        await self._settled.wait()

    async def run(self) -> None:
        """The delivery loop: until ``drain``, send due rows, then sleep until the next is due
        or ``enqueue`` wakes it."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._running = True
        self._stopped.clear()
        try:
            while not self._stopping:
                self._wake.clear()
                now = self._now()
                try:
                    delay = self._pass(now)
                except sqlite3.OperationalError as exc:
                    self._outage.failed(exc)
                    delay = 0.0
                if (delay is None or delay > 0) and not self._in_flight:
                    self._settled.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            self._running = False
            self._stopped.set()

    def _pass(self, now: float) -> float | None:
        """One pass of the delivery loop; returns how long to sleep."""
        outage = self._outage.current
        if outage is not None:
            if now >= outage.retry_at:
                self._outage.recover(now)
            outage = self._outage.current
            if outage is not None:  # nothing is sent that could not be marked sent
                return max(outage.retry_at - now, 0.0)
        if self._pending_stale:
            self._count_pending()
        if now >= self._next_prune:
            self._prune(now)
        if not self._start_due(now):
            return RECHECK
        return self._sleep_for(now)

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - the daemon's stop budget
        """Stop taking rows, give in-flight sends ``timeout`` to finish, then stop. A send cut
        off stays pending and is sent again after the restart."""
        self._stopping = True
        self._poke()
        tasks = list(self._in_flight.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            if late:
                log.warning(
                    "%d delivery(ies) still in flight after %s; they stay pending and are "
                    "resent on restart",
                    len(late),
                    format_duration(timeout),
                )
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        if self._running:
            await self._stopped.wait()
        self._outage.stopping()
        self.close()

    def close(self) -> None:
        """Release the lanes' workers and detach the log redaction filters (``drain`` does it
        too); idempotent. The store belongs to the caller."""
        self._lanes.close()
        self._detach_redactor()

    # -- the store cannot write -------------------------------------------------------------

    @property
    def store_problem(self) -> str | None:
        """Why the store cannot write (readiness is down meanwhile), or None."""
        return self._outage.problem

    def store_failed(self, exc: BaseException) -> bool:
        """Hear of a store error met elsewhere (the rule engine's transaction). True when it
        means the store cannot write: delivery then pauses until it can."""
        if not isinstance(exc, sqlite3.OperationalError):
            return False
        self._outage.failed(exc)
        return True

    # -- the loop's stages -----------------------------------------------------------------

    def _add(self, row: NewRow) -> bool:
        """Write ``row`` and its rate-limit decision; while the store cannot write, keep it
        in memory (True: kept, or it is written later) until it can."""
        if self._outage.current is not None:
            return self._outage.hold(row)
        now = self._now()
        try:
            # One commit (the engine's, when it enqueues): the row and its rate-limit decision.
            with self._store.transaction(wait=False):  # synced before any send
                self._store.if_rolled_back(functools.partial(self._outage.lost, row))
                row_id = self._outbox.add(row, now)
                route = None if row_id is None else self._admit(row_id, row.title, row.tags, now)
                if row_id is not None and route is not None:
                    written = row.written(row_id, route, now)
                    self._store.after_commit(functools.partial(self._committed, written))
        except sqlite3.OperationalError as exc:
            self._outage.failed(exc)
            return self._outage.hold(row)
        if row_id is None:
            self._metrics.notifications.labels("deduplicated").inc()
            log.debug("duplicate notification %s ignored", row.key)
            return False
        self._metrics.notifications.labels("queued").inc()
        self._refresh_pending()
        self.wake()  # also covers what ``_committed`` does not start (no room, other thread)
        return True

    def _poke(self) -> None:
        self._settled.clear()
        self._wake.set()

    def _committed(self, row: OutboxRow) -> None:
        """The row's transaction committed: its sends start with the others committed in the
        same stretch of the loop's work (``Launcher.start_soon``). Off the loop's thread the
        woken delivery loop starts it."""
        if not self._running or self._stopping or self._loop_thread != threading.get_ident():
            return
        self._launch.start_soon(row)

    def start_committed(self) -> None:
        """The engine's consumer, after each batch: start the batch's new rows together."""
        self._launch.start_committed()

    def _start_due(self, now: float) -> bool:
        """Start every due send there is lane room for. False, starting none, while a
        transaction is open on the store: what it wrote is not committed, so it must not be
        sent."""
        if self._outbox.uncommitted:
            return False
        if self._outage.current is not None:
            return True  # the run loop tries the store again
        self._launch.wait_until = None
        for row in self._outbox.due(now, SCAN_LIMIT):
            self._launch.start(row, now)
        return True

    def _resumed(self) -> None:
        """The store writes again: what it wrote may be due now."""
        self._refresh_pending()
        self._poke()

    def _refresh_pending(self) -> None:
        """The pending count may have changed: the next delivery pass counts (once a pass)."""
        self._pending_stale = True

    def _count_pending(self) -> None:
        self._pending_stale = False
        self._metrics.outbox_pending.set(self._outbox.pending_count())

    def _prune(self, now: float) -> None:
        self._next_prune = now + PRUNE_EVERY
        gone = self._outbox.prune(now, window=self._limiter.longest_window)
        if gone:
            log.debug("pruned %d finished outbox row(s)", gone)

    def _sleep_for(self, now: float) -> float | None:
        """Until the next row, channel retry or lane pause is due; a finishing send wakes
        the loop for rows waiting on a busy lane."""
        waits = [t for t in (self._outbox.next_due(now), self._launch.wait_until) if t is not None]
        if not waits:
            return MAX_SLEEP
        return min(max(min(waits) - now, 0.0), MAX_SLEEP)
