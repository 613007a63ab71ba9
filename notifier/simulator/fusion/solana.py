"""Simulated Fusion on Solana (chain 501, UPSTREAMS §1.7): orders as solana-fusion-sdk renders
them, and their book.

Events go out as ``{"event": "create"|"fill"|"cancel", "result": …}`` with a
``transactionSignature``, ``slotNumber`` and ``commitment``; fills carry their own
``filledMakerAmount`` and the filling ``resolver``. REST answers ``ActiveOrder`` items and the
``OrderStatusDTO`` with its numeric ``status`` (0 in progress, 200 filled, 301 cancelled) and
``fills[]``. Expiry sends nothing: an expired order keeps status 0 and leaves the active list.
Hashes, signatures and addresses are base58.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SOLANA_CHAIN",
    "SOL_MINT",
    "STATUS_CANCELLED",
    "STATUS_FILLED",
    "STATUS_IN_PROGRESS",
    "USDC_MINT",
    "SolanaBook",
    "SolanaOrder",
]

SOLANA_CHAIN = 501
STATUS_IN_PROGRESS, STATUS_FILLED, STATUS_CANCELLED = 0, 200, 301
SOL_MINT = "So11111111111111111111111111111111111111112"
USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
AUCTION_SECONDS = 24  # the SDK fixture's dutchAuctionData.duration


@dataclass(slots=True)
class SolanaOrder:
    """One simulated Solana Fusion order with its REST state."""

    order_hash: str
    maker: str
    receiver: str
    src_mint: str
    dst_mint: str
    src_amount: int
    min_dst_amount: int
    created: float
    expiration: int  # unix seconds
    create_tx: str
    millis: bool = False  # render expirationTime in milliseconds (one REST example does)
    status: int = STATUS_IN_PROGRESS
    remaining: int = 0
    fills: list[dict[str, Any]] = field(default_factory=list)
    cancel_tx: str | None = None
    last_event: tuple[str, dict[str, Any]] | None = None

    chain = SOLANA_CHAIN

    def active(self, now: float) -> bool:
        """Listed as active: in progress and not expired (the SDK's ``isExpiredAt``)."""
        return self.status == STATUS_IN_PROGRESS and now <= self.expiration

    def order_json(self) -> dict[str, Any]:
        """The order as ``OrderDTO`` / ``FusionOrder.toJSON()``."""
        return {
            "id": 0,
            "fee": {
                "protocolFee": 0,
                "integratorFee": 0,
                "protocolDstAta": None,
                "integratorDstAta": None,
                "surplusPercentage": 0,
                "maxCancellationPremium": "1",
            },
            "dstMint": self.dst_mint,
            "srcMint": self.src_mint,
            "receiver": self.receiver,
            "srcAmount": str(self.src_amount),
            "minDstAmount": str(self.min_dst_amount),
            "expirationTime": self._expiration(),
            "srcAssetIsNative": self.src_mint == SOL_MINT,
            "dstAssetIsNative": self.dst_mint == SOL_MINT,
            "dutchAuctionData": {
                "duration": AUCTION_SECONDS,
                "startTime": int(self.created),
                "initialRateBump": 7039,
                "pointsAndTimeDeltas": [],
            },
            "estimatedDstAmount": str(self.min_dst_amount),
            "cancellationAuctionDuration": 1,
        }

    def active_item(self) -> dict[str, Any]:
        """The order as an ``ActiveOrder`` (RPC and REST ``items``)."""
        return {
            "orderHash": self.order_hash,
            "order": self.order_json(),
            "txSignature": self.create_tx,
            "maker": self.maker,
            "remainingMakerAmount": str(self.remaining),
        }

    def status_body(self) -> dict[str, Any]:
        """The ``OrderStatusDTO`` of ``GET …/order/status/{hash}``."""
        body: dict[str, Any] = {
            "maker": self.maker,
            "orderHash": self.order_hash,
            "status": self.status,
            "order": self.order_json(),
            "approximateTakingAmount": str(self.min_dst_amount),
            "expirationTime": self._expiration(),
            "fills": [dict(fill) for fill in self.fills],
            "createdAt": int(self.created),
            "srcTokenPriceUsd": 1,
            "dstTokenPriceUsd": 1,
            "cancelable": self.status == STATUS_IN_PROGRESS,
        }
        if self.cancel_tx is not None:  # ``cancelTx?``: absent until cancelled
            body["cancelTx"] = self.cancel_tx
        return body

    def _expiration(self) -> int:
        return self.expiration * 1000 if self.millis else self.expiration


Publish = Callable[[SolanaOrder, str, dict[str, Any]], None]


class SolanaBook:
    """Solana orders, changed by scripting methods that announce each event through
    ``publish``; ``repeat`` sends an order's last event again, as a second commitment."""

    def __init__(self, *, publish: Publish, seed: int = 0) -> None:
        self.orders: dict[str, SolanaOrder] = {}
        self._publish = publish
        self._rng = random.Random(f"solana:{seed}")
        self._slot = 300_000_000

    def create_order(
        self,
        *,
        maker: str | None = None,
        src_mint: str = USDC_MINT,
        dst_mint: str = SOL_MINT,
        src_amount: int = 1_000_000_000,
        min_dst_amount: int = 5_000_000_000,
        receiver: str | None = None,
        lifetime: float = 600.0,
        expiration_millis: bool = False,
        created_at: float | None = None,
    ) -> str:
        """Create an in-progress order, push ``create``, answer its hash.

        ``expiration_millis`` renders ``expirationTime`` in milliseconds (the REST example).
        """
        now = time.time() if created_at is None else created_at
        maker = maker or self._base58(44)
        order = SolanaOrder(
            order_hash=self._base58(44),
            maker=maker,
            receiver=receiver or maker,
            src_mint=src_mint,
            dst_mint=dst_mint,
            src_amount=src_amount,
            min_dst_amount=min_dst_amount,
            created=now,
            expiration=int(now + lifetime),
            create_tx=self._base58(88),
            millis=expiration_millis,
            remaining=src_amount,
        )
        self.orders[order.order_hash] = order
        payload = self._tx_payload(order, "create", order.create_tx)
        payload["order"] = order.order_json()
        payload["filledMakerAmount"] = "0"
        payload["filledAuctionTakerAmount"] = "0"
        self._announce(order, "create", payload)
        return order.order_hash

    def fill(self, order_hash: str, amount: int | None = None, resolver: str | None = None) -> str:
        """Fill ``amount`` (default: what remains); push ``fill``; answer the signature."""
        order = self._live(order_hash)
        amount = order.remaining if amount is None else amount
        if not 0 < amount <= order.remaining:
            raise ValueError(f"amount must be in 1..{order.remaining}")
        tx = self._base58(88)
        taker = order.min_dst_amount * amount // order.src_amount
        order.fills.append(
            {
                "txSignature": tx,
                "filledMakerAmount": str(amount),
                "filledAuctionTakerAmount": str(taker),
            }
        )
        order.remaining -= amount
        if order.remaining == 0:
            order.status = STATUS_FILLED
        payload = self._tx_payload(order, "fill", tx)
        payload["resolver"] = resolver or self._base58(44)
        payload["filledMakerAmount"] = str(amount)
        payload["filledAuctionTakerAmount"] = str(taker)
        self._announce(order, "fill", payload)
        return tx

    def cancel(self, order_hash: str) -> str:
        """Cancel (status 301); push ``cancel``; answer the signature."""
        order = self._live(order_hash)
        order.status = STATUS_CANCELLED
        order.cancel_tx = self._base58(88)
        payload = self._tx_payload(order, "cancel", order.cancel_tx)
        payload["filledMakerAmount"] = str(order.src_amount - order.remaining)
        payload["filledAuctionTakerAmount"] = "0"
        self._announce(order, "cancel", payload)
        return order.cancel_tx

    def expire(self, order_hash: str) -> None:
        """Move the expiration into the past: status stays 0, the order leaves the active list,
        and nothing is pushed (Solana sends no expiry event)."""
        order = self._live(order_hash)
        order.expiration = min(order.expiration, int(time.time()) - 1)

    def repeat(self, order_hash: str) -> None:
        """Send the order's last event again with ``commitment: finalized`` (a duplicate)."""
        order = self.orders[order_hash]
        if order.last_event is None:
            raise ValueError(f"order {order_hash} has sent no event")
        event, payload = order.last_event
        self._publish(order, event, {**payload, "commitment": "finalized"})

    def active_orders(self) -> list[SolanaOrder]:
        """Orders listed as active, oldest first."""
        now = time.time()
        return [order for order in self.orders.values() if order.active(now)]

    def _announce(self, order: SolanaOrder, event: str, payload: dict[str, Any]) -> None:
        order.last_event = (event, payload)
        self._publish(order, event, payload)

    def _tx_payload(self, order: SolanaOrder, action: str, tx: str) -> dict[str, Any]:
        self._slot += self._rng.randrange(1, 40)
        return {
            "transactionSignature": tx,
            "slotNumber": self._slot,
            "blockTime": int(time.time()),
            "action": action,
            "commitment": "confirmed",
            "orderHash": order.order_hash,
            "maker": order.maker,
        }

    def _live(self, order_hash: str) -> SolanaOrder:
        order = self.orders.get(order_hash)
        if order is None:
            raise KeyError(order_hash)
        if order.status != STATUS_IN_PROGRESS:
            raise ValueError(f"order {order_hash} has status {order.status}")
        return order

    def _base58(self, length: int) -> str:
        return "".join(self._rng.choice(BASE58) for _ in range(length))
