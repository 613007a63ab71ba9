"""Fusion orders as the upstream renders them: statuses, the ``Order`` record and its answers.

Beyond the SDK's ``OrderStatusResponse`` type, status answers also carry ``orderHash`` and
``remainingMakerAmount`` (simulator extras; a client should derive the remaining amount from
``order.makingAmount`` minus the ``fills`` when they are absent).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from notifier.simulator.wire import iso

__all__ = [
    "ACTIVE_STATUSES",
    "AUCTION_SECONDS",
    "DEFAULT_LIMIT",
    "INITIAL_RATE_BUMP",
    "MAX_LIMIT",
    "ORDER_STATUSES",
    "USDC",
    "WETH",
    "ZERO_ADDRESS",
    "Order",
    "paginate",
]

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
ZERO_ADDRESS = "0x" + "0" * 40
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
AUCTION_SECONDS = 180
INITIAL_RATE_BUMP = 50_000


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


T = TypeVar("T")


def paginate(
    orders: Sequence[T], page: Any, limit: Any, render: Callable[[T], dict[str, Any]]
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
