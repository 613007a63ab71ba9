"""The Solana Fusion wire (UPSTREAMS §1.7; solana-fusion-sdk ``src/ws-api/types.ts`` and
``src/api/orders/types.ts``): ``create``/``fill``/``cancel`` payloads, active orders and the
order status (numeric ``status``, ``fills[]``), read into ``OrderInfo`` and small records.

A Solana order maps onto ``OrderInfo`` as: maker asset = ``srcMint``, taker asset =
``dstMint``, making amount = ``srcAmount``, taking amount = ``minDstAmount``, deadline =
``expirationTime`` (seconds, or milliseconds when above 10^12) as RFC 3339. Hashes and
addresses are base58 and kept exactly as sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Self

from notifier.events import OrderInfo
from notifier.sources.fusion.wire import ORDER_HASH, int_or_none
from notifier.timestamps import parse_iso, rfc3339

__all__ = [
    "MILLIS_ABOVE",
    "SOLANA_EVENTS",
    "SOLANA_VERSION",
    "STATUS_CANCELLED",
    "STATUS_FILLED",
    "STATUS_OPEN",
    "Fill",
    "SolanaStatus",
    "TxEvent",
    "active_order",
    "expiration_seconds",
    "expires_at",
    "solana_info",
]

SOLANA_VERSION = "v1.0"  # the SDK's only version; ``fusion.version`` is for EVM chains
SOLANA_EVENTS = ("create", "fill", "cancel")  # EventType
STATUS_OPEN, STATUS_FILLED, STATUS_CANCELLED = 0, 200, 301  # OrderStatus
MILLIS_ABOVE = 10**12  # an expirationTime above this is in milliseconds


def expiration_seconds(raw: Any) -> float | None:
    """``expirationTime`` as unix seconds: the WS example is in seconds, a REST example in
    milliseconds; None when it is not a positive number."""
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    if not math.isfinite(raw) or raw <= 0:
        return None
    return raw / 1000 if raw > MILLIS_ABOVE else float(raw)


def expires_at(info: OrderInfo) -> float | None:
    """When a Solana order expires (unix seconds), from its cached deadline."""
    return parse_iso(info.deadline)


def solana_info(
    order_hash: str, maker: Any, order: Any, fallback_expiry: Any = None
) -> OrderInfo | None:
    """An ``OrderInfo`` from a Solana ``order`` (``OrderDTO``) and its maker; None when a
    field it needs is missing or malformed."""
    if not isinstance(order, Mapping) or not isinstance(maker, str) or not maker:
        return None
    making = int_or_none(order.get("srcAmount"))
    taking = int_or_none(order.get("minDstAmount"))
    src, dst = order.get("srcMint"), order.get("dstMint")
    if making is None or making <= 0 or taking is None or taking < 0:
        return None
    if not isinstance(src, str) or not isinstance(dst, str):
        return None
    receiver = order.get("receiver")
    expiry = expiration_seconds(order.get("expirationTime"))
    if expiry is None:
        expiry = expiration_seconds(fallback_expiry)
    return OrderInfo(
        order_hash=order_hash,
        maker=maker,
        receiver=receiver if isinstance(receiver, str) else "",
        maker_asset=src,
        taker_asset=dst,
        making_amount=making,
        taking_amount=taking,
        deadline=rfc3339(expiry),
        remaining_maker_amount=making,
    )


def active_order(item: Any) -> OrderInfo | None:
    """An ``ActiveOrder`` item (RPC or REST ``order/active``) with its remaining amount."""
    if not isinstance(item, Mapping):
        return None
    order_hash = item.get("orderHash")
    if not isinstance(order_hash, str) or not ORDER_HASH.fullmatch(order_hash):
        return None
    info = solana_info(order_hash, item.get("maker"), item.get("order"))
    remaining = int_or_none(item.get("remainingMakerAmount"))
    if info is not None and remaining is not None:
        info = replace(info, remaining_maker_amount=remaining)
    return info


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill transaction: a ``fill`` event or an entry of REST ``fills[]``."""

    tx: str
    amount: int  # filledMakerAmount: this transaction's, not a running total (SPEC §1)
    taker_amount: int | None

    @classmethod
    def parse(cls, raw: Any, tx_key: str) -> Self | None:
        if not isinstance(raw, Mapping):
            return None
        tx = raw.get(tx_key)
        amount = int_or_none(raw.get("filledMakerAmount"))
        if not isinstance(tx, str) or not tx or amount is None or amount <= 0:
            return None
        return cls(tx, amount, int_or_none(raw.get("filledAuctionTakerAmount")))

    def result(self, order_hash: str) -> dict[str, Any]:
        """The event result of a fill known only from REST."""
        return {
            "orderHash": order_hash,
            "transactionSignature": self.tx,
            "filledMakerAmount": str(self.amount),
            "filledAuctionTakerAmount": (
                None if self.taker_amount is None else str(self.taker_amount)
            ),
        }


@dataclass(frozen=True, slots=True)
class TxEvent:
    """A ``create``/``fill``/``cancel`` result: the transaction it reports, and per kind the
    order (``create``) or the fill (``fill``)."""

    kind: str
    order_hash: str
    maker: str | None
    tx: str
    info: OrderInfo | None = None
    fill: Fill | None = None

    @classmethod
    def parse(cls, kind: str, order_hash: str, payload: Mapping[str, Any]) -> Self | None:
        """None when the payload lacks what its kind needs (it is then malformed)."""
        tx = payload.get("transactionSignature")
        maker = payload.get("maker")
        if not isinstance(tx, str) or not tx or not ORDER_HASH.fullmatch(order_hash):
            return None
        event = cls(kind, order_hash, maker if isinstance(maker, str) and maker else None, tx)
        if kind == "create":
            info = solana_info(order_hash, maker, payload.get("order"))
            return None if info is None else replace(event, info=info)
        if kind == "fill":
            fill = Fill.parse(payload, "transactionSignature")
            return None if fill is None else replace(event, fill=fill)
        return event


@dataclass(frozen=True, slots=True)
class SolanaStatus:
    """``GET …/order/status/{hash}`` (``OrderStatusDTO``)."""

    status: int  # STATUS_OPEN, STATUS_FILLED or STATUS_CANCELLED (others are kept as sent)
    info: OrderInfo | None
    fills: tuple[Fill, ...]
    cancel_tx: str | None

    @classmethod
    def parse(cls, order_hash: str, body: Mapping[str, Any]) -> Self | None:
        status = body.get("status")
        if isinstance(status, bool) or not isinstance(status, int):
            return None
        info = solana_info(
            order_hash, body.get("maker"), body.get("order"), body.get("expirationTime")
        )
        raw_fills = body.get("fills")
        fills = tuple(
            fill
            for fill in (
                Fill.parse(raw, "txSignature")
                for raw in (raw_fills if isinstance(raw_fills, list) else ())
            )
            if fill is not None
        )
        cancel_tx = body.get("cancelTx")
        return cls(status, info, fills, cancel_tx if isinstance(cancel_tx, str) else None)
