"""Simulated 1inch Fusion: the order-event websocket and the orders REST API (UPSTREAMS §1).

WS ``/fusion/ws/{version}/{chain}`` with ``Authorization: Bearer <key>`` pushes
``{"event", "result"}`` frames for every order event of the chain and answers the RPCs ``ping``,
``getAllowedMethods`` and ``getActiveOrders``. REST follows the fusion-sdk ``OrdersApi``
(``{url}/v2.0/{chain}/order/active/?page=&limit=``, ``{url}/v2.0/{chain}/order/status/{hash}`` and
``{url}/v2.0/{chain}/order/maker/{address}/?limit=&page=`` with ``url = …/fusion/orders``), all
behind the same Bearer key. Scripting methods (`FusionApi.create_order`, `fill`, …) change
the REST state and push the event to the chain's live connections; an event with no connection
is missed live, and only REST shows it, which is what reconciliation after a reconnect must catch.

Beyond the SDK's ``OrderStatusResponse`` type, status answers also carry ``orderHash`` and
``remainingMakerAmount`` (simulator extras; a client should derive the remaining amount from
``order.makingAmount`` minus the ``fills`` when they are absent).

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

import asyncio
import contextlib
import math
import random
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from notifier.simulator.wire import Peer, iso, json_response, loads_object

__all__ = ["ACTIVE_STATUSES", "ORDER_STATUSES", "FusionApi", "Order"]

ORDER_STATUSES = frozenset(
    {
        "pending",
        "filled",
        "partially-filled",
        "cancelled",
        "expired",
        "false-predicate",
        "not-enough-balance-or-allowance",
        "wrong-permit",
        "invalid-signature",
    }
)
ACTIVE_STATUSES = frozenset({"pending", "partially-filled"})
ALLOWED_METHODS = ["ping", "getAllowedMethods", "getActiveOrders"]
ZERO_ADDRESS = "0x" + "0" * 40
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
AUCTION_SECONDS = 180
INITIAL_RATE_BUMP = 50_000
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(slots=True)
class Order:
    """One simulated Fusion order with its REST state."""

    chain: int
    order_hash: str
    quote_id: str
    signature: str
    struct: dict[str, str]  # LimitOrderV4Struct
    extension: str
    created: float
    deadline: float
    is_maker_contract: bool
    remaining: int
    status: str = "pending"
    fills: list[dict[str, Any]] = field(default_factory=list)
    cancel_tx: str | None = None
    random: bool = False

    @property
    def making_amount(self) -> int:
        return int(self.struct["makingAmount"])

    @property
    def created_ms(self) -> int:
        return int(self.created * 1000)

    def active_item(self) -> dict[str, Any]:
        """The order as an ``ActiveOrder`` (RPC and REST ``items``)."""
        return {
            "quoteId": self.quote_id,
            "orderHash": self.order_hash,
            "signature": self.signature,
            "deadline": iso(self.deadline, millis=True),
            "auctionStartDate": iso(self.created, millis=True),
            "auctionEndDate": iso(self.created + AUCTION_SECONDS, millis=True),
            "remainingMakerAmount": str(self.remaining),
            "order": dict(self.struct),
            "extension": self.extension,
            "version": "2.2",
        }

    def created_payload(self) -> dict[str, Any]:
        """The ``order_created`` event payload."""
        item = self.active_item()
        del item["version"]
        item["isMakerContract"] = self.is_maker_contract
        return item

    def status_body(self) -> dict[str, Any]:
        """The ``OrderStatusResponse`` of the REST status endpoint."""
        return {
            "orderHash": self.order_hash,
            "status": self.status,
            "order": dict(self.struct),
            "extension": self.extension,
            "points": None,
            "cancelTx": self.cancel_tx,
            "fills": [dict(fill) for fill in self.fills],
            "createdAt": iso(self.created, millis=True),
            "auctionStartDate": int(self.created),
            "auctionDuration": AUCTION_SECONDS,
            "initialRateBump": INITIAL_RATE_BUMP,
            "isNativeCurrency": False,
            "fromTokenToUsdPrice": "1.0",
            "toTokenToUsdPrice": "1.0",
            "remainingMakerAmount": str(self.remaining),
        }

    def maker_item(self) -> dict[str, Any]:
        """The order as an ``OrderFillsByMakerOutput`` (orders-by-maker ``items``)."""
        return {
            "orderHash": self.order_hash,
            "status": self.status,
            "makerAsset": self.struct["makerAsset"],
            "makerAmount": self.struct["makingAmount"],
            "minTakerAmount": self.struct["takingAmount"],
            "takerAsset": self.struct["takerAsset"],
            "cancelTx": self.cancel_tx,
            "fills": [dict(fill) for fill in self.fills],
            "points": None,
            "auctionStartDate": int(self.created),
            "auctionDuration": AUCTION_SECONDS,
            "initialRateBump": INITIAL_RATE_BUMP,
            "isNativeCurrency": False,
            "createdAt": iso(self.created, millis=True),
        }


class FusionApi:
    """The Fusion upstream: websocket, REST, order scripting and fault injection."""

    def __init__(
        self,
        *,
        key: str,
        seed: int = 0,
        random_orders: bool = False,
        order_interval: float = 2.0,
        chains: tuple[int, ...] = (1,),
        heartbeat: float | None = 20.0,
        queue_size: int = 10_000,
    ) -> None:
        self.key = key
        self.random_orders = random_orders
        self.order_interval = order_interval
        self.chains = chains
        self.heartbeat = heartbeat
        self.queue_size = queue_size
        self.refusing = False
        self.rest_failures = 0
        self.rest_requests: deque[str] = deque(maxlen=10_000)  # path and query, newest last
        self.events_sent = 0
        self.events_missed = 0
        self.rpc_calls: list[str] = []
        self.orders: dict[str, Order] = {}
        self._rng = random.Random(f"fusion:{seed}")
        self._peers: dict[int, set[Peer]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the random flow of other makers' orders (when enabled)."""
        if self.random_orders:
            task = asyncio.create_task(self._random_flow())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Stop background tasks and drop every connection."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.drop_connections()

    def routes(self) -> list[web.RouteDef]:
        """WS and REST routes at their real paths (any ``vX.Y`` version segment)."""
        orders = "/fusion/orders/{version}/{chain:[0-9]+}/order"
        return [
            web.get("/fusion/ws/{version}/{chain:[0-9]+}", self.handle_ws),
            web.get(orders + "/active", self.handle_active),
            web.get(orders + "/active/", self.handle_active),
            web.get(orders + "/status/{order_hash}", self.handle_status),
            web.get(orders + "/maker/{address}", self.handle_by_maker),
            web.get(orders + "/maker/{address}/", self.handle_by_maker),
        ]

    # -- scripting ----------------------------------------------------------------------------

    def create_order(
        self,
        chain: int = 1,
        *,
        maker: str | None = None,
        maker_asset: str = USDC,
        taker_asset: str = WETH,
        making_amount: int = 1_000_000_000,
        taking_amount: int = 300_000_000_000_000_000,
        receiver: str = ZERO_ADDRESS,
        lifetime: float = 600.0,
        is_maker_contract: bool = False,
        created_at: float | None = None,
    ) -> str:
        """Create a pending order, push ``order_created``, answer its hash.

        ``created_at`` (unix seconds, default now) back-dates the order's ``createdAt``.
        """
        return self._create(
            chain,
            maker=maker or self._address(),
            maker_asset=maker_asset,
            taker_asset=taker_asset,
            making_amount=making_amount,
            taking_amount=taking_amount,
            receiver=receiver,
            lifetime=lifetime,
            is_maker_contract=is_maker_contract,
            created_at=created_at,
        ).order_hash

    def fill_partially(self, order_hash: str, remaining: int) -> None:
        """Fill down to ``remaining`` (> 0); push ``order_filled_partially``."""
        order = self._live(order_hash)
        if not 0 < remaining < order.remaining:
            raise ValueError(f"remaining must be in 1..{order.remaining - 1}")
        self._fill(order, order.remaining - remaining)
        order.status = "partially-filled"
        self._emit(
            order,
            "order_filled_partially",
            {"orderHash": order.order_hash, "remainingMakerAmount": str(remaining)},
        )

    def fill(self, order_hash: str) -> None:
        """Fill what remains; push ``order_filled``."""
        order = self._live(order_hash)
        self._fill(order, order.remaining)
        order.status = "filled"
        self._emit(order, "order_filled", {"orderHash": order.order_hash})

    def cancel(self, order_hash: str) -> None:
        """Cancel on chain; push ``order_cancelled``."""
        order = self._live(order_hash)
        order.status = "cancelled"
        order.cancel_tx = self._hex(64)
        self._emit(order, "order_cancelled", {"orderHash": order.order_hash})

    def invalidate(self, order_hash: str, status: str = "invalid-signature") -> None:
        """Make the order invalid with REST ``status``; push ``order_invalid``."""
        if status in ACTIVE_STATUSES or status not in ORDER_STATUSES:
            raise ValueError(f"not an invalid status: {status}")
        order = self._live(order_hash)
        order.status = status
        self._emit(order, "order_invalid", {"orderHash": order.order_hash})

    def balance_change(self, order_hash: str, balance: int, allowance: int) -> None:
        """Report the maker's balance/allowance; push ``order_balance_or_allowance_change``.

        Below the remaining amount the REST status becomes ``not-enough-balance-or-allowance``
        (and the order leaves the active list); enough again restores it.
        """
        order = self._live(order_hash, allow_unfunded=True)
        if min(balance, allowance) < order.remaining:
            order.status = "not-enough-balance-or-allowance"
        else:
            order.status = "partially-filled" if order.fills else "pending"
        payload = {
            "orderHash": order.order_hash,
            "remainingMakerAmount": str(order.remaining),
            "balance": str(balance),
            "allowance": str(allowance),
        }
        self._emit(order, "order_balance_or_allowance_change", payload)

    def expire(self, order_hash: str) -> None:
        """Expire the order in REST state only: upstream pushes no event for expiry."""
        self._live(order_hash, allow_unfunded=True).status = "expired"

    def active_orders(self, chain: int) -> list[Order]:
        """Orders of ``chain`` listed as active, oldest first."""
        return [
            order
            for order in self.orders.values()
            if order.chain == chain and order.status in ACTIVE_STATUSES
        ]

    def drop_connections(self, chain: int | None = None, *, graceful: bool = False) -> int:
        """Drop the connections of ``chain`` (default all): abruptly, or with a 1012 close."""
        peers = [peer for c, group in self._peers.items() if chain in (None, c) for peer in group]
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
        peers = [p for c, group in self._peers.items() if chain in (None, c) for p in group]
        for peer in peers:
            peer.send(data)
        return len(peers)

    def refuse_connections(self, refuse: bool = True) -> None:
        """While refusing, upgrade requests are answered ``503``."""
        self.refusing = refuse

    def fail_rest(self, count: int) -> None:
        """Answer the next ``count`` authorised REST requests ``503`` (0 stops failing)."""
        self.rest_failures = count

    def orders_by_maker(
        self, chain: int, maker: str, since_ms: int | None = None, until_ms: int | None = None
    ) -> list[Order]:
        """Orders of ``maker`` on ``chain`` created in ``[since_ms, until_ms)``, newest first."""
        found = [
            order
            for order in self.orders.values()
            if order.chain == chain
            and order.struct["maker"].lower() == maker.lower()
            and (since_ms is None or order.created_ms >= since_ms)
            and (until_ms is None or order.created_ms < until_ms)
        ]
        return sorted(found, key=lambda order: order.created, reverse=True)

    def connection_count(self, chain: int | None = None) -> int:
        """Open connections of ``chain`` (default all)."""
        return sum(len(group) for c, group in self._peers.items() if chain in (None, c))

    # -- websocket ------------------------------------------------------------------------------

    async def handle_ws(self, request: web.Request) -> web.StreamResponse:
        """``GET /fusion/ws/{version}/{chain}``: Bearer auth, then events and RPC answers."""
        denied = self._deny(request)
        if denied is not None:
            return denied
        if self.refusing:
            return json_response(_error(503, "Service Unavailable"), 503)
        chain = int(request.match_info["chain"])
        ws = web.WebSocketResponse(autoping=True, heartbeat=self.heartbeat)
        await ws.prepare(request)
        peer = Peer(ws, request.transport, self.queue_size)
        self._peers.setdefault(chain, set()).add(peer)
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_rpc(peer, chain, msg.data)
        finally:
            self._peers[chain].discard(peer)
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
                result = self._page(chain, param.get("page"), param.get("limit"))
            except ValueError as exc:
                # Server-side validation is undocumented; answer the only documented WS error
                # shape, `result.error` (UPSTREAMS §1.6).
                result = {"error": str(exc)}
        else:
            result = {"error": f"unknown method: {method}"}
        peer.send_json({"method": method, "result": result})

    # -- REST -----------------------------------------------------------------------------------

    async def handle_active(self, request: web.Request) -> web.Response:
        """``GET …/order/active/?page=&limit=``: one page of active orders."""
        denied = self._deny_rest(request)
        if denied is not None:
            return denied
        try:
            page = _int_or_none(request.query.get("page"))
            limit = _int_or_none(request.query.get("limit"))
            body = self._page(int(request.match_info["chain"]), page, limit)
        except ValueError as exc:
            return json_response(_error(400, "Bad Request", str(exc)), 400)
        return json_response(body)

    async def handle_by_maker(self, request: web.Request) -> web.Response:
        """``GET …/order/maker/{address}/?limit=&page=&timestampFrom=&timestampTo=``.

        One page of the maker's orders (any status) as ``OrderFillsByMakerOutput``, newest
        first; the timestamps (ms) bound ``createdAt`` to ``[timestampFrom, timestampTo)``.
        """
        denied = self._deny_rest(request)
        if denied is not None:
            return denied
        address = request.match_info["address"]
        if not _ADDRESS.fullmatch(address):
            return json_response(_error(400, "Bad Request", f"{address} is invalid address"), 400)
        query = request.query
        try:
            orders = self.orders_by_maker(
                int(request.match_info["chain"]),
                address,
                _int_or_none(query.get("timestampFrom")),
                _int_or_none(query.get("timestampTo")),
            )
            page = _int_or_none(query.get("page"))
            limit = _int_or_none(query.get("limit"))
            body = _paginate(orders, page, limit, Order.maker_item)
        except ValueError as exc:
            return json_response(_error(400, "Bad Request", str(exc)), 400)
        return json_response(body)

    async def handle_status(self, request: web.Request) -> web.Response:
        """``GET …/order/status/{orderHash}``: the order's status, 404 when unknown."""
        denied = self._deny_rest(request)
        if denied is not None:
            return denied
        order = self.orders.get(request.match_info["order_hash"])
        if order is None or order.chain != int(request.match_info["chain"]):
            return json_response(_error(404, "Not Found", "order not found"), 404)
        return json_response(order.status_body())

    def _deny(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if header != f"Bearer {self.key}":
            return json_response(_error(401, "Unauthorized"), 401)
        return None

    def _deny_rest(self, request: web.Request) -> web.Response | None:
        """Bearer auth, then the scripted ``fail_rest`` faults; records the request."""
        denied = self._deny(request)
        if denied is not None:
            return denied
        self.rest_requests.append(request.path_qs)
        if self.rest_failures > 0:
            self.rest_failures -= 1
            return json_response(_error(503, "Service Unavailable"), 503)
        return None

    def _page(self, chain: int, page: Any, limit: Any) -> dict[str, Any]:
        return _paginate(self.active_orders(chain), page, limit, Order.active_item)

    # -- internals ------------------------------------------------------------------------------

    def _create(
        self,
        chain: int,
        *,
        maker: str,
        maker_asset: str,
        taker_asset: str,
        making_amount: int,
        taking_amount: int,
        receiver: str,
        lifetime: float,
        is_maker_contract: bool,
        random_flow: bool = False,
        created_at: float | None = None,
    ) -> Order:
        now = time.time() if created_at is None else created_at
        order_hash = f"0x{self._hex(64)}-{self._hex(31)}"
        struct = {
            "salt": str(self._rng.getrandbits(200)),
            "maker": maker,
            "receiver": receiver,
            "makerAsset": maker_asset,
            "takerAsset": taker_asset,
            "makerTraits": str(self._rng.getrandbits(250)),
            "makingAmount": str(making_amount),
            "takingAmount": str(taking_amount),
        }
        order = Order(
            chain=chain,
            order_hash=order_hash,
            quote_id=self._uuid(),
            signature="0x" + self._hex(130),
            struct=struct,
            extension="0x" + self._hex(96),
            created=now,
            deadline=now + lifetime,
            is_maker_contract=is_maker_contract,
            remaining=making_amount,
            random=random_flow,
        )
        self.orders[order_hash] = order
        self._emit(order, "order_created", order.created_payload())
        return order

    def _live(self, order_hash: str, *, allow_unfunded: bool = False) -> Order:
        order = self.orders.get(order_hash)
        if order is None:
            raise KeyError(order_hash)
        allowed = ACTIVE_STATUSES | (
            {"not-enough-balance-or-allowance"} if allow_unfunded else set()
        )
        if order.status not in allowed:
            raise ValueError(f"order {order_hash} is {order.status}")
        return order

    def _fill(self, order: Order, amount: int) -> None:
        taking = int(order.struct["takingAmount"]) * amount // max(order.making_amount, 1)
        order.fills.append(
            {
                "txHash": "0x" + self._hex(64),
                "filledMakerAmount": str(amount),
                "filledAuctionTakerAmount": str(taking),
                "takerFeeAmount": None,
            }
        )
        order.remaining -= amount

    def _emit(self, order: Order, event: str, result: dict[str, Any]) -> None:
        peers = self._peers.get(order.chain, set())
        if not peers:
            self.events_missed += 1
        for peer in list(peers):
            if peer.send_json({"event": event, "result": result}):
                self.events_sent += 1

    def _hex(self, digits: int) -> str:
        return f"{self._rng.getrandbits(digits * 4):0{digits}x}"

    def _address(self) -> str:
        return "0x" + self._hex(40)

    def _uuid(self) -> str:
        h = self._hex(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    async def _random_flow(self) -> None:
        """Other makers' orders: created, partly filled, filled, cancelled, at random."""
        rng = self._rng
        while True:
            await asyncio.sleep(rng.expovariate(1 / self.order_interval))
            live = [o for o in self.orders.values() if o.random and o.status in ACTIVE_STATUSES]
            if len(live) < 3 or rng.random() < 0.4:
                making = rng.randrange(10**6, 10**12)
                self._create(
                    rng.choice(self.chains),
                    maker=self._address(),
                    maker_asset=rng.choice([USDC, WETH]),
                    taker_asset=rng.choice([WETH, USDC]),
                    making_amount=making,
                    taking_amount=making * rng.randrange(1, 10**6),
                    receiver=ZERO_ADDRESS,
                    lifetime=600.0,
                    is_maker_contract=False,
                    random_flow=True,
                )
                continue
            order = rng.choice(live)
            roll = rng.random()
            if roll < 0.4 and order.remaining > 1:
                self.fill_partially(order.order_hash, rng.randrange(1, order.remaining))
            elif roll < 0.75:
                self.fill(order.order_hash)
            elif roll < 0.9:
                self.cancel(order.order_hash)
            else:
                funds = rng.randrange(0, order.remaining * 2)
                self.balance_change(order.order_hash, funds, funds)


def _error(status: int, error: str, message: str | None = None) -> dict[str, Any]:
    """1inch-style error body; the exact shape is not documented (UPSTREAMS §4)."""
    return {"statusCode": status, "error": error, "message": message or error}


def _paginate(
    orders: Sequence[Order], page: Any, limit: Any, render: Callable[[Order], dict[str, Any]]
) -> dict[str, Any]:
    """One page of ``orders`` as ``PaginationOutput``; the SDK's validation, as ``ValueError``."""
    page = 1 if page is None else page
    limit = DEFAULT_LIMIT if limit is None else limit
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit should be in range between 1 and {MAX_LIMIT}")
    if not isinstance(page, int) or page < 1:
        raise ValueError("page should be >= 1")
    return {
        "items": [render(order) for order in orders[(page - 1) * limit : page * limit]],
        "meta": {
            "totalItems": len(orders),
            "itemsPerPage": limit,
            "totalPages": math.ceil(len(orders) / limit),
            "currentPage": page,
        },
    }


def _int_or_none(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    return int(raw)
