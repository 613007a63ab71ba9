"""The Fusion orders REST API under ``/fusion/orders/{version}/{chain}/order/…``.

It follows the fusion-sdk ``OrdersApi`` (``{url}/v2.0/{chain}/order/active/?page=&limit=``,
``{url}/v2.0/{chain}/order/status/{hash}`` and ``{url}/v2.0/{chain}/order/maker/{address}/
?limit=&page=`` with ``url = …/fusion/orders``), behind the WebSocket's Bearer key.

Orders by maker, as verified in ``1inch/fusion-sdk`` (``orders.api.ts`` ``getOrdersByMaker``,
``orders.request.ts``, ``types.ts`` ``OrderFillsByMakerOutput``, ``order-api.spec.ts``): the SDK
sends only ``limit`` and ``page`` (1..500, >= 1) and gets ``{items, meta}`` whose items are the
flat ``OrderFillsByMakerOutput`` (no ``order`` struct), newest first in the spec fixture.
``timestampFrom`` / ``timestampTo`` (milliseconds, interval ``[from, to)`` on ``createdAt``) are not
in the EVM SDK: they are taken from the 1inch portal's sibling endpoints (Fusion+
``/fusion-plus/orders/v1.2/order/maker/{address}``, orderbook history) and the cross-chain SDK's
``OrdersByMakerParams``, so here they are an inference. A malformed address is answered ``400``
(the SDK only validates client-side; the server's answer is undocumented).
"""

from __future__ import annotations

import re

from aiohttp import web

from notifier.simulator.fusion.auth import RestGate, error_body
from notifier.simulator.fusion.book import OrderBook
from notifier.simulator.fusion.orders import Order, paginate
from notifier.simulator.wire import json_response

__all__ = ["OrdersRest", "int_or_none"]

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class OrdersRest(RestGate):
    """The REST endpoints over ``book``, with the scripted ``503`` faults of ``failures``."""

    def __init__(self, *, key: str, book: OrderBook) -> None:
        super().__init__(key)
        self.book = book

    def routes(self) -> list[web.RouteDef]:
        """The REST routes at their real paths (any ``vX.Y`` version segment)."""
        orders = "/fusion/orders/{version}/{chain:[0-9]+}/order"
        return [
            web.get(orders + "/active", self.handle_active),
            web.get(orders + "/active/", self.handle_active),
            web.get(orders + "/status/{order_hash}", self.handle_status),
            web.get(orders + "/maker/{address}", self.handle_by_maker),
            web.get(orders + "/maker/{address}/", self.handle_by_maker),
        ]

    async def handle_active(self, request: web.Request) -> web.Response:
        """``GET …/order/active/?page=&limit=``: one page of active orders."""
        denied = self.check(request)
        if denied is not None:
            return denied
        try:
            page = int_or_none(request.query.get("page"))
            limit = int_or_none(request.query.get("limit"))
            orders = self.book.active_orders(int(request.match_info["chain"]))
            body = paginate(orders, page, limit, Order.active_item)
        except ValueError as exc:
            return json_response(error_body(400, "Bad Request", str(exc)), 400)
        return json_response(body)

    async def handle_by_maker(self, request: web.Request) -> web.Response:
        """``GET …/order/maker/{address}/?limit=&page=&timestampFrom=&timestampTo=``.

        One page of the maker's orders (any status) as ``OrderFillsByMakerOutput``, newest
        first; the timestamps (ms) bound ``createdAt`` to ``[timestampFrom, timestampTo)``.
        """
        denied = self.check(request)
        if denied is not None:
            return denied
        address = request.match_info["address"]
        if not _ADDRESS.fullmatch(address):
            body = error_body(400, "Bad Request", f"{address} is invalid address")
            return json_response(body, 400)
        query = request.query
        try:
            orders = self.book.orders_by_maker(
                int(request.match_info["chain"]),
                address,
                int_or_none(query.get("timestampFrom")),
                int_or_none(query.get("timestampTo")),
            )
            page = int_or_none(query.get("page"))
            limit = int_or_none(query.get("limit"))
            body = paginate(orders, page, limit, Order.maker_item)
        except ValueError as exc:
            return json_response(error_body(400, "Bad Request", str(exc)), 400)
        return json_response(body)

    async def handle_status(self, request: web.Request) -> web.Response:
        """``GET …/order/status/{orderHash}``: the order's status, 404 when unknown."""
        denied = self.check(request)
        if denied is not None:
            return denied
        order = self.book.orders.get(request.match_info["order_hash"])
        if order is None or order.chain != int(request.match_info["chain"]):
            return json_response(error_body(404, "Not Found", "order not found"), 404)
        return json_response(order.status_body())


def int_or_none(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    return int(raw)
