"""The websocket loop both feeds share, against a real aiohttp server on loopback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from notifier.backoff import BackoffPolicy
from notifier.events import FeedEvent
from notifier.metrics import Metrics
from notifier.sources.base import FeedHealth
from notifier.sources.websocket import LinkOptions, Socket, WebSocketLink, open_session
from tests.receivers import wait_until
from tests.support import Collector, in_background

SECRET = "argy_5ec12e7"


@asynccontextmanager
async def closing_server() -> AsyncIterator[str]:
    """A websocket server that sends a text and a binary frame, then closes; yields its URL."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str('{"n": 1}')
        await ws.send_bytes(b"\x00")
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        await runner.cleanup()


async def test_each_connection_runs_the_hooks_and_a_loss_reconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Frames reach the handlers inside ``on_connect``; a close is reported and retried."""
    caplog.set_level(logging.INFO)
    sink = Collector()
    health = FeedHealth("quote", sink, Metrics())
    seen: list[str] = []

    @asynccontextmanager
    async def on_connect(ws: Socket) -> AsyncIterator[None]:
        seen.append("enter")
        yield
        seen.append("exit")

    async with closing_server() as url:
        link = WebSocketLink(
            url,
            "test socket",
            LinkOptions(
                logging.getLogger("tests.websocket"),
                health,
                BackoffPolicy(base=0.01, cap=0.02),
                5.0,
                1 << 10,
                lambda: health.set(link.ws is not None, "changed"),
                (SECRET,),
            ),
            on_frame=lambda data: seen.append(f"frame {data!s}"),
            on_malformed=lambda why, data: seen.append(f"malformed {why}"),
            on_connect=on_connect,
            on_lost=lambda: seen.append("lost"),
        )
        session = open_session({"Authorization": f"Bearer {SECRET}"})
        async with session, in_background(link.run(session)):
            await wait_until(lambda: link.connects >= 2 and seen.count("lost") >= 2)
    first = seen[: seen.index("lost") + 1]
    assert first == ["enter", 'frame {"n": 1}', "malformed binary frame", "exit", "lost"]
    assert link.failed
    assert health.reconnects >= 1
    assert [e.up for e in sink.of(FeedEvent)][:2] == [True, False]
    assert "test socket connected" in caplog.text
    assert "test socket lost: closed by peer" in caplog.text
    assert SECRET not in caplog.text
