"""The simulated Solana Fusion (chain 501) speaks UPSTREAMS §1.7 over real loopback sockets:
the solana-fusion-sdk's event envelopes, ActiveOrder pages and OrderStatusDTO."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson

from notifier.simulator import SIM_KEYS, Simulator
from notifier.tokens import is_base58_address

AUTH = {"Authorization": f"Bearer {SIM_KEYS.fusion}"}
MAKER = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
TX_FIELDS = {
    "transactionSignature",
    "slotNumber",
    "blockTime",
    "action",
    "commitment",
    "orderHash",
    "maker",
    "filledAuctionTakerAmount",
    "filledMakerAmount",
}
ORDER_FIELDS = {  # OrderDTO
    "id",
    "fee",
    "dstMint",
    "srcMint",
    "receiver",
    "srcAmount",
    "minDstAmount",
    "expirationTime",
    "srcAssetIsNative",
    "dstAssetIsNative",
    "dutchAuctionData",
    "estimatedDstAmount",
    "cancellationAuctionDuration",
}


async def frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = orjson.loads(msg.data)
    return data


async def rest(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url, headers=AUTH) as response:
        return response.status, await response.json()


async def test_create_fill_cancel_frames_follow_the_sdk_types(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """``{event, result}`` with the payload fields of types.ts; ``repeat`` sends a duplicate."""
    async with http.ws_connect(f"{sim.urls.fusion_ws}/v1.0/501", headers=AUTH) as ws:
        solana = sim.fusion.solana
        order = solana.create_order(maker=MAKER, src_amount=1000)
        created = await frame(ws)
        assert created["event"] == "create"
        assert set(created["result"]) == TX_FIELDS | {"order"}
        assert set(created["result"]["order"]) == ORDER_FIELDS
        assert created["result"]["orderHash"] == order
        assert is_base58_address(order)
        fill_tx = solana.fill(order, 400, resolver="R")
        filled = await frame(ws)
        assert filled["event"] == "fill"
        assert set(filled["result"]) == TX_FIELDS | {"resolver"}
        assert filled["result"]["transactionSignature"] == fill_tx
        assert (filled["result"]["filledMakerAmount"], filled["result"]["resolver"]) == ("400", "R")
        solana.repeat(order)
        again = await frame(ws)
        assert again["result"] == {**filled["result"], "commitment": "finalized"}
        solana.cancel(order)
        cancelled = await frame(ws)
        assert cancelled["event"] == "cancel"
        assert set(cancelled["result"]) == TX_FIELDS
        await ws.send_json({"method": "ping"})  # the SDK pings natively; the RPC still answers
        assert await frame(ws) == {"method": "ping", "result": "pong"}
        await ws.ping()  # a native ping (what the Solana SDK sends), answered by autoping


async def test_only_v1_0_serves_chain_501_and_the_key_is_required(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """``/v2.0/501`` is not Solana's; a missing Bearer key is 401 on WS and REST."""
    evm_path = f"{sim.urls.fusion_ws.replace('ws', 'http', 1)}/v2.0/501"
    async with http.get(evm_path, headers=AUTH) as response:
        assert response.status == 404
    async with http.get(evm_path.replace("v2.0", "v1.0")) as response:
        assert response.status == 401
    async with http.get(f"{sim.urls.fusion_rest}/orders/v1.0/501/order/active") as response:
        assert response.status == 401


async def test_active_orders_pages_and_statuses(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """Active lists in-progress, unexpired orders by page; status is 0 / 200 / 301 with fills."""
    solana = sim.fusion.solana
    hashes = [solana.create_order(maker=MAKER, src_amount=100) for _ in range(5)]
    solana.fill(hashes[0], 40)
    solana.fill(hashes[1])
    solana.cancel(hashes[2])
    solana.expire(hashes[3])
    base = f"{sim.urls.fusion_rest}/orders/v1.0/501/order"
    status, page = await rest(http, f"{base}/active?limit=1&page=2")
    assert status == 200
    assert page["meta"] == {"totalItems": 2, "itemsPerPage": 1, "totalPages": 2, "currentPage": 2}
    assert set(page["items"][0]) == {
        "orderHash", "order", "txSignature", "maker", "remainingMakerAmount",
    }  # fmt: skip
    _, first = await rest(http, f"{base}/active?limit=1&page=1")
    assert first["items"][0]["remainingMakerAmount"] == "60"
    statuses = [(await rest(http, f"{base}/status/{h}"))[1] for h in hashes[:4]]
    assert [s["status"] for s in statuses] == [0, 200, 301, 0]
    assert statuses[0]["fills"][0]["filledMakerAmount"] == "40"
    assert set(statuses[0]["fills"][0]) == {
        "txSignature", "filledMakerAmount", "filledAuctionTakerAmount",
    }  # fmt: skip
    assert "cancelTx" in statuses[2]
    assert "cancelTx" not in statuses[0]
    assert statuses[3]["expirationTime"] < time.time()  # expired: still 0, not listed
    assert (await rest(http, f"{base}/status/nope"))[0] == 404
    assert (await rest(http, f"{base}/active?limit=501"))[0] == 400
    sim.fusion.fail_rest(1)
    assert (await rest(http, f"{base}/active"))[0] == 503
    assert sim.fusion.rest_requests[-1].startswith("/fusion/orders/v1.0/501/order/active")


async def test_get_active_orders_rpc_and_expiration_in_milliseconds(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """The RPC pages Solana's ActiveOrder items; ``expiration_millis`` renders ms."""
    order = sim.fusion.solana.create_order(maker=MAKER, expiration_millis=True)
    async with http.ws_connect(f"{sim.urls.fusion_ws}/v1.0/501", headers=AUTH) as ws:
        await ws.send_json({"method": "getActiveOrders", "param": {"limit": 10, "page": 1}})
        answer = await frame(ws)
    assert answer["method"] == "getActiveOrders"
    (item,) = answer["result"]["items"]
    assert item["orderHash"] == order
    assert item["order"]["expirationTime"] > 10**12


async def test_the_control_api_scripts_solana_orders(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """``/_sim/fusion/solana/…`` creates and acts on orders; unknown actions are 400."""
    control = sim.urls.control
    async with http.post(f"{control}/fusion/solana/orders", json={"maker": MAKER}) as response:
        order = (await response.json())["order_hash"]
    async with http.post(
        f"{control}/fusion/solana/orders/{order}/fill", json={"amount": 1}
    ) as response:
        answer = await response.json()
    assert answer["tx"] == sim.fusion.solana.orders[order].fills[0]["txSignature"]
    async with http.post(f"{control}/fusion/solana/orders/{order}/burn", json={}) as response:
        assert response.status == 400
    async with http.post(f"{control}/fusion/solana/orders/nope/cancel", json={}) as response:
        assert response.status == 404
