"""The Fusion order-event WebSocket ``/fusion/ws/{version}/{chain}`` and its connection faults.

After the Bearer check, the connection receives ``{"event", "result"}`` frames for every order
event of its chain and answers the RPCs ``ping``, ``getAllowedMethods`` and
``getActiveOrders``. An event with no connection of its chain is missed live (counted in
``events_missed``), and only REST shows it. Solana (chain 501) is served here too, only under
``v1.0`` (its SDK's only version); what its pages hold comes from ``active``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from notifier.simulator.fusion.auth import deny, error_body
from notifier.simulator.fusion.solana import SOLANA_CHAIN
from notifier.simulator.wire import Peer, json_response, loads_object

__all__ = ["ALLOWED_METHODS", "ActivePage", "OrderSocket"]

ALLOWED_METHODS = ["ping", "getAllowedMethods", "getActiveOrders"]
SOLANA_VERSION = "v1.0"

# (chain, page, limit) -> one page of active orders; ValueError on bad pagination
ActivePage = Callable[[int, Any, Any], dict[str, Any]]


class OrderSocket:
    """The chains' live connections: events pushed to them, RPCs answered, faults scripted."""

    def __init__(
        self, *, key: str, active: ActivePage, heartbeat: float | None, queue_size: int
    ) -> None:
        self.key = key
        self.active = active
        self.heartbeat = heartbeat
        self.queue_size = queue_size
        self.refusing = False
        self.events_sent = 0
        self.events_missed = 0
        self.rpc_calls: list[str] = []
        self.peers: dict[int, set[Peer]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def route(self) -> web.RouteDef:
        """The WS route at its real path (any ``vX.Y`` version segment)."""
        return web.get("/fusion/ws/{version}/{chain:[0-9]+}", self.handle)

    async def stop(self) -> None:
        """Stop pending graceful closes and drop every connection."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.drop()

    def push(self, chain: int, event: str, result: dict[str, Any]) -> None:
        """Send the event to the connections of ``chain``."""
        peers = self.peers.get(chain, set())
        if not peers:
            self.events_missed += 1
        for peer in list(peers):
            if peer.send_json({"event": event, "result": result}):
                self.events_sent += 1

    # -- faults ---------------------------------------------------------------------------------

    def drop(self, chain: int | None = None, *, graceful: bool = False) -> int:
        """Drop the connections of ``chain`` (default all): abruptly, or with a 1012 close."""
        peers = [peer for c, group in self.peers.items() if chain in (None, c) for peer in group]
        for peer in peers:
            if graceful:
                task = asyncio.create_task(peer.close(1012, b"service restart"))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                peer.abort()
        return len(peers)

    def send_raw(self, data: bytes, chain: int | None = None) -> int:
        """Send ``data`` as is, as one text frame, to the connections of ``chain`` (default all)."""
        peers = [p for c, group in self.peers.items() if chain in (None, c) for p in group]
        for peer in peers:
            peer.send(data)
        return len(peers)

    def connection_count(self, chain: int | None = None) -> int:
        """Open connections of ``chain`` (default all)."""
        return sum(len(group) for c, group in self.peers.items() if chain in (None, c))

    # -- the endpoint ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /fusion/ws/{version}/{chain}``: Bearer auth, then events and RPC answers."""
        denied = deny(request, self.key)
        if denied is not None:
            return denied
        if self.refusing:
            return json_response(error_body(503, "Service Unavailable"), 503)
        chain = int(request.match_info["chain"])
        if chain == SOLANA_CHAIN and request.match_info["version"] != SOLANA_VERSION:
            return json_response(error_body(404, "Not Found", "Solana is served under v1.0"), 404)
        ws = web.WebSocketResponse(autoping=True, heartbeat=self.heartbeat)
        await ws.prepare(request)
        peer = Peer(ws, request.transport, self.queue_size)
        self.peers.setdefault(chain, set()).add(peer)
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_rpc(peer, chain, msg.data)
        finally:
            self.peers[chain].discard(peer)
            await peer.finish()
        return ws

    def _on_rpc(self, peer: Peer, chain: int, data: str | bytes) -> None:
        message = loads_object(data)
        method = message.get("method") if message is not None else None
        if message is None or not isinstance(method, str):
            return  # undocumented upstream; the simulator ignores frames it cannot parse
        self.rpc_calls.append(method)
        result: Any
        if method == "ping":
            result = "pong"
        elif method == "getAllowedMethods":
            result = list(ALLOWED_METHODS)
        elif method == "getActiveOrders":
            param = message.get("param")
            param = param if isinstance(param, dict) else {}
            try:
                result = self.active(chain, param.get("page"), param.get("limit"))
            except ValueError as exc:
                # Server-side validation is undocumented; answer the only documented WS error
                # shape, `result.error` (UPSTREAMS §1.6).
                result = {"error": str(exc)}
        else:
            result = {"error": f"unknown method: {method}"}
        peer.send_json({"method": method, "result": result})
