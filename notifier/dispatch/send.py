"""The send stage: the channels a row still owes, and one apprise call on a ``SendPool``
worker, awaited at most the delivery timeout plus ``THREAD_GRACE``."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from notifier.dispatch.channels import Channel, Channels, SendResult
from notifier.dispatch.outbox import OutboxRow
from notifier.dispatch.pool import THREAD_GRACE, SendPool
from notifier.dispatch.ratelimit import ALL

__all__ = ["Sending", "owed", "start", "unsendable"]


def owed(channels: Channels, row: OutboxRow, route: tuple[str, ...]) -> list[Channel]:
    """The channels ``route`` selects that have not confirmed ``row``; after a partial
    failure, only those that failed."""
    remaining = [c for c in channels.select(route) if c.key not in row.done]
    if row.retry:
        narrowed = [c for c in remaining if c.key in row.retry]
        if narrowed:
            return narrowed
        # Every channel that failed was edited or removed: send to all still owed it.
    return remaining


def unsendable(channels: Channels, route: tuple[str, ...]) -> SendResult:
    """The failure of a row no channel is owed: retryable only while no channel is loaded."""
    if not channels.channels:  # no usable apprise config yet: wait for a reload
        return SendResult(False, frozenset(), frozenset(), True, "no channels loaded")
    wanted = ", ".join(route) or ALL  # a tag no channel has will not start matching by itself
    return SendResult(False, frozenset(), frozenset(), False, f"no channel matches tags: {wanted}")


def start(
    pool: SendPool,
    channels: Channels,
    targets: list[Channel],
    route: tuple[str, ...],
    row: OutboxRow,
    *,
    timeout: float,
) -> Sending:
    """Submit the apprise call for ``row`` to ``targets``; it is running on return."""
    call = functools.partial(
        channels.send,
        targets=targets,
        tags=route,
        title=row.title,
        body=row.body,
        severity=row.severity,
        timeout=timeout,
    )
    keys = frozenset(c.key for c in targets)
    return Sending(pool.submit(call), keys, timeout, channels)


@dataclass(frozen=True, slots=True)
class Sending:
    """One apprise call started on a send worker; ``result`` waits for it, at most the
    delivery timeout plus ``THREAD_GRACE``. A call still running then is abandoned: its
    worker stays busy until apprise returns, and the pool starts another for other sends."""

    future: asyncio.Future[SendResult]
    keys: frozenset[str]
    timeout: float
    channels: Channels

    async def result(self) -> SendResult:
        try:
            return await asyncio.wait_for(self.future, self.timeout + THREAD_GRACE)
        except TimeoutError:
            error = f"apprise did not return within {self.timeout}s"
            return SendResult(False, frozenset(), self.keys, True, error)
        except Exception as exc:
            error = self.channels.redactor(f"apprise raised {type(exc).__name__}: {exc}")
            return SendResult(False, frozenset(), self.keys, True, error)
