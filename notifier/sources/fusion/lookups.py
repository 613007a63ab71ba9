"""Live order events whose order is not cached yet, held while REST looks the order up.

Events of one order wait behind its single look-up and go out in arrival order once it ends,
with the order filled in when it was found. The waiting room is bounded: at most
``MAX_WAITING_PER_ORDER`` events per order and ``MAX_WAITING``/``MAX_WAITING_BYTES`` in all
(the oldest are dropped, counted in ``dropped`` and logged once per overflow), and a look-up
gives up after ``LOOKUP_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from notifier.logthrottle import LogLimiter
from notifier.sources.base import FeedHealth
from notifier.sources.fusion.rest import OrderRest
from notifier.sources.fusion.store import OrderCache
from notifier.sources.fusion.wire import ORDER_HASH

__all__ = ["MAX_WAITING_PER_ORDER", "OrderLookups", "Pending"]

log = logging.getLogger(__name__)

MAX_PENDING_LOOKUPS = 1000  # beyond this, events for unknown hashes go out without order info
MAX_WAITING_PER_ORDER = 64  # live events of one order waiting for its look-up
MAX_WAITING = 4096  # ... of all orders
MAX_WAITING_BYTES = 16 << 20  # their frames' size in all
LOOKUP_TIMEOUT = 30.0  # waiting for a REST slot included
MISSING_TTL = 600.0  # a hash REST could not resolve is not asked again for this long


@dataclass(frozen=True, slots=True)
class Pending:
    """A live event waiting for the REST look-up of its order."""

    event: str
    order_hash: str
    result: Mapping[str, Any]
    at: float
    size: int  # of its frame, counted against MAX_WAITING_BYTES


class Deliver(Protocol):
    def __call__(
        self, chain: int, name: str, order_hash: str, result: Mapping[str, Any], at: float
    ) -> None: ...


Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


class OrderLookups:
    """The bounded waiting room of live events whose order REST is looking up."""

    def __init__(
        self,
        cache: OrderCache,
        rest: OrderRest,
        health: FeedHealth,
        deliver: Deliver,
        spawn: Spawn,
    ) -> None:
        self._cache = cache
        self._rest = rest
        self._health = health
        self._deliver = deliver
        self._spawn = spawn
        self.queues: dict[tuple[int, str], deque[Pending]] = {}  # (chain, hash) -> its events
        self.waiting = 0  # events in ``queues``
        self._waiting_bytes = 0
        self.dropped = 0  # events dropped because the waiting room was full
        self._overflowing = False  # an overflow was logged; cleared once the room is empty
        self._limited = LogLimiter(log)
        self._missing: dict[tuple[int, str], float] = {}

    def submit(self, chain: int, pending: Pending) -> None:
        """Deliver ``pending`` once its order is looked up, or now when it cannot be."""
        key = (chain, pending.order_hash)
        waiting = self.queues.get(key)
        if waiting is not None:  # keep per-order order: deliver behind the first one
            self._wait(waiting, pending)
            return
        missing_since = self._missing.get(key)
        if missing_since is not None and time.monotonic() - missing_since > MISSING_TTL:
            del self._missing[key]
            missing_since = None
        if (
            not self._rest.open
            or missing_since is not None
            or len(self.queues) >= MAX_PENDING_LOOKUPS
            or not ORDER_HASH.fullmatch(pending.order_hash)
        ):
            self._deliver(chain, pending.event, pending.order_hash, pending.result, pending.at)
            return
        waiting = self.queues[key] = deque()
        self._wait(waiting, pending)
        self._spawn(self._look_up(chain, pending.order_hash), f"fusion-lookup-{chain}")

    def _wait(self, waiting: deque[Pending], pending: Pending) -> None:
        """Queue ``pending`` behind its order's look-up, dropping the oldest events when the
        order's queue or the whole waiting room is full."""
        waiting.append(pending)
        self.waiting += 1
        self._waiting_bytes += pending.size
        while len(waiting) > MAX_WAITING_PER_ORDER:
            self._drop(waiting, "per order")
        while self.waiting > MAX_WAITING or self._waiting_bytes > MAX_WAITING_BYTES:
            # Look-ups started in arrival order: the first non-empty queue holds the oldest.
            oldest = next(queue for queue in self.queues.values() if queue)
            self._drop(oldest, "in all")

    def _drop(self, waiting: deque[Pending], limit: str) -> None:
        dropped = waiting.popleft()
        self.waiting -= 1
        self._waiting_bytes -= dropped.size
        self.dropped += 1
        self._health.errors += 1
        if not self._overflowing:
            self._overflowing = True
            log.warning(
                "order feed: events waiting for order look-ups over the limit %s "
                "(%d per order, %d or %d MiB in all): dropping the oldest (%s %s); "
                "logged once until the queue empties",
                limit,
                MAX_WAITING_PER_ORDER,
                MAX_WAITING,
                MAX_WAITING_BYTES >> 20,
                dropped.event,
                dropped.order_hash,
            )

    def _release(self, key: tuple[int, str]) -> deque[Pending]:
        """Take the events waiting for ``key``'s look-up out of the waiting room."""
        waiting = self.queues.pop(key, deque())
        self.waiting -= len(waiting)
        self._waiting_bytes -= sum(pending.size for pending in waiting)
        if not self.waiting and self._overflowing:
            self._overflowing = False
            log.info(
                "order feed: look-up queue empty again; %d event(s) dropped in all",
                self.dropped,
            )
        return waiting

    async def _look_up(self, chain: int, order_hash: str) -> None:
        key = (chain, order_hash)
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                found = await self._rest.status(chain, order_hash)
        except asyncio.CancelledError:
            self._release(key)
            raise
        except TimeoutError:
            self._limited.warning(
                "look-up timeout",
                "order feed chain %d: look-up of %s took over %.0fs; its events go out without "
                "order info",
                chain,
                order_hash,
                LOOKUP_TIMEOUT,
            )
            found = None
        if found is not None and found.info is not None:
            self._cache.put(chain, found.info)
        else:
            if len(self._missing) >= MAX_PENDING_LOOKUPS:
                self._missing.clear()
            self._missing[key] = time.monotonic()
        for pending in self._release(key):
            self._deliver(chain, pending.event, pending.order_hash, pending.result, pending.at)
