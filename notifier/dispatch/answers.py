"""The stage after a send: await each channel's answer and record it in the outbox as
confirmed, to retry (per channel, with backoff), or given up (dead-lettered and reported to
the ``errors_to`` tags)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from notifier.config import Settings
from notifier.dispatch.channels import Channel, Channels, SendResult, short_label
from notifier.dispatch.lanes import Lane, Lanes
from notifier.dispatch.outage import Confirmation, StoreOutage
from notifier.dispatch.outbox import Outbox, OutboxRow
from notifier.dispatch.ratelimit import Admit
from notifier.dispatch.retry import RetryPolicy, dead_letter_report, is_error_report
from notifier.dispatch.send import LATE_ANSWERS, answer, late_answer, timed_out
from notifier.durations import format_duration
from notifier.metrics import Metrics

if TYPE_CHECKING:
    from notifier.store import Store

__all__ = ["Answers"]

log = logging.getLogger("notifier.dispatch")


class Answers:
    """Records what each channel answered; ``channels`` gives the current apprise generation
    (a reload may replace it while a send is out)."""

    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        settings: Settings,
        metrics: Metrics,
        *,
        channels: Callable[[], Channels],
        lanes: Lanes,
        retry: RetryPolicy,
        outage: StoreOutage,
        admit: Admit,
        recorded: Callable[[], None],
        wake: Callable[[], None],
        now: Callable[[], float],
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._settings = settings
        self._metrics = metrics
        self._channels = channels
        self._lanes = lanes
        self._retry = retry
        self._outage = outage
        self._admit = admit
        self._recorded = recorded
        self._wake = wake
        self._now = now

    async def deliver(
        self,
        row: OutboxRow,
        route: tuple[str, ...],
        channel: Channel,
        lane: Lane,
        future: asyncio.Future[SendResult],
    ) -> None:
        """Await one channel's answer; at the timeout, record it as uncertain (retried after
        a backoff), and keep waiting: a late confirmation is recorded too, so the channel is
        not sent the message again."""
        timeout = self._settings.delivery.timeout
        try:
            try:
                result = await asyncio.wait_for(
                    answer(asyncio.shield(future), self._channels(), channel), timeout
                )
            except TimeoutError:
                self.answered(row, route, channel, lane, timed_out(channel, timeout))
                late = await late_answer(future, self._channels(), channel, timeout)
                if late is None:
                    log.warning(
                        "no answer from %s for %s (row %d) after %s; its lane goes on without it",
                        short_label(channel), row.key, row.id,
                        format_duration(LATE_ANSWERS * timeout),
                    )  # fmt: skip
                elif late.ok:
                    self.answered(row, route, channel, lane, late, late=True)
            else:
                self.answered(row, route, channel, lane, result)
        except sqlite3.OperationalError as exc:
            self._outage.failed(exc)  # a failure not recorded is retried after the outage
        except Exception:
            self.internal_error(row)
        with contextlib.suppress(sqlite3.Error):
            self._recorded()

    def internal_error(self, row: OutboxRow) -> None:
        """Called in an ``except`` block: a bug must not hot-loop on one row, so it backs off
        like a failed send."""
        log.exception("delivering %s failed unexpectedly; retrying later", row.key)  # noqa: LOG004
        now = self._now()
        with contextlib.suppress(sqlite3.Error):
            self._outbox.record_failure(
                row.id,
                delivered=(),
                retry=row.retry,
                error="internal error",
                now=now,
                next_attempt_at=now + self._retry.backoff(row),
            )

    def answered(
        self,
        row: OutboxRow,
        route: tuple[str, ...],
        channel: Channel,
        lane: Lane,
        result: SendResult,
        *,
        late: bool = False,
    ) -> None:
        """Record one channel's answer for ``row``: confirmed, to retry, or the row given up."""
        now = self._now()
        current = self._outbox.get(row.id)
        if current is None:
            return
        owed_keys = [c.key for c in self._channels().select(route)]
        attempt = current.failures.get(channel.key, 0) + 1  # this channel's
        if result.ok:
            if not late:  # a late answer does not end the lane's backoff: it is slow
                self._lanes.succeeded(lane)
            try:
                finished = self._outbox.record_channel(row.id, channel.key, owed=owed_keys, now=now)
            except sqlite3.OperationalError as exc:
                # Sent but not recorded: kept until the store writes, never sent again.
                self._outage.confirm(exc, Confirmation(row.id, channel.key, tuple(owed_keys)))
                return
            if finished:
                self._metrics.notifications.labels("sent").inc()
            log.info(
                "delivered %s%s",
                self._outcome(current, result, attempt),
                " (a late answer, after the timeout)" if late else "",
            )
            return
        error = result.error or "delivery failed"
        self._lanes.failed(lane, now, error)
        if current.state != "pending":
            return
        retry = self._retry.retry(current, result, now)
        if retry is None:
            self._dead_letter(current, result, error, now)
            return
        self._outbox.record_channel(
            row.id, channel.key, owed=owed_keys, now=now, retry_at=retry.at, error=error
        )
        self._metrics.notifications.labels("failed").inc()
        # Logged once per row and channel; later attempts only at debug.
        level = logging.DEBUG if channel.key in current.retry_at else logging.WARNING
        log.log(
            level,
            "not delivered %s; retrying for up to %s: %s",
            self._outcome(current, result, attempt),
            format_duration(retry.deadline - now),
            error,
        )

    def unsendable(self, row: OutboxRow, result: SendResult) -> None:
        """A row no channel is owed: retried while no channel is loaded, else given up."""
        now = self._now()
        error = result.error or "delivery failed"
        retry = self._retry.retry(row, result, now)
        if retry is None:
            self._dead_letter(row, result, error, now)
            return
        self._outbox.record_failure(
            row.id, delivered=(), retry=None, error=error, now=now, next_attempt_at=retry.at
        )
        self._metrics.notifications.labels("failed").inc()
        level = logging.WARNING if row.attempts == 0 else logging.DEBUG
        log.log(level, "not delivered %r (row %d); retrying: %s", row.title, row.id, error)

    def _outcome(self, row: OutboxRow, result: SendResult, attempt: int) -> str:
        """One delivery result as a log line's subject: the row, the rule, and how each
        channel answered (privacy URLs only)."""
        labels = {c.key: short_label(c) for c in self._channels().channels}
        answers = [f"{labels.get(k, k)} ok" for k in sorted(result.delivered)]
        answers += [f"{labels.get(k, k)} failed" for k in sorted(result.failed)]
        return (
            f"{row.title!r} (rule {row.rule_id}, row {row.id}, attempt {attempt}) to "
            f"{', '.join(row.route or row.tags) or 'every channel'}: "
            f"{'; '.join(answers) or 'no channel answered'}"
        )

    def _dead_letter(self, row: OutboxRow, result: SendResult, error: str, now: float) -> None:
        errors_to = self._settings.errors_to
        report = None
        if errors_to and not is_error_report(row, self._digest_kinds(row)):
            report = dead_letter_report(row, error, now, errors_to)
        with self._store.transaction(wait=False):
            reported = self._outbox.record_dead(row.id, result.delivered, error, now, report)
            if report is not None and reported is not None:
                self._admit(reported, report.title, report.tags, now)
        self._metrics.notifications.labels("dead_lettered").inc()
        log.error(
            "gave up on %r (%s) after %d attempt(s): %s",
            row.title,
            row.key,
            row.attempts + 1,
            error,
        )
        if reported is not None:
            self._metrics.notifications.labels("queued").inc()
            self._wake()

    def _digest_kinds(self, row: OutboxRow) -> list[str]:
        if row.kind != "digest":
            return []
        return [kind for kind, *_ in self._outbox.digest_items(row.id)]
