"""What every source is and shares: the ``Source`` protocol, the context it is built from,
its health bookkeeping, and secret-free error text."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Self

import aiohttp

from notifier.events import EventSink, FeedEvent, FeedName, Interest
from notifier.metrics import Metrics
from notifier.secrets import mask_secrets
from notifier.store import Store

if TYPE_CHECKING:
    from notifier.config import Settings

__all__ = [
    "BodyTooLarge",
    "FeedHealth",
    "FeedStatus",
    "Source",
    "SourceContext",
    "describe_error",
    "read_body",
]

READ_CHUNK = 64 << 10


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """One source's health for ``notifier status`` and ``/api/v1/status``."""

    name: str
    up: bool
    detail: str
    connections: int  # live websockets (0 for the poller)
    reconnects: int  # reconnect attempts or failed polls since start
    errors: int  # malformed frames, upstream error frames, failed requests
    last_event_at: float | None
    tracked: int  # pairs subscribed, orders cached, or intents polled


@dataclass(frozen=True, slots=True)
class SourceContext:
    """Everything a source may need to build itself from the daemon's configuration."""

    settings: Settings
    sink: EventSink
    metrics: Metrics
    store: Store  # the daemon's state; the sources' tables come from its migrations


class Source(Protocol):
    """What the daemon drives: one upstream client, running until cancelled."""

    name: str

    @classmethod
    def create(cls, context: SourceContext) -> Self | None:
        """Build from the daemon's configuration; None when the configuration disables it."""
        ...

    def set_interest(self, interest: Interest) -> None:
        """Called at start and after every rule reload; applies only the difference."""
        ...

    async def run(self) -> None:
        """Run until cancelled; upstream faults are logged and retried, never raised."""
        ...

    def status(self) -> FeedStatus: ...


class FeedHealth:
    """A feed's up/down state and counters; every transition emits a ``FeedEvent``."""

    def __init__(self, name: FeedName, sink: EventSink, metrics: Metrics) -> None:
        self.name: FeedName = name
        self.up: bool | None = None  # None until the first connect or failure
        self.detail = "starting"
        self.reconnects = 0
        self.errors = 0
        self._sink = sink
        self._metrics = metrics
        # ``event`` runs per frame: plain numbers, exported when scraped (``FeedCounts``).
        self._count = metrics.events.feed(name)
        self._malformed = metrics.frames_malformed.labels(name)
        self._reconnects = metrics.feed_reconnects.labels(name)

    def set(self, up: bool, detail: str) -> None:
        self.detail = detail
        if up is self.up:
            return
        self.up = up
        self._metrics.feed_up.labels(self.name).set(1 if up else 0)
        self._sink.emit(FeedEvent(feed=self.name, up=up, detail=detail, at=time.time()))

    @property
    def last_event_at(self) -> float | None:
        return self._count.last_event_at

    def event(self, at: float | None = None) -> None:
        """Count one event handed to the sink at ``at`` (default: now)."""
        count = self._count
        count.last_event_at = time.time() if at is None else at
        count.events += 1

    def malformed(self) -> None:
        self.errors += 1
        self._malformed.inc()

    def reconnect(self) -> None:
        self.reconnects += 1
        self._reconnects.inc()

    def status(self, connections: int, tracked: int) -> FeedStatus:
        return FeedStatus(
            name=self.name,
            up=bool(self.up),
            detail=self.detail,
            connections=connections,
            reconnects=self.reconnects,
            errors=self.errors,
            last_event_at=self.last_event_at,
            tracked=tracked,
        )


def describe_error(exc: BaseException, *secrets: str) -> str:
    """A loggable one-line reason for ``exc`` that never carries a secret or a keyed URL."""
    if isinstance(exc, aiohttp.ClientResponseError):
        # str() of these includes the request URL, and with it a ``?key=`` query.
        text = f"HTTP {exc.status} {exc.message}".rstrip()
    elif str(exc):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = type(exc).__name__
    return mask_secrets(text, secrets)


class BodyTooLarge(Exception):
    """A response body over the caller's limit; it was not read whole."""

    def __init__(self, limit: int, declared: int | None) -> None:
        size = f"{declared} bytes declared" if declared is not None else "more"
        super().__init__(f"body too large ({size}, limit {limit} bytes)")


async def read_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of ``response``, refused with ``BodyTooLarge`` as soon as it passes ``limit``
    bytes: a declared ``Content-Length`` over it is refused before reading anything."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit, declared)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit, None)
        chunks.append(chunk)
    return b"".join(chunks)
