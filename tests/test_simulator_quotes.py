"""The simulated Argyros quote stream speaks UPSTREAMS §2 (real sockets on loopback)."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from notifier.simulator import SIM_KEYS, Simulator, serve
from tests.receivers import wait_until
from tests.support import SOL, USDC


async def frame(
    ws: aiohttp.ClientWebSocketResponse,
    pred: Callable[[dict[str, Any]], bool] = lambda _: True,
    within: float = 10.0,
) -> dict[str, Any]:
    """The next frame matching ``pred``, skipping others."""
    async with asyncio.timeout(within):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            data: dict[str, Any] = orjson.loads(msg.data)
            if pred(data):
                return data


def pair(amount: Any = "50000000", exact_in: Any = True, **extra: Any) -> dict[str, Any]:
    return {"in": SOL, "out": USDC, "amount": amount, "exactIn": exact_in, **extra}


def is_type(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda data: data.get("type") == kind


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(random_walk=False) as simulator:
        yield simulator


@pytest.fixture
async def ws(
    sim: Simulator, http: aiohttp.ClientSession
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with http.ws_connect(f"{sim.urls.quotes_ws}?key={SIM_KEYS.quotes}") as conn:
        yield conn


@pytest.mark.parametrize(("query", "status"), [("", 401), ("?key=argy_00", 403)])
async def test_key_checked_before_upgrade(
    sim: Simulator, http: aiohttp.ClientSession, query: str, status: int
) -> None:
    """A missing key is refused with 401 and a wrong one with 403, before the upgrade."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(sim.urls.quotes_ws + query)
    assert info.value.status == status
    assert sim.quotes.connection_count() == 0


