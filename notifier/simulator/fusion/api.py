"""``FusionApi``: the order books (EVM, and Solana's in ``solana``) served over their WebSocket
and REST endpoints, with the faults both share."""

from __future__ import annotations

from collections import deque
from typing import Any

from aiohttp import web

from notifier.simulator.fusion.book import OrderBook
from notifier.simulator.fusion.orders import Order, paginate
from notifier.simulator.fusion.rest import OrdersRest
from notifier.simulator.fusion.socket import OrderSocket
from notifier.simulator.fusion.solana import SOLANA_CHAIN, SolanaBook, SolanaOrder
from notifier.simulator.fusion.solana_rest import SolanaRest

__all__ = ["FusionApi"]


class FusionApi(OrderBook):
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
        super().__init__(
            publish=self._push,
            seed=seed,
            random_orders=random_orders,
            order_interval=order_interval,
            chains=chains,
        )
        self.key = key
        self.heartbeat = heartbeat
        self.queue_size = queue_size
        self.socket = OrderSocket(
            key=key, active=self._active_page, heartbeat=heartbeat, queue_size=queue_size
        )
        self.rest = OrdersRest(key=key, book=self)
        self.solana = SolanaBook(publish=self._push_solana, seed=seed)
        self.solana_rest = SolanaRest(gate=self.rest, book=self.solana)

    async def stop(self) -> None:
        """Stop background tasks and drop every connection."""
        await super().stop()
        await self.socket.stop()

    def routes(self) -> list[web.RouteDef]:
        """WS and REST routes at their real paths (any ``vX.Y`` version segment)."""
        return [self.socket.route(), *self.solana_rest.routes(), *self.rest.routes()]

    def _push(self, order: Order, event: str, result: dict[str, Any]) -> None:
        self.socket.push(order.chain, event, result)

    def _push_solana(self, order: SolanaOrder, event: str, result: dict[str, Any]) -> None:
        self.socket.push(SOLANA_CHAIN, event, result)

    def _active_page(self, chain: int, page: Any, limit: Any) -> dict[str, Any]:
        """The ``getActiveOrders`` answer of ``chain``'s book."""
        if chain == SOLANA_CHAIN:
            return paginate(self.solana.active_orders(), page, limit, SolanaOrder.active_item)
        return paginate(self.active_orders(chain), page, limit, Order.active_item)

    # -- fault injection ------------------------------------------------------------------------

    def drop_connections(self, chain: int | None = None, *, graceful: bool = False) -> int:
        """Drop the connections of ``chain`` (default all): abruptly, or with a 1012 close."""
        return self.socket.drop(chain, graceful=graceful)

    def send_raw(self, data: bytes, chain: int | None = None) -> int:
        """Send ``data`` as is, as one text frame, to the connections of ``chain`` (default all)."""
        return self.socket.send_raw(data, chain)

    def refuse_connections(self, refuse: bool = True) -> None:
        """While refusing, upgrade requests are answered ``503``."""
        self.socket.refusing = refuse

    def fail_rest(self, count: int) -> None:
        """Answer the next ``count`` authorised REST requests (EVM or Solana) ``503`` (0 stops
        failing)."""
        self.rest.failures = count

    # -- observation ----------------------------------------------------------------------------

    def connection_count(self, chain: int | None = None) -> int:
        """Open connections of ``chain`` (default all)."""
        return self.socket.connection_count(chain)

    @property
    def refusing(self) -> bool:
        return self.socket.refusing

    @property
    def rest_failures(self) -> int:
        """REST requests still to be answered ``503``."""
        return self.rest.failures

    @property
    def rest_requests(self) -> deque[str]:
        """Path and query of the authorised REST requests, newest last."""
        return self.rest.requests

    @property
    def events_sent(self) -> int:
        return self.socket.events_sent

    @property
    def events_missed(self) -> int:
        """Events announced while their chain had no connection."""
        return self.socket.events_missed

    @property
    def rpc_calls(self) -> list[str]:
        return self.socket.rpc_calls
