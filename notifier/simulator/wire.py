"""Shared plumbing of the simulated upstreams: JSON responses, timestamps and `Peer`.

A `Peer` is one accepted websocket with a bounded outbound queue drained by its own writer task,
so scripting methods can push frames synchronously and a slow reader never blocks the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import WSMsgType, web

__all__ = ["Peer", "iso", "json_response", "loads_object"]


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Answer ``data`` as an orjson-encoded body."""
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def iso(at: float | None = None, *, millis: bool = False) -> str:
    """Unix seconds (default now) as an ISO-8601 UTC string ending in ``Z``."""
    moment = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def loads_object(data: str | bytes) -> dict[str, Any] | None:
    """Parse a JSON object; None when ``data`` is not JSON or not an object."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class Peer:
    """One server-side websocket whose frames go out through a bounded queue.

    ``send`` never blocks: when the queue is full the reader is too slow, and the connection is
    aborted (dropped, not buffered). ``on_sent`` is called with a frame's tag just before it is
    written, which is how send times are recorded.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        maxsize: int,
        on_sent: Callable[[int | None], None] | None = None,
    ) -> None:
        self.ws = ws
        self.overflowed = False
        self._transport = transport
        self._queue: asyncio.Queue[tuple[bytes, int | None]] = asyncio.Queue(maxsize)
        self._on_sent = on_sent
        self._task = asyncio.create_task(self._write())

    def send(self, data: bytes, tag: int | None = None) -> bool:
        """Queue one text frame; on overflow drop the connection and answer False."""
        if self._task.done():
            return False
        try:
            self._queue.put_nowait((data, tag))
        except asyncio.QueueFull:
            self.overflowed = True
            self.abort()
            return False
        return True

    @property
    def port(self) -> int | None:
        """The client's TCP port (its side of the connection), or None once closed."""
        peer = self._transport.get_extra_info("peername") if self._transport else None
        return int(peer[1]) if peer else None

    def write_now(self, data: bytes) -> None:
        """Hand ready-made websocket frames to the transport at once, past the queue (bench
        bursts: the reader, not this writer, sets the pace)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def send_json(self, value: Any, tag: int | None = None) -> bool:
        """Queue one JSON object as a text frame."""
        return self.send(orjson.dumps(value), tag)

    def abort(self) -> None:
        """Close the TCP connection at once, without a close frame, like a network failure."""
        if self._transport is not None:
            self._transport.abort()
        self._task.cancel()

    async def close(self, code: int = 1001, message: bytes = b"") -> None:
        """Stop writing and close the websocket with a close frame."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=code, message=message), 1.0)

    async def finish(self) -> None:
        """Stop the writer after the handler's read loop ended."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _write(self) -> None:
        try:
            while True:
                data, tag = await self._queue.get()
                if self._on_sent is not None:
                    self._on_sent(tag)
                await self.ws.send_frame(data, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            self.abort()
