"""The simulated Changelly intent-status endpoint speaks UPSTREAMS §3 (real HTTP on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from notifier.simulator import SIM_KEYS, Simulator
from tests.receivers import wait_until

AUTH = {"X-Api-Key": SIM_KEYS.intents}
FLAT_FIELDS = {
    "intent_id",
    "status",
    "from_amount_lots",
    "from_network_id",
    "from_token",
    "from_token_id",
    "to_network_id",
    "to_token",
    "to_token_id",
    "to_min_amount_lots",
    "to_max_amount_lots",
    "swap_metadata",
}
METADATA_FIELDS = {
    "id",
    "proxy_address",
    "user_deposit_tx",
    "fulfill_tx",
    "swap_tx",
    "created_at",
    "user_deposited_at",
    "fulfilled_at",
    "swapped_at",
    "refunded_at",
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(random_walk=False) as simulator:
        yield simulator


async def get(
    http: aiohttp.ClientSession, sim: Simulator, intent_id: str, headers: dict[str, str] = AUTH
) -> tuple[int, Any, dict[str, str]]:
    async with http.get(f"{sim.urls.intents}/v1/intents/{intent_id}", headers=headers) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "wrong"}])
async def test_api_key_required(
    sim: Simulator, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    """Without the right X-Api-Key the answer is 401 with the {code,type,message} body."""
    intent_id = sim.intents.add_intent()
    status, body, _ = await get(http, sim, intent_id, headers)
    assert status == 401
    assert set(body) == {"code", "type", "message"}
    assert body["code"] == 401


async def test_flat_shape(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """An intent answers the flat §3.2 shape with string lots and int ids."""
    intent_id = sim.intents.add_intent(created_at=1_768_478_400.0)
    status, body, _ = await get(http, sim, intent_id)
    assert status == 200
    assert set(body) == FLAT_FIELDS
    assert set(body["swap_metadata"]) == METADATA_FIELDS
    assert (body["intent_id"], body["status"]) == (intent_id, "Created")
    assert isinstance(body["from_amount_lots"], str)
    assert isinstance(body["to_network_id"], int)
    assert body["swap_metadata"]["created_at"] == "2026-01-15T12:00:00Z"
    assert body["swap_metadata"]["fulfilled_at"] is None


async def test_nested_shape(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """nested=True answers the §3.2 alternative shape with decimal-string amounts."""
    intent_id = sim.intents.add_intent(nested=True, fields={"from_amount_lots": "1500000"})
    _, body, _ = await get(http, sim, intent_id)
    assert set(body) == {"intent_id", "status", "from", "to"}
    assert body["from"]["amount"] == "1.5"
    assert {"address", "tx", "tx_at", "network_id", "token_id", "contract_address"} <= set(
        body["from"]
    )
    assert {"min_amount", "max_amount", "decimals"} <= set(body["to"])


async def test_unknown_intent_is_404(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """An unknown id answers 404 {code: 404, type: not_found, message}."""
    status, body, _ = await get(http, sim, "no-such-intent")
    assert status == 404
    assert body["code"] == 404
    assert body["type"] == "not_found"
    assert isinstance(body["message"], str)


async def test_script_advances_and_fills_metadata(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """A script moves the status on its own and fills swap_metadata as it goes."""
    script = [("Approved", 0.02), ("Verified", 0.02), ("Deposited", 0.02), ("Finished", 0.02)]
    intent_id = sim.intents.add_intent(script=script)
    await wait_until(lambda: sim.intents.intents[intent_id].status == "Finished")
    _, body, _ = await get(http, sim, intent_id)
    assert body["status"] == "Finished"
    meta = body["swap_metadata"]
    assert meta["user_deposited_at"]
    assert meta["fulfilled_at"]
    assert meta["user_deposit_tx"].startswith("0x")
    assert meta["refunded_at"] is None
    statuses = [status for status, _ in sim.intents.intents[intent_id].history]
    assert statuses == ["Created", "Approved", "Verified", "Deposited", "Finished"]


async def test_set_status_and_advance(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """set_status moves an intent at once; advance applies the next scripted step now."""
    intent_id = sim.intents.add_intent(script=[("Approved", 3600.0), ("Failed", 3600.0)])
    assert sim.intents.advance(intent_id) == "Approved"
    assert (await get(http, sim, intent_id))[1]["status"] == "Approved"
    sim.intents.set_status(intent_id, "Refunded")
    _, body, _ = await get(http, sim, intent_id)
    assert body["status"] == "Refunded"
    assert body["swap_metadata"]["refunded_at"]


async def test_fail_next(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """fail_next answers the given status n times, then normally again."""
    intent_id = sim.intents.add_intent()
    sim.intents.fail_next(2, status=503)
    assert (await get(http, sim, intent_id))[0] == 503
    status, body, _ = await get(http, sim, intent_id)
    assert (status, body["code"]) == (503, 503)
    assert (await get(http, sim, intent_id))[0] == 200


async def test_rate_limit_with_retry_after_and_hits(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """rate_limit_next answers 429 with Retry-After; every request is logged with its time."""
    intent_id = sim.intents.add_intent()
    sim.intents.rate_limit_next(1, retry_after=7, intent_id=intent_id)
    other = sim.intents.add_intent()
    assert (await get(http, sim, other))[0] == 200  # the fault is scoped to intent_id
    status, body, headers = await get(http, sim, intent_id)
    assert status == 429
    assert headers["Retry-After"] == "7"
    assert body["code"] == 429
    assert (await get(http, sim, intent_id))[0] == 200
    hits = sim.intents.hits[intent_id]
    assert [hit.status for hit in hits] == [429, 200]
    assert hits[0].at <= hits[1].at
    assert sim.intents.request_count(intent_id) == 2


async def test_control_api_adds_and_moves_intents(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """POST /_sim/intents adds an intent; /{id}/status and /rate_limit_next script it."""
    body = {"intent_id": "abc", "script": [["Approved", 3600]]}
    async with http.post(f"{sim.urls.control}/intents", json=body) as resp:
        assert await resp.json() == {"ok": True, "intent_id": "abc"}
    async with http.post(f"{sim.urls.control}/intents/abc/advance") as resp:
        assert await resp.json() == {"ok": True, "status": "Approved"}
    async with http.post(f"{sim.urls.control}/intents/abc/status", json={"status": "Bad"}) as resp:
        assert resp.status == 400
    async with http.post(f"{sim.urls.control}/intents/abc/status", json={"status": "Expired"}):
        pass
    async with http.post(f"{sim.urls.control}/intents/rate_limit_next", json={"n": 1}):
        pass
    assert (await get(http, sim, "abc"))[0] == 429
    assert (await get(http, sim, "abc"))[1]["status"] == "Expired"
