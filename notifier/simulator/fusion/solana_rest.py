"""The Solana orders REST API under ``/fusion/orders/v1.0/501/order/…`` (solana-fusion-sdk
``OrdersApi``: ``order/active?limit=&page=`` and ``order/status/{orderHash}``), behind the
same gate as the EVM endpoints: one Bearer key, one count of scripted ``503`` faults, one
request log. Its routes go before the EVM ones, whose ``{chain}`` would match 501."""

from __future__ import annotations

from aiohttp import web

from notifier.simulator.fusion.auth import RestGate, error_body
from notifier.simulator.fusion.orders import paginate
from notifier.simulator.fusion.rest import int_or_none
from notifier.simulator.fusion.solana import SolanaBook, SolanaOrder
from notifier.simulator.wire import json_response

__all__ = ["SOLANA_ORDERS", "SolanaRest"]

SOLANA_ORDERS = "/fusion/orders/v1.0/501/order"


class SolanaRest:
    """``order/active`` and ``order/status/{hash}`` over ``book``, through ``gate``."""

    def __init__(self, *, gate: RestGate, book: SolanaBook) -> None:
        self.gate = gate
        self.book = book

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(SOLANA_ORDERS + "/active", self.handle_active),
            web.get(SOLANA_ORDERS + "/active/", self.handle_active),
            web.get(SOLANA_ORDERS + "/status/{order_hash}", self.handle_status),
        ]

    async def handle_active(self, request: web.Request) -> web.Response:
        """``GET …/order/active?limit=&page=``: one page of in-progress, unexpired orders."""
        denied = self.gate.check(request)
        if denied is not None:
            return denied
        try:
            page = int_or_none(request.query.get("page"))
            limit = int_or_none(request.query.get("limit"))
            body = paginate(self.book.active_orders(), page, limit, SolanaOrder.active_item)
        except ValueError as exc:
            return json_response(error_body(400, "Bad Request", str(exc)), 400)
        return json_response(body)

    async def handle_status(self, request: web.Request) -> web.Response:
        """``GET …/order/status/{orderHash}``: the ``OrderStatusDTO``, 404 when unknown."""
        denied = self.gate.check(request)
        if denied is not None:
            return denied
        order = self.book.orders.get(request.match_info["order_hash"])
        if order is None:
            return json_response(error_body(404, "Not Found", "order not found"), 404)
        return json_response(order.status_body())
