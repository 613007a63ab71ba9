"""Simulated 1inch Fusion: the order-event websocket and the orders REST API (UPSTREAMS §1).

WS ``/fusion/ws/{version}/{chain}`` with ``Authorization: Bearer <key>`` pushes
``{"event", "result"}`` frames for every order event of the chain and answers the RPCs ``ping``,
``getAllowedMethods`` and ``getActiveOrders``. REST follows the fusion-sdk ``OrdersApi`` under
``/fusion/orders/{version}/{chain}/order/…``, behind the same Bearer key. Scripting methods
(`FusionApi.create_order`, `fill`, …) change the REST state and push the event to the chain's
live connections; an event with no connection is missed live, and only REST shows it, which is
what reconciliation after a reconnect must catch.

The modules, bottom up: ``orders`` (statuses, the ``Order`` record and its wire renderings,
pagination), ``auth`` (Bearer check, error body), ``book`` (order state, scripting, the random
flow), ``socket`` (the WS endpoint, RPCs, connection faults), ``rest`` (the REST endpoints and
their ``503`` faults), ``api`` (``FusionApi``, which serves the book over both).

The Solana variant (UPSTREAMS §1.7: WS ``/fusion/ws/v1.0/501``, REST
``/fusion/orders/v1.0/501/…``, base58 hashes, numeric statuses, ``create``/``fill``/``cancel``
events) is ``solana`` (its order record and book, ``FusionApi.solana``) and ``solana_rest``
(its endpoints, listed before the EVM ones, whose ``{chain:[0-9]+}`` would match 501); it
shares the socket, the Bearer key and the REST faults (``auth.RestGate``) with the EVM one.
"""

from notifier.simulator.fusion.api import FusionApi
from notifier.simulator.fusion.orders import ACTIVE_STATUSES, ORDER_STATUSES, Order

__all__ = ["ACTIVE_STATUSES", "ORDER_STATUSES", "FusionApi", "Order"]
