"""The launch stage: a due row becomes one send per channel it still owes, on that channel's
lane, started at once so apprise is called without waiting for a task to be scheduled.

Before sending, a digest is sealed, a row written unrouted is routed, and the talkback stage
(``Stage``) may hold or trim it; a row settled on the way is not sent.

Rows just committed start together (``start_soon``, ``start_committed``): once the code that
committed them is done, so that one fsync on the loop covers them all (``send.start``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable

from notifier.dispatch import digest
from notifier.dispatch.answers import Answers
from notifier.dispatch.channels import Channel, Channels, short_label
from notifier.dispatch.lanes import Lane, Lanes
from notifier.dispatch.outage import StoreOutage
from notifier.dispatch.outbox import Outbox, OutboxRow
from notifier.dispatch.ratelimit import Admit, RateLimiter
from notifier.dispatch.send import owed, start, unsendable

__all__ = ["Launcher", "Stage"]

log = logging.getLogger("notifier.dispatch")

# A stage right before sending: the row to send (maybe owing fewer channels), or None when
# it settled the row without a send.
Stage = Callable[[OutboxRow, tuple[str, ...], Channels, float], OutboxRow | None]


class Launcher:
    """Starts sends and keeps the tasks awaiting their answers (``in_flight``); ``wait_until``
    is the earliest channel retry or lane pause it saw, for the delivery loop's sleep."""

    def __init__(
        self,
        outbox: Outbox,
        limiter: RateLimiter,
        lanes: Lanes,
        answers: Answers,
        outage: StoreOutage,
        *,
        admit: Admit,
        channels: Callable[[], Channels],
        timeout: Callable[[], float],
        now: Callable[[], float],
        busy: Callable[[], None],
        poke: Callable[[], None],
        recheck: Callable[[], None],
        stopping: Callable[[], bool],
    ) -> None:
        self._outbox = outbox
        self._limiter = limiter
        self._lanes = lanes
        self._answers = answers
        self._outage = outage
        self._admit = admit
        self._channels = channels
        self._timeout = timeout
        self._now = now
        self._busy = busy  # a send may start: the dispatcher is not settled
        self._poke = poke  # the delivery loop looks at the outbox again
        self._recheck = recheck  # the pending count may have changed
        self._stopping = stopping  # the dispatcher is draining: start nothing new
        self._committed: list[OutboxRow] = []  # written and committed, sends not started
        self.stage: Stage | None = None  # the talkback stage, right before sending
        self.in_flight: dict[tuple[int, str], asyncio.Task[None]] = {}  # (row, channel)
        self.wait_until: float | None = None  # a channel's own retry time or lane pause

    def wait_for(self, at: float) -> None:
        if self.wait_until is None or at < self.wait_until:
            self.wait_until = at

    def start(self, row: OutboxRow, now: float) -> None:
        """Run the stages up to the sends now: one send per owed channel whose lane has room
        and whose own retry time has come; a task per send awaits it and records the
        channel's answer."""
        self._busy()
        try:
            plan = self._begin(row)
        except sqlite3.OperationalError as exc:
            self._outage.failed(exc)
            return
        except Exception:
            self._answers.internal_error(row)
            plan = None
        if plan is None:  # settled without a send (or failed): re-check the outbox
            with contextlib.suppress(sqlite3.Error):
                self._recheck()
            self._poke()
            return
        row, route, targets = plan
        channels = self._channels()
        for channel in targets:
            lane = self._lanes.get(channel.key, short_label(channel))
            if row.id in lane.running:
                continue  # its last call has not returned yet: never two at once
            at = row.retry_at.get(channel.key, now)
            if at > now or now < lane.paused_until:
                self.wait_for(max(at, lane.paused_until))
                continue
            if not lane.free(now):
                continue  # a finishing send on the lane wakes the loop
            future = start(
                lane, channels, channel, row, timeout=self._timeout(), store=self._outbox.store
            )
            task = asyncio.create_task(
                self._answers.deliver(row, route, channel, lane, future),
                name=f"deliver-{row.id}-{channel.key[:8]}",
            )
            self.in_flight[(row.id, channel.key)] = task
            task.add_done_callback(functools.partial(self._finished, row.id, channel.key, lane))

    def start_soon(self, row: OutboxRow) -> None:
        """Start ``row`` (just committed) with the other rows committed before the caller is
        done: at ``start_committed``, or at the latest in the loop's next turn, before the
        delivery loop's own look at the outbox. The row is the one just written, not read
        back."""
        self._committed.append(row)
        if len(self._committed) == 1:
            asyncio.get_running_loop().call_soon(self.start_committed)

    def start_committed(self) -> None:
        """Start the sends of the rows ``start_soon`` took since the last call."""
        rows, self._committed = self._committed, []
        if not rows or self._stopping():
            return
        try:
            if self._outage.current is None and not self._outbox.uncommitted:
                now = self._now()
                for row in rows:
                    self.start(row, now)
        except Exception:  # never fail the loop's callback: the delivery loop retries them
            log.exception("starting the sends of %d new outbox row(s) failed; retrying", len(rows))
            self._poke()

    def _finished(self, row_id: int, key: str, lane: Lane, task: asyncio.Task[None]) -> None:
        self.in_flight.pop((row_id, key), None)
        lane.running.discard(row_id)
        self._poke()

    def _begin(self, row: OutboxRow) -> tuple[OutboxRow, tuple[str, ...], list[Channel]] | None:
        """Seal a digest, route a row written unrouted and pick the channels it still owes.
        None when the row was settled without a send."""
        now = self._now()
        if row.kind == "digest" and row.digest_open:
            row = digest.seal(self._outbox, self._limiter, row)
        route = row.route
        if route is None:  # written by a version that routed rows only when sending them
            route = self._admit(row.id, row.title, row.tags, now)
            if route is None:
                return None
        channels = self._channels()
        in_flight = any(rid == row.id for rid, _ in self.in_flight)  # its answer decides
        if self.stage is not None and row.kind == "rule" and not in_flight:
            staged = self.stage(row, route, channels, now)
            if staged is None:
                return None
            row = staged
        targets = owed(channels, row, route)
        if targets:
            return row, route, targets
        if row.done:  # channels that still lacked it are gone from the config
            self._outbox.record_sent(row.id, (), self._now())
            return None
        self._answers.unsendable(row, unsendable(channels, route))
        return None
