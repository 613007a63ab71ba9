"""The simulator's control API describes itself: ``GET`` on the advertised control URL lists
every control, and docs/simulator.md documents each one."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from notifier.simulator import Simulator

DOC = Path(__file__).resolve().parent.parent / "docs" / "simulator.md"


async def test_the_advertised_control_url_lists_every_control(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """``GET /_sim`` answers 200 with each route's method, path, parameters and description."""
    async with http.get(sim.urls.control) as response:
        assert response.status == 200
        listing = await response.json()
    controls = {(c["method"], c["path"]): c for c in listing["controls"]}
    routed = {
        (route.method, route.resource.canonical)
        for route in sim.app().router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/_sim/")
        and route.resource.canonical != "/_sim/"  # the listing itself
        and route.method != "HEAD"
    }
    assert set(controls) == routed
    assert all(c["description"] for c in controls.values())
    quote = controls["POST", "/_sim/quotes/set"]["parameters"]
    assert quote[:2] == [
        {"name": "in_mint", "in": "body", "required": True},
        {"name": "out_mint", "in": "body", "required": True},
    ]
    assert {"name": "hops", "in": "body", "required": False, "default": 1} in quote
    status = controls["POST", "/_sim/intents/{intent_id}/status"]["parameters"]
    assert [(p["name"], p["in"]) for p in status] == [("intent_id", "path"), ("status", "body")]


async def test_a_control_works_as_listed(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """The listing's path for adding an intent, posted with its parameters, adds one."""
    async with http.post(
        f"{sim.urls.intents}/_sim/intents", json={"intent_id": "listed-1", "status": "Created"}
    ) as response:
        assert (response.status, await response.json()) == (
            200,
            {"ok": True, "intent_id": "listed-1"},
        )
    assert "listed-1" in sim.intents.intents


async def test_docs_document_every_control(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """docs/simulator.md has a row for each control the listing shows."""
    async with http.get(sim.urls.control) as response:
        listing = await response.json()
    doc = DOC.read_text(encoding="utf-8")
    missing = [
        f"{c['method']} {c['path']}"
        for c in listing["controls"]
        if f"`{c['method']} {c['path']}`" not in doc
    ]
    assert missing == []
