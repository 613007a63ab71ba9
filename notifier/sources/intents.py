"""Changelly DeFi intent poller (UPSTREAMS §3): ``GET /v1/intents/{id}`` until terminal.

Tracked intents are the union of the config's ``track``, the rules' intents and ids added at
run time with ``track`` (``IntentTracking``, intent_tracking.py, persists them).

Failure policy per intent: 429 waits ``Retry-After`` (seconds or HTTP date); 5xx, network
errors, other 4xx and unusable bodies (not JSON, no status, an amount that is not a bounded
integer or decimal, over ``MAX_BODY`` bytes) back off with full jitter; 404 is logged once and
polled slowly, because an intent created moments ago may not be visible yet. The feed is down
after ``down_after`` consecutive failed polls and up again on the next success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Self
from urllib.parse import quote

import aiohttp
import orjson

from notifier.backoff import BackoffPolicy
from notifier.config import IntentSettings
from notifier.events import (
    TERMINAL_INTENT_STATUSES,
    EventSink,
    IntentEvent,
    Interest,
    validate_intent_id,
)
from notifier.logthrottle import LogLimiter
from notifier.metrics import Metrics
from notifier.sources.base import (
    BodyTooLarge,
    FeedHealth,
    FeedStatus,
    SourceContext,
    describe_error,
    read_body,
)
from notifier.sources.intent_tracking import IntentTracking, PolledIntent, TrackedIntent
from notifier.sources.intent_wire import (
    MAX_BODY,
    IntentResponse,
    MalformedResponse,
    parse_retry_after,
)
from notifier.store import Store

__all__ = [
    "MAX_BODY",
    "IntentPoller",
    "IntentResponse",
    "MalformedResponse",
    "parse_retry_after",
]

log = logging.getLogger(__name__)


class IntentPoller:
    """Polls every tracked, non-terminal intent and emits an ``IntentEvent`` per status change."""

    name = "intent"

    def __init__(
        self,
        settings: IntentSettings,
        sink: EventSink,
        metrics: Metrics,
        store: Store,
        *,
        backoff: BackoffPolicy | None = None,
        max_concurrency: int = 4,
        not_found_interval: float | None = None,
        down_after: int = 3,
        timeout: float = 15.0,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._store = store
        self._key = settings.api_key.get_secret_value()
        self._base = settings.url.rstrip("/")
        interval = settings.poll_interval
        self._backoff = backoff or BackoffPolicy(base=max(interval, 1.0), cap=max(300.0, interval))
        self._max_concurrency = max_concurrency
        self._not_found_interval = not_found_interval or max(60.0, 6 * interval)
        self._down_after = down_after
        self._timeout = timeout
        self._health = FeedHealth("intent", sink, metrics)
        self._limited = LogLimiter(log)
        self._intents = IntentTracking(store, settings.track, self._backoff)
        self._failures = 0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def create(cls, context: SourceContext) -> Self | None:
        settings = context.settings.intents
        if not settings.enabled:
            return None
        return cls(settings, context.sink, context.metrics, context.store)

    def set_interest(self, interest: Interest) -> None:
        self._intents.set_rules(interest.intents, interest.labels)
        self._wake.set()

    def track(self, intent_id: str, label: str | None = None) -> bool:
        """Poll ``intent_id`` from now on, across restarts (the control API's ``PUT``).

        True when it was not tracked through ``track`` before; a new label replaces the old.
        """
        created = self._intents.track(intent_id, label)
        self._wake.set()
        return created

    def untrack(self, intent_id: str) -> bool:
        """Forget a ``track``; True if it was tracked that way.

        Ids the config or the rules name stay polled: those are removed by editing them.
        """
        if not self._intents.untrack(intent_id):
            return False
        self._wake.set()
        return True

    def tracked(self) -> list[TrackedIntent]:
        """Every tracked intent, terminal ones included, sorted by id."""
        return self._intents.views()

    def status(self) -> FeedStatus:
        return self._health.status(connections=0, tracked=len(self._intents.tracked()))

    async def run(self) -> None:
        headers = {"X-Api-Key": self._key} if self._key else {}
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            try:
                while True:
                    self._wake.clear()
                    waiting = [
                        i for i in self._intents.tracked() if not i.terminal and not i.in_flight
                    ]
                    if not waiting and not self._tasks:
                        self._health.set(True, "idle: no intent to poll")
                    now = loop.time()
                    for intent in sorted(waiting, key=lambda i: i.due):
                        if intent.due > now or len(self._tasks) >= self._max_concurrency:
                            break
                        self._start_poll(session, intent)
                    pending = [i.due for i in waiting if not i.in_flight]
                    delay = max(min(pending) - now, 0.0) if pending else None
                    if len(self._tasks) >= self._max_concurrency:
                        delay = None  # a finishing poll wakes us
                    # Not wait_for: on 3.11 it can swallow a cancel that races a wake-up.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start_poll(self, session: aiohttp.ClientSession, intent: PolledIntent) -> None:
        intent.in_flight = True
        task = asyncio.create_task(self._poll(session, intent), name=f"intent-{intent.intent_id}")
        self._tasks.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            intent.in_flight = False
            if not done.cancelled() and done.exception() is not None:
                # A bug in handling one answer must not turn into an immediate re-poll.
                error = done.exception()
                assert error is not None
                self._failed(intent, f"unexpected {describe_error(error, self._key)}")
                intent.due = asyncio.get_running_loop().time() + intent.backoff.delay()
            self._wake.set()

        task.add_done_callback(finished)

    async def _poll(self, session: aiohttp.ClientSession, intent: PolledIntent) -> None:
        url = f"{self._base}/v1/intents/{quote(validate_intent_id(intent.intent_id), safe='')}"
        loop = asyncio.get_running_loop()
        intent.last_polled_at = time.time()
        try:
            async with session.get(url) as response:
                code = response.status
                retry_after = response.headers.get("Retry-After")
                body = await read_body(response, MAX_BODY) if code == 200 else b""
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._failed(intent, describe_error(exc, self._key))
            intent.due = loop.time() + intent.backoff.delay()
            return
        except BodyTooLarge as exc:
            self._malformed(intent, str(exc), b"")
            intent.due = loop.time() + intent.backoff.delay()
            return
        if code == 200:
            if not self._on_body(intent, body):
                intent.due = loop.time() + intent.backoff.delay()
                return
        elif code == 404:
            if not intent.not_found:
                log.warning(
                    "intent %s not found (404); polling it every %.0fs until it appears",
                    intent.intent_id,
                    self._not_found_interval,
                )
            intent.not_found = True
            intent.detail = "not found (404)"
            self._failures = 0  # the upstream answered: not a feed failure
            intent.due = loop.time() + self._not_found_interval
            return
        elif code == 429:
            self._health.reconnect()
            wait = parse_retry_after(retry_after)
            if wait is None:
                wait = intent.backoff.delay()
            intent.detail = f"rate limited, retry in {wait:.0f}s"
            log.info("intent %s: rate limited (429), next poll in %.1fs", intent.intent_id, wait)
            intent.due = loop.time() + wait
            return
        else:
            self._failed(intent, f"HTTP {code}")
            intent.due = loop.time() + intent.backoff.delay()
            return
        intent.due = loop.time() + self._settings.poll_interval

    def _on_body(self, intent: PolledIntent, body: bytes) -> bool:
        """Handle a 200 body; False when it was unusable (the caller backs off)."""
        try:
            parsed = IntentResponse.parse(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            self._malformed(intent, f"not JSON ({exc})", body)
            return False
        except MalformedResponse as exc:
            self._malformed(intent, str(exc), body)
            return False
        if intent.not_found:
            log.info("intent %s found after 404s", intent.intent_id)
            intent.not_found = False
        intent.backoff.reset()
        self._failures = 0
        self._health.set(True, "polling")
        intent.detail = "terminal" if parsed.status in TERMINAL_INTENT_STATUSES else "ok"
        if parsed.status == intent.status:
            return True
        previous, intent.status = intent.status, parsed.status
        self._intents.save(intent)
        if intent.terminal:
            log.info("intent %s reached %s; polling stops", intent.intent_id, parsed.status)
        self._health.event()
        self._sink.emit(
            IntentEvent(
                intent_id=intent.intent_id,
                status=parsed.status,
                previous_status=previous,
                label=self._intents.label(intent),
                fields=parsed.fields,
                swap_metadata=parsed.swap_metadata,
                created_at=parsed.created_at,
                at=time.time(),
            )
        )
        return True

    def _malformed(self, intent: PolledIntent, reason: str, body: bytes) -> None:
        """An unusable 200: a failed poll like any other, logged at most once a minute."""
        self._health.malformed()
        self._failed(intent, f"malformed response: {reason}", logged=False)
        self._limited.warning(
            "malformed",
            "intent %s: malformed response skipped (%s): %.200r",
            intent.intent_id,
            reason,
            body,
        )

    def _failed(self, intent: PolledIntent, reason: str, *, logged: bool = True) -> None:
        self._health.errors += 1
        self._health.reconnect()
        self._failures += 1
        intent.detail = f"failing: {reason}"
        if logged:
            log.warning("intent %s: poll failed: %s", intent.intent_id, reason)
        if self._failures >= self._down_after:
            self._health.set(False, f"{self._failures} consecutive failed polls: {reason}")
