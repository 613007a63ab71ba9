"""The ``/_sim`` JSON control API: the scripting methods over HTTP, for another process.

``GET /_sim`` lists every control (method, path, parameters, what it does) as JSON, built from
the same table as the routes, so the listing cannot drift from them; docs/simulator.md shows
it. Every other control is a ``POST`` with a JSON object body (may be empty) whose keys are
the keyword arguments of the method it calls, and answers ``{"ok": true, …}``;
``GET /_sim/stats`` reports counters. Unknown ids answer 404, bad arguments 400, both as
``{"ok": false, "error": …}``. No auth: the simulator is a development tool meant for loopback.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from notifier.simulator.wire import json_response, loads_object

if TYPE_CHECKING:
    from notifier.simulator.server import Simulator

__all__ = ["PREFIX", "Control", "control_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ORDER_ACTIONS = ("fill", "fill_partially", "cancel", "invalidate", "balance_change", "expire")
SOLANA_ACTIONS = ("fill", "cancel", "expire", "repeat")
PREFIX = "/_sim"
JSON_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True, slots=True)
class Control:
    """One control: its route, the function it calls and the line that describes it."""

    method: str
    path: str
    handler: Handler
    description: str
    signature: Callable[..., Any] | None = None  # whose parameters it takes, for the listing

    def describe(self) -> dict[str, Any]:
        """The control as ``GET /_sim`` lists it."""
        return {
            "method": self.method,
            "path": self.path,
            "parameters": _parameters(self.path, self.signature) if self.signature else [],
            "description": self.description,
        }


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

    def solana_action(order_hash: str, action: str, **kwargs: Any) -> str | None:
        if action not in SOLANA_ACTIONS:
            raise ValueError(f"unknown action: {action}")
        answer: str | None = getattr(sim.fusion.solana, action)(order_hash, **kwargs)
        return answer

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
                    "solana_orders": len(sim.fusion.solana.orders),
                    "events_sent": sim.fusion.events_sent,
                    "events_missed": sim.fusion.events_missed,
                },
                "intents": {
                    "intents": len(sim.intents.intents),
                    "requests": {k: len(v) for k, v in sim.intents.hits.items()},
                },
            }
        )

    def post(
        path: str, method: Callable[..., Any], description: str, result: str | None = None,
        signature: Callable[..., Any] | None = None,
    ) -> Control:  # fmt: skip
        return Control("POST", PREFIX + path, call(method, result), description,
                       signature or method)  # fmt: skip

    controls = [
        Control(
            "GET",
            PREFIX + "/stats",
            stats,
            "counters: connections, subscriptions, frames, orders, intents and requests per intent",
        ),
        post(
            "/quotes/set",
            sim.quotes.set_quote,
            "quote a pair (mints, amount in base units) and push it to its subscribers",
        ),
        post(
            "/quotes/drop",
            sim.quotes.drop_connections,
            "abort every quote connection; answers how many were dropped",
            "dropped",
        ),
        post(
            "/quotes/flood",
            flood,
            "push material changes to every subscribed pair at a rate, in the background",
        ),
        post(
            "/quotes/send_times",
            send_times,
            "when each flooded slot's frame was written (clear: true also clears)",
            "send_times",
        ),
        post(
            "/fusion/orders",
            sim.fusion.create_order,
            "create an order on a chain and announce it (order_created)",
            "order_hash",
        ),
        post(
            "/fusion/orders/{order_hash}/{action}",
            order_action,
            f"act on an order: {', '.join(ORDER_ACTIONS)}, with the action's own arguments "
            "(fill_partially: remaining; invalidate: status; balance_change: balance, "
            "allowance)",
        ),
        post(
            "/fusion/solana/orders",
            sim.fusion.solana.create_order,
            "create a Solana (chain 501) order and announce it (create); expiration_millis: "
            "expirationTime in milliseconds",
            "order_hash",
        ),
        post(
            "/fusion/solana/orders/{order_hash}/{action}",
            solana_action,
            f"act on a Solana order: {', '.join(SOLANA_ACTIONS)} (fill: amount, default what "
            "remains, and resolver; expire: past its expirationTime, no event; repeat: its last "
            "event again as commitment finalized); answers the transaction signature",
            "tx",
        ),
        post(
            "/fusion/fail_rest",
            sim.fusion.fail_rest,
            "answer the next count Fusion REST requests (EVM or Solana) with 503",
        ),
        post(
            "/fusion/drop",
            fusion_drop,
            "drop the order WebSockets of one chain (501: Solana) or all (graceful: close 1012)",
            "dropped",
        ),
        post(
            "/fusion/refuse",
            sim.fusion.refuse_connections,
            "refuse new order WebSockets while refuse is true",
        ),
        post(
            "/intents",
            add_intent,
            "add an intent, optionally with a script of [status, seconds] steps",
            "intent_id",
            signature=sim.intents.add_intent,
        ),
        post(
            "/intents/fail_next",
            sim.intents.fail_next,
            "answer the next n status requests (of one intent or any) with an HTTP error",
        ),
        post(
            "/intents/rate_limit_next",
            sim.intents.rate_limit_next,
            "answer the next n status requests with 429 and Retry-After",
        ),
        post("/intents/{intent_id}/status", set_status, "set an intent's status now"),
        post(
            "/intents/{intent_id}/advance",
            sim.intents.advance,
            "move an intent to its script's next status; answers it",
            "status",
        ),
    ]

    async def index(request: web.Request) -> web.StreamResponse:
        return json_response(
            {
                "ok": True,
                "description": "notifier simulator control API; POST bodies are JSON objects",
                "controls": [c.describe() for c in controls],
            }
        )

    return [
        web.get(PREFIX, index),
        web.get(PREFIX + "/", index),
        *(web.route(c.method, c.path, c.handler) for c in controls),
    ]


def _parameters(path: str, function: Callable[..., Any]) -> list[dict[str, Any]]:
    """``function``'s keyword parameters as the listing shows them: in the path or the body."""
    found = []
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        item: dict[str, Any] = {
            "name": param.name,
            "in": "path" if f"{{{param.name}}}" in path else "body",
            "required": param.default is param.empty,
        }
        if param.default is not param.empty and isinstance(param.default, JSON_SCALARS):
            item["default"] = param.default
        found.append(item)
    return found


async def _body(request: web.Request) -> dict[str, Any] | None:
    raw = await request.read()
    if not raw.strip():
        return {}
    return loads_object(raw)
