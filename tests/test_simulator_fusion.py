"""The simulated 1inch Fusion WS and orders REST speak UPSTREAMS §1 (real sockets on loopback)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from notifier.simulator import SIM_KEYS, Simulator

AUTH = {"Authorization": f"Bearer {SIM_KEYS.fusion}"}
HASH = re.compile(r"0x[0-9a-f]{64}-[0-9a-f]+")
STRUCT_FIELDS = {
    "salt",
    "maker",
    "receiver",
    "makerAsset",
    "takerAsset",
    "makerTraits",
    "makingAmount",
    "takingAmount",
}
ACTIVE_FIELDS = {
    "quoteId",
    "orderHash",
    "signature",
    "deadline",
    "auctionStartDate",
    "auctionEndDate",
    "remainingMakerAmount",
    "order",
    "extension",
    "version",
}


async def eventually(cond: Callable[[], bool], within: float = 10.0) -> None:
    """Poll ``cond`` until it holds, failing after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def frame(ws: aiohttp.ClientWebSocketResponse, within: float = 10.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=within)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = orjson.loads(msg.data)
    return data


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(random_walk=False, chains=(1, 137)) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def ws(
    sim: Simulator, http: aiohttp.ClientSession
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with http.ws_connect(f"{sim.urls.fusion_ws}/v2.0/1", headers=AUTH) as conn:
        await eventually(lambda: sim.fusion.connection_count(1) == 1)
        yield conn


async def rest(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.get(url, headers=kw.pop("headers", AUTH), **kw) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
async def test_ws_requires_bearer_key(
    sim: Simulator, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    """The upgrade is refused with 401 without the right Bearer key."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(f"{sim.urls.fusion_ws}/v2.0/1", headers=headers)
    assert info.value.status == 401


async def test_rpc_ping_allowed_methods_and_active_orders(
    sim: Simulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """The three RPCs answer {method, result}; getActiveOrders pages with meta."""
    await ws.send_str('{"method":"ping"}')
    assert await frame(ws) == {"method": "ping", "result": "pong"}
    await ws.send_str('{"method":"getAllowedMethods"}')
    assert await frame(ws) == {
        "method": "getAllowedMethods",
        "result": ["ping", "getAllowedMethods", "getActiveOrders"],
    }
    hashes = [sim.fusion.create_order(1, making_amount=100 + n) for n in range(5)]
    sim.fusion.create_order(137)
    for _ in hashes:
        assert (await frame(ws))["event"] == "order_created"
    await ws.send_str('{"method":"getActiveOrders","param":{"limit":2,"page":3}}')
    answer = await frame(ws)
    assert answer["method"] == "getActiveOrders"
    result = answer["result"]
    assert result["meta"] == {"totalItems": 5, "itemsPerPage": 2, "totalPages": 3, "currentPage": 3}
    assert [item["orderHash"] for item in result["items"]] == hashes[4:]
    assert set(result["items"][0]) == ACTIVE_FIELDS
    assert set(result["items"][0]["order"]) == STRUCT_FIELDS
    await ws.send_str('{"method":"getActiveOrders","param":{}}')
    assert (await frame(ws))["result"]["meta"]["totalItems"] == 5


async def test_order_events_carry_upstream_payloads(
    sim: Simulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """Every scripted change pushes its event with the exact §1.4 payload fields."""
    order_hash = sim.fusion.create_order(1, maker="0xabc", making_amount=1000, taking_amount=50)
    assert HASH.fullmatch(order_hash)
    created = await frame(ws)
    assert set(created) == {"event", "result"}
    assert created["event"] == "order_created"
    assert set(created["result"]) == (ACTIVE_FIELDS - {"version"}) | {"isMakerContract"}
    assert created["result"]["order"]["maker"] == "0xabc"
    assert created["result"]["remainingMakerAmount"] == "1000"
    assert created["result"]["isMakerContract"] is False

    sim.fusion.fill_partially(order_hash, 400)
    assert await frame(ws) == {
        "event": "order_filled_partially",
        "result": {"orderHash": order_hash, "remainingMakerAmount": "400"},
    }
    sim.fusion.balance_change(order_hash, balance=10, allowance=0)
    assert await frame(ws) == {
        "event": "order_balance_or_allowance_change",
        "result": {
            "orderHash": order_hash,
            "remainingMakerAmount": "400",
            "balance": "10",
            "allowance": "0",
        },
    }
    sim.fusion.balance_change(order_hash, balance=400, allowance=400)
    await frame(ws)
    sim.fusion.fill(order_hash)
    assert await frame(ws) == {"event": "order_filled", "result": {"orderHash": order_hash}}

    other = sim.fusion.create_order(1)
    await frame(ws)
    sim.fusion.cancel(other)
    assert await frame(ws) == {"event": "order_cancelled", "result": {"orderHash": other}}
    third = sim.fusion.create_order(1)
    await frame(ws)
    sim.fusion.invalidate(third)
    assert await frame(ws) == {"event": "order_invalid", "result": {"orderHash": third}}


async def test_events_only_reach_their_chain(
    sim: Simulator, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """A connection to chain 137 sees chain 137's events only."""
    async with http.ws_connect(f"{sim.urls.fusion_ws}/v2.0/137", headers=AUTH) as polygon:
        await eventually(lambda: sim.fusion.connection_count(137) == 1)
        sim.fusion.create_order(1)
        on_polygon = sim.fusion.create_order(137)
        assert (await frame(polygon))["result"]["orderHash"] == on_polygon
        assert (await frame(ws))["result"]["orderHash"] != on_polygon


async def test_rest_active_and_status(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """REST lists active orders as the SDK's OrdersApi asks, and reports status by hash."""
    base = f"{sim.urls.fusion_rest}/orders/v2.0/1/order"
    first = sim.fusion.create_order(1, making_amount=1000, taking_amount=10)
    second = sim.fusion.create_order(1)
    sim.fusion.fill_partially(first, 250)
    sim.fusion.cancel(second)

    status, body = await rest(http, f"{base}/active/?page=1&limit=2")
    assert status == 200
    assert [item["orderHash"] for item in body["items"]] == [first]
    assert body["items"][0]["remainingMakerAmount"] == "250"
    assert body["meta"] == {"totalItems": 1, "itemsPerPage": 2, "totalPages": 1, "currentPage": 1}

    status, body = await rest(http, f"{base}/status/{first}?version=2.2")
    assert status == 200
    assert body["orderHash"] == first
    assert body["status"] == "partially-filled"
    assert body["remainingMakerAmount"] == "250"
    assert set(body["order"]) == STRUCT_FIELDS
    assert body["fills"][0]["filledMakerAmount"] == "750"
    assert {"extension", "points", "cancelTx", "createdAt", "auctionStartDate"} <= set(body)

    status, body = await rest(http, f"{base}/status/{second}")
    assert (status, body["status"]) == (200, "cancelled")
    assert body["cancelTx"]
    status, body = await rest(http, f"{base}/status/0x{'0' * 64}-1")
    assert status == 404
    assert body["statusCode"] == 404
    status, _ = await rest(http, f"{base}/active", headers={})
    assert status == 401
    status, _ = await rest(http, f"{base}/active?limit=501")
    assert status == 400


async def test_missed_event_is_visible_over_rest(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """Filling while refused/disconnected misses the event live; REST still shows the fill."""
    async with http.ws_connect(f"{sim.urls.fusion_ws}/v2.0/1", headers=AUTH) as ws:
        await eventually(lambda: sim.fusion.connection_count(1) == 1)
        order_hash = sim.fusion.create_order(1)
        await frame(ws)
        sim.fusion.refuse_connections(True)
        assert sim.fusion.drop_connections() == 1
        msg = await ws.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    await eventually(lambda: sim.fusion.connection_count() == 0)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(f"{sim.urls.fusion_ws}/v2.0/1", headers=AUTH)
    assert info.value.status == 503
    sim.fusion.fill(order_hash)
    assert sim.fusion.events_missed == 1
    sim.fusion.refuse_connections(False)
    async with http.ws_connect(f"{sim.urls.fusion_ws}/v2.0/1", headers=AUTH) as ws:
        _, body = await rest(
            http, f"{sim.urls.fusion_rest}/orders/v2.0/1/order/status/{order_hash}"
        )
        assert body["status"] == "filled"
        await ws.send_str('{"method":"getActiveOrders","param":{"page":1,"limit":100}}')
        assert (await frame(ws))["result"]["items"] == []


async def test_native_pings_answered_and_sent(http: aiohttp.ClientSession) -> None:
    """The server answers native pings and sends its own (heartbeat)."""
    async with Simulator(random_walk=False, heartbeat=0.05) as sim:
        url = f"{sim.urls.fusion_ws}/v2.0/1"
        async with http.ws_connect(url, headers=AUTH, autoping=False) as ws:
            await ws.ping(b"hi")
            msg = await ws.receive(timeout=10)
            if msg.type == aiohttp.WSMsgType.PING:  # the server's heartbeat may come first
                await ws.pong(msg.data)
                msg = await ws.receive(timeout=10)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.PONG, b"hi")
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.PING


async def test_random_orders_flow(http: aiohttp.ClientSession) -> None:
    """random_orders creates and progresses other makers' orders on its own."""
    async with Simulator(random_walk=False, random_orders=True, order_interval=0.01) as sim:
        url = f"{sim.urls.fusion_ws}/v2.0/1"
        async with http.ws_connect(url, headers=AUTH) as ws:
            seen: set[str] = set()
            while len(seen) < 3:
                seen.add((await frame(ws))["event"])
            assert "order_created" in seen


async def test_control_api_scripts_orders(
    sim: Simulator, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """POST /_sim/fusion/orders creates, /{hash}/fill_partially fills, unknown hash is 404."""
    async with http.post(f"{sim.urls.control}/fusion/orders", json={"making_amount": 10}) as resp:
        order_hash = (await resp.json())["order_hash"]
    assert (await frame(ws))["result"]["orderHash"] == order_hash
    url = f"{sim.urls.control}/fusion/orders/{order_hash}/fill_partially"
    async with http.post(url, json={"remaining": 4}) as resp:
        assert resp.status == 200
    assert (await frame(ws))["result"]["remainingMakerAmount"] == "4"
    async with http.post(f"{sim.urls.control}/fusion/orders/0x1/fill") as resp:
        assert resp.status == 404


async def test_send_raw_for_unknown_events(
    sim: Simulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    """send_raw pushes a verbatim frame to one chain's connections."""
    assert sim.fusion.send_raw(b'{"event":"order_new_kind","result":{}}', chain=137) == 0
    assert sim.fusion.send_raw(b'{"event":"order_new_kind","result":{}}', chain=1) == 1
    assert await frame(ws) == {"event": "order_new_kind", "result": {}}


MAKER_ITEM_FIELDS = {  # fusion-sdk OrderFillsByMakerOutput
    "orderHash",
    "status",
    "makerAsset",
    "makerAmount",
    "minTakerAmount",
    "takerAsset",
    "cancelTx",
    "fills",
    "points",
    "auctionStartDate",
    "auctionDuration",
    "initialRateBump",
    "isNativeCurrency",
    "createdAt",
}


async def test_rest_orders_by_maker_pages_newest_first(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """…/order/maker/{address}/ lists the maker's orders of any status, paged as the SDK asks."""
    maker = "0x" + "ab" * 20
    now = time.time()
    old = sim.fusion.create_order(1, maker=maker, making_amount=1000, created_at=now - 60)
    mid = sim.fusion.create_order(1, maker=maker, taking_amount=7, created_at=now - 30)
    new = sim.fusion.create_order(1, maker=maker)
    sim.fusion.create_order(1)  # another maker
    sim.fusion.create_order(137, maker=maker)  # another chain
    sim.fusion.fill_partially(old, 250)
    sim.fusion.fill(old)
    sim.fusion.cancel(mid)
    base = f"{sim.urls.fusion_rest}/orders/v2.0/1/order/maker"

    status, body = await rest(http, f"{base}/{maker}/?limit=2&page=1")
    assert status == 200
    assert [item["orderHash"] for item in body["items"]] == [new, mid]
    assert body["meta"] == {"totalItems": 3, "itemsPerPage": 2, "totalPages": 2, "currentPage": 1}
    assert set(body["items"][0]) == MAKER_ITEM_FIELDS
    assert (body["items"][1]["status"], body["items"][1]["minTakerAmount"]) == ("cancelled", "7")
    assert body["items"][1]["cancelTx"]

    status, body = await rest(http, f"{base}/{maker.upper().replace('0X', '0x')}?page=2&limit=2")
    assert status == 200
    (item,) = body["items"]
    assert item["orderHash"] == old
    assert (item["status"], item["makerAmount"]) == ("filled", "1000")
    assert [fill["filledMakerAmount"] for fill in item["fills"]] == ["750", "250"]
    assert item["createdAt"].endswith("Z")
    assert body["meta"]["currentPage"] == 2

    status, body = await rest(http, f"{base}/{maker}/")  # SDK defaults: page 1, limit 100
    assert (status, body["meta"]["itemsPerPage"], len(body["items"])) == (200, 100, 3)


async def test_rest_orders_by_maker_timestamp_filter(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """timestampFrom / timestampTo (ms) bound createdAt to [from, to)."""
    maker = "0x" + "cd" * 20
    now = time.time()
    hashes = [
        sim.fusion.create_order(1, maker=maker, created_at=now - age) for age in (300, 200, 100)
    ]
    created = [sim.fusion.orders[h].created_ms for h in hashes]
    url = f"{sim.urls.fusion_rest}/orders/v2.0/1/order/maker/{maker}/"

    async def listed(**params: int) -> list[str]:
        status, body = await rest(http, url, params=params)
        assert status == 200
        return [item["orderHash"] for item in body["items"]]

    assert await listed(timestampFrom=created[1]) == [hashes[2], hashes[1]]
    assert await listed(timestampTo=created[1]) == [hashes[0]]
    assert await listed(timestampFrom=created[0], timestampTo=created[2]) == hashes[1::-1]
    assert await listed(timestampFrom=created[2] + 1) == []


async def test_rest_orders_by_maker_auth_validation_and_faults(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """401 without the Bearer key, 400 on a bad address or page, 503 while failing on purpose."""
    maker = "0x" + "ef" * 20
    url = f"{sim.urls.fusion_rest}/orders/v2.0/1/order/maker"
    assert (await rest(http, f"{url}/{maker}/", headers={}))[0] == 401
    assert (await rest(http, f"{url}/{maker}/", headers={"Authorization": "Bearer no"}))[0] == 401
    assert (await rest(http, f"{url}/0xabc/"))[0] == 400
    assert (await rest(http, f"{url}/{maker}/?limit=501"))[0] == 400
    assert (await rest(http, f"{url}/{maker}/?page=0"))[0] == 400
    assert (await rest(http, f"{url}/{maker}/?timestampFrom=soon"))[0] == 400
    sim.fusion.fail_rest(2)
    assert (await rest(http, f"{url}/{maker}/"))[0] == 503
    assert (await rest(http, f"{url}/{maker}/"))[0] == 503
    assert (await rest(http, f"{url}/{maker}/"))[0] == 200
    assert sim.fusion.rest_requests[-1] == f"/fusion/orders/v2.0/1/order/maker/{maker}/"
