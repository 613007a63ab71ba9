"""One upstream websocket kept open: connect, read every frame, reconnect with full jitter.

The order feed (one per chain) and the quote stream (one per 256 pairs) both run their sockets
through ``WebSocketLink``; what differs between them comes in as callbacks: the frame handler,
the hook around each connection (subscribe, catch up) and what to do when one is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import NoReturn

import aiohttp

from notifier.backoff import BackoffPolicy
from notifier.sources.base import FeedHealth, describe_error

__all__ = ["LinkOptions", "Socket", "WebSocketLink", "open_session"]

Socket = aiohttp.ClientWebSocketResponse[bool]


def open_session(headers: Mapping[str, str] | None = None) -> aiohttp.ClientSession:
    """The session a feed connects (and makes its REST calls) through: 15 s to connect and no
    overall limit, since a websocket is meant to stay open for hours."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=15)
    return aiohttp.ClientSession(headers=headers, timeout=timeout)


@dataclass(frozen=True, slots=True)
class LinkOptions:
    """What every websocket of one feed shares."""

    log: logging.Logger  # the feed's logger: connects and losses are logged under its name
    health: FeedHealth
    backoff: BackoffPolicy
    heartbeat: float  # seconds between native pings; a missing pong drops the socket
    max_msg_size: int
    on_change: Callable[[], None]  # a socket connected or was lost: refresh the feed's health
    secrets: tuple[str, ...] = ()  # masked in every logged reason


class WebSocketLink:
    """Keeps one websocket to ``url`` open until cancelled.

    Each connection: connect, call ``on_change``, enter ``on_connect(ws)`` — an async context
    manager that (re)subscribes or starts a catch-up on entry and stops its helpers on exit — and
    hand every text frame to ``on_frame``, which must not await. A lost connection is logged
    without secrets, reported to ``on_lost`` then ``on_change``, and retried after a full-jitter
    backoff that restarts once a connection has stayed up ``backoff.healthy_after`` seconds.
    """

    def __init__(
        self,
        url: str,
        label: str,
        options: LinkOptions,
        *,
        on_frame: Callable[[str | bytes], None],
        on_malformed: Callable[[str, str | bytes], None],
        on_connect: Callable[[Socket], AbstractAsyncContextManager[object]],
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.label = label  # "order feed wss://…/1": the subject of the log lines
        self.ws: Socket | None = None
        self.failed = False  # the last attempt failed or the socket dropped
        self.connects = 0
        self._options = options
        self._log = options.log
        self._secrets = options.secrets
        self._on_frame = on_frame
        self._on_malformed = on_malformed
        self._on_connect = on_connect
        self._on_lost = on_lost

    async def run(self, session: aiohttp.ClientSession) -> NoReturn:
        backoff = self._options.backoff.start()
        attempt = 0
        while True:
            if attempt:
                self._options.health.reconnect()
                await asyncio.sleep(backoff.delay())
            attempt += 1
            try:
                reason = await self._connect_once(session, backoff.mark_up)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                reason = describe_error(exc, *self._secrets)
            # A bug must not end the feed; no traceback, as it may hold a key.
            except Exception as exc:
                reason = f"unexpected {describe_error(exc, *self._secrets)}"
            if self._on_lost is not None:
                self._on_lost()
            self.ws = None
            self.failed = True
            self._log.warning("%s lost: %s; reconnecting", self.label, reason)
            self._options.on_change()

    async def _connect_once(self, session: aiohttp.ClientSession, on_up: Callable[[], None]) -> str:
        async with session.ws_connect(
            self.url, heartbeat=self._options.heartbeat, max_msg_size=self._options.max_msg_size
        ) as ws:
            on_up()
            self.ws = ws
            self.failed = False
            self.connects += 1
            self._log.info("%s connected", self.label)
            self._options.on_change()
            async with self._on_connect(ws):
                await self.read(ws)
            error = ws.exception()
            if error is not None:
                return describe_error(error, *self._secrets)
            return f"closed by peer (code {ws.close_code})"

    async def read(self, ws: Socket) -> None:
        """Hand each frame to the handlers until the socket closes or fails."""
        on_frame, on_malformed = self._on_frame, self._on_malformed
        text, binary, error = (
            aiohttp.WSMsgType.TEXT,
            aiohttp.WSMsgType.BINARY,
            aiohttp.WSMsgType.ERROR,
        )
        async for message in ws:
            kind = message.type
            if kind is text:
                on_frame(message.data)
            elif kind is binary:
                on_malformed("binary frame", message.data)
            elif kind is error:
                return
