"""The ``/_sim/…`` JSON control API: the scripting methods over HTTP, for another process.

Every endpoint is a ``POST`` with a JSON object body (may be empty) whose keys are the keyword
arguments of the method it calls, and answers ``{"ok": true, …}``; ``GET /_sim/stats`` reports
counters. Unknown ids answer 404, bad arguments 400, both as ``{"ok": false, "error": …}``.
No auth: the simulator is a development tool meant for loopback.

| endpoint | calls |
|---|---|
| ``/_sim/quotes/set`` | ``quotes.set_quote(in_mint, out_mint, amount, amount_out, …)`` |
| ``/_sim/quotes/drop`` | ``quotes.drop_connections()`` |
| ``/_sim/quotes/flood`` | ``quotes.flood(rate_per_s, duration_s)`` in the background |
| ``/_sim/quotes/send_times`` | ``quotes.send_times()`` (``clear: true`` also clears) |
| ``/_sim/fusion/orders`` | ``fusion.create_order(chain, maker, …)`` → ``order_hash`` |
| ``/_sim/fusion/orders/{hash}/{action}`` | ``fusion.{action}(hash, …)``: ``fill``, ``cancel``… |
| ``/_sim/fusion/drop`` | ``fusion.drop_connections(chain)`` |
| ``/_sim/fusion/refuse`` | ``fusion.refuse_connections(refuse)`` |
| ``/_sim/intents`` | ``intents.add_intent(intent_id, status, script, …)`` → ``intent_id`` |
| ``/_sim/intents/{id}/status`` | ``intents.set_status(id, status)`` |
| ``/_sim/intents/{id}/advance`` | ``intents.advance(id)`` |
| ``/_sim/intents/fail_next`` | ``intents.fail_next(n, status, intent_id)`` |
| ``/_sim/intents/rate_limit_next`` | ``intents.rate_limit_next(n, retry_after, intent_id)`` |
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from notifier.simulator.wire import json_response, loads_object

if TYPE_CHECKING:
    from notifier.simulator.server import Simulator

__all__ = ["control_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ORDER_ACTIONS = ("fill", "fill_partially", "cancel", "invalidate", "balance_change", "expire")


def control_routes(sim: Simulator) -> list[web.RouteDef]:
    """The ``/_sim`` routes of ``sim``."""
    tasks: set[asyncio.Task[Any]] = set()

    def call(method: Callable[..., Any], result: str | None = None) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            body = await _body(request)
            if body is None:
                return json_response({"ok": False, "error": "body must be a JSON object"}, 400)
            kwargs = {**body, **dict(request.match_info)}
            try:
                value = method(**kwargs)
            except KeyError as exc:
                return json_response({"ok": False, "error": f"unknown id: {exc}"}, 404)
            except (TypeError, ValueError) as exc:
                return json_response({"ok": False, "error": str(exc)}, 400)
            answer: dict[str, Any] = {"ok": True}
            if result is not None:
                answer[result] = value
            return json_response(answer)

        return handler

    def order_action(order_hash: str, action: str, **kwargs: Any) -> None:
        if action not in ORDER_ACTIONS:
            raise ValueError(f"unknown action: {action}")
        getattr(sim.fusion, action)(order_hash, **kwargs)

    def flood(rate_per_s: float, duration_s: float) -> None:
        task = asyncio.create_task(sim.quotes.flood(float(rate_per_s), float(duration_s)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def send_times(clear: bool = False) -> dict[str, float]:
        times = {str(slot): at for slot, at in sim.quotes.send_times().items()}
        if clear:
            sim.quotes.clear_send_times()
        return times

    def add_intent(script: list[list[Any]] | None = None, **kwargs: Any) -> str:
        steps = [(str(status), float(delay)) for status, delay in script or []]
        return sim.intents.add_intent(script=steps, **kwargs)

    def set_status(intent_id: str, status: str) -> None:
        sim.intents.set_status(intent_id, status)

    def fusion_drop(chain: int | None = None, graceful: bool = False) -> int:
        return sim.fusion.drop_connections(chain, graceful=graceful)

    async def stats(request: web.Request) -> web.StreamResponse:
        return json_response(
            {
                "quotes": {
                    "connections": sim.quotes.connection_count(),
                    "subscriptions": sim.quotes.subscription_count(),
                    "frames_sent": sim.quotes.frames_sent,
                    "quotes_sent": sim.quotes.quotes_sent,
                    "dropped_slow": sim.quotes.dropped_slow,
                },
                "fusion": {
                    "connections": sim.fusion.connection_count(),
                    "orders": len(sim.fusion.orders),
                    "events_sent": sim.fusion.events_sent,
                    "events_missed": sim.fusion.events_missed,
                },
                "intents": {
                    "intents": len(sim.intents.intents),
                    "requests": {k: len(v) for k, v in sim.intents.hits.items()},
                },
            }
        )

    return [
        web.get("/_sim/stats", stats),
        web.post("/_sim/quotes/set", call(sim.quotes.set_quote)),
        web.post("/_sim/quotes/drop", call(sim.quotes.drop_connections, "dropped")),
        web.post("/_sim/quotes/flood", call(flood)),
        web.post("/_sim/quotes/send_times", call(send_times, "send_times")),
        web.post("/_sim/fusion/orders", call(sim.fusion.create_order, "order_hash")),
        web.post("/_sim/fusion/orders/{order_hash}/{action}", call(order_action)),
        web.post("/_sim/fusion/drop", call(fusion_drop, "dropped")),
        web.post("/_sim/fusion/refuse", call(sim.fusion.refuse_connections)),
        web.post("/_sim/intents", call(add_intent, "intent_id")),
        web.post("/_sim/intents/fail_next", call(sim.intents.fail_next)),
        web.post("/_sim/intents/rate_limit_next", call(sim.intents.rate_limit_next)),
        web.post("/_sim/intents/{intent_id}/status", call(set_status)),
        web.post("/_sim/intents/{intent_id}/advance", call(sim.intents.advance, "status")),
    ]


async def _body(request: web.Request) -> dict[str, Any] | None:
    raw = await request.read()
    if not raw.strip():
        return {}
    return loads_object(raw)