async def test_subscribe_acks_count_and_first_quote_at_once(
    sim: Simulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """Subscribing acks the accepted count and sends the pair's first quote without waiting."""
    await ws.send_bytes(orjson.dumps({"op": "subscribe", "pairs": [pair()]}))
    quote = await frame(ws, is_type("quote"))
    assert set(quote) == {
        "type",
        "in",
        "out",
        "amount",
        "amountOut",
        "priceImpactBps",
        "hops",
        "slot",
    }
    assert (quote["in"], quote["out"], quote["amount"]) == (SOL, USDC, "50000000")
    assert isinstance(quote["amountOut"], str)
    assert quote["amountOut"].isdigit()
    assert all(isinstance(quote[k], int) for k in ("priceImpactBps", "hops", "slot"))
    assert await frame(ws, is_type("subscribed")) == {"type": "subscribed", "count": 1}
    assert sim.quotes.subscription_count() == 1


async def test_invalid_and_duplicate_pairs_are_skipped(
    sim: Simulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """Pairs with missing or mistyped fields, and duplicates, are not counted."""
    pairs = [
        pair(),
        pair(),  # duplicate in the same message
        pair(amount="12x"),
        pair(amount=5),
        pair(exact_in="true"),
        {"in": SOL, "amount": "1", "exactIn": True},
        "not a pair",
        pair(amount="7", exact_in=False),
    ]
    await ws.send_bytes(orjson.dumps({"op": "subscribe", "pairs": pairs}))
    assert await frame(ws, is_type("subscribed")) == {"type": "subscribed", "count": 2}
    await ws.send_bytes(orjson.dumps({"op": "subscribe", "pairs": [pair()]}))
    assert await frame(ws, is_type("subscribed")) == {"type": "subscribed", "count": 0}
    assert sim.quotes.subscription_count() == 2


async def test_unsubscribe_acks_removed_pairs(
    sim: Simulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """Unsubscribe counts only pairs that were subscribed."""
    await ws.send_bytes(orjson.dumps({"op": "subscribe", "pairs": [pair("1"), pair("2")]}))
    await frame(ws, is_type("subscribed"))
    message = {"op": "unsubscribe", "pairs": [pair("1"), pair("3"), pair("1", exact_in=False)]}
    await ws.send_bytes(orjson.dumps(message))
    assert await frame(ws, is_type("unsubscribed")) == {"type": "unsubscribed", "count": 1}
    assert sim.quotes.subscription_count() == 1


async def test_errors_for_invalid_json_and_unknown_op(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Unparsable frames and unknown ops answer the documented error messages."""
    await ws.send_str("{not json")
    assert await frame(ws) == {"type": "error", "message": "invalid json"}
    await ws.send_str('{"op":"ping"}')
    assert await frame(ws) == {"type": "error", "message": "unknown op"}


async def test_subscription_cap_is_256_per_connection(
    sim: Simulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """Past 256 pairs nothing more is accepted and a type:error says so."""
    pairs = [pair(str(n)) for n in range(1, 301)]
    await ws.send_bytes(orjson.dumps({"op": "subscribe", "pairs": pairs}))
    assert await frame(ws, is_type("subscribed")) == {"type": "subscribed", "count": 256}
    error = await frame(ws, is_type("error"))
    assert "256" in error["message"]
    assert sim.quotes.subscription_count() == 256


async def test_scripted_quote_pushed_once_per_material_change(
    sim: Simulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """set_quote pushes; an identical re-quote is suppressed; bursts coalesce to the last."""
    await ws.send_bytes(orjson.dumps({"op": "subscribe", "pairs": [pair()]}))
    await frame(ws, is_type("subscribed"))
    sim.quotes.set_quote(SOL, USDC, "50000000", 452, price_impact_bps=3, hops=2)
    first = await frame(ws, is_type("quote"))
    assert (first["amountOut"], first["priceImpactBps"], first["hops"]) == ("452", 3, 2)
    sim.quotes.set_quote(SOL, USDC, "50000000", 452, price_impact_bps=3, hops=2)  # unchanged
    sim.quotes.set_quote(SOL, USDC, "50000000", 460)
    sim.quotes.set_quote(SOL, USDC, "50000000", 470)  # same window: only this one goes out
    second = await frame(ws, is_type("quote"))
    assert (second["amountOut"], second["priceImpactBps"], second["hops"]) == ("470", 0, 1)
    assert second["slot"] > first["slot"]
    sim.quotes.set_quote(SOL, USDC, "50000000", 480)
    assert (await frame(ws, is_type("quote")))["amountOut"] == "480"


async def test_drop_connections_closes_sockets(
    sim: Simulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """drop_connections aborts every quote socket."""
    await wait_until(lambda: sim.quotes.connection_count() == 1)
    assert sim.quotes.drop_connections() == 1
    msg = await ws.receive(timeout=10)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR)
    await wait_until(lambda: sim.quotes.connection_count() == 0)


async def test_random_walk_moves_subscribed_prices(http: aiohttp.ClientSession) -> None:
    """With the random walk on, a subscribed pair keeps getting new quotes."""
    async with Simulator(seed=7, walk_interval=0.02) as sim:
        url = f"{sim.urls.quotes_ws}?key={SIM_KEYS.quotes}"
        async with http.ws_connect(url) as ws:
            big = pair("1000000000000")
            await ws.send_bytes(orjson.dumps({"op": "subscribe", "pairs": [big]}))
            first = await frame(ws, is_type("quote"))
            later = await frame(ws, lambda d: d.get("type") == "quote" and d != first)
            assert later["amountOut"] != first["amountOut"] or later["hops"] != first["hops"]


async def test_flood_records_send_time_per_slot(
    sim: Simulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """flood pushes material changes at a rate and records when each slot was sent."""
    await ws.send_bytes(orjson.dumps({"op": "subscribe", "pairs": [pair("1"), pair("2")]}))
    await frame(ws, is_type("subscribed"))
    done = await sim.quotes.flood(rate_per_s=5000, duration_s=0.2)
    assert done > 100
    assert sim.quotes.dropped_slow == 0
    slots: list[int] = []
    while len(slots) < done:
        slots.append((await frame(ws, is_type("quote")))["slot"])
    times = sim.quotes.send_times()
    assert all(slot in times for slot in slots)


async def test_slow_reader_is_dropped() -> None:
    """A reader that never reads overflows its bounded queue and is disconnected."""
    async with Simulator(random_walk=False, quote_queue_size=100) as sim:
        port = sim.port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /api/v1/stream?key={SIM_KEYS.quotes} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        payload = orjson.dumps({"op": "subscribe", "pairs": [pair(str(n)) for n in range(1, 65)]})
        # A masked client text frame with a zero mask, so the payload goes as is.
        writer.write(b"\x81\xfe" + struct.pack("!H", len(payload)) + b"\0\0\0\0" + payload)
        await wait_until(lambda: sim.quotes.subscription_count() == 64)
        flood = asyncio.create_task(sim.quotes.flood(rate_per_s=20_000, duration_s=8))
        await wait_until(lambda: sim.quotes.dropped_slow == 1)
        assert sim.quotes.connection_count() == 0
        assert sim.quotes.frames_sent > 1000  # dropped for not reading, not for the burst
        flood.cancel()
        writer.close()


async def test_control_api_sets_quote(
    sim: Simulator, ws: aiohttp.ClientWebSocketResponse, http: aiohttp.ClientSession
) -> None:
    """POST /_sim/quotes/set scripts a quote over HTTP."""
    await ws.send_bytes(orjson.dumps({"op": "subscribe", "pairs": [pair()]}))
    await frame(ws, is_type("subscribed"))
    body = {"in_mint": SOL, "out_mint": USDC, "amount": "50000000", "amount_out": 999}
    async with http.post(f"{sim.urls.control}/quotes/set", json=body) as resp:
        assert resp.status == 200
        assert await resp.json() == {"ok": True}
    assert (await frame(ws, is_type("quote")))["amountOut"] == "999"
    async with http.get(f"{sim.urls.control}/stats") as resp:
        assert (await resp.json())["quotes"]["subscriptions"] == 1


async def test_serve_prints_config_and_stops() -> None:
    """serve prints ready-to-paste TOML and returns once stop is set."""
    out = io.StringIO()
    stop = asyncio.Event()
    task = asyncio.create_task(serve("127.0.0.1", 0, stop=stop, out=out, random_walk=False))
    await wait_until(lambda: "[intents]" in out.getvalue())
    text = out.getvalue()
    assert 'url = "ws://127.0.0.1:' in text
    assert f'api_key = "{SIM_KEYS.quotes}"' in text
    assert "/api/v1/stream" in text
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_send_raw_reaches_every_connection(
    sim: Simulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """send_raw writes a frame verbatim, so clients' tolerance of bad frames can be tested."""
    await wait_until(lambda: sim.quotes.connection_count() == 1)
    assert sim.quotes.send_raw(b"[1,2]") == 1
    msg = await ws.receive(timeout=10)
    assert msg.data == "[1,2]"
