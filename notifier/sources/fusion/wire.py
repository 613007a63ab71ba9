"""The 1inch Fusion wire (UPSTREAMS §1, EVM): order payloads and REST statuses as ``OrderInfo``
and ``RestStatus``, and which REST status stands for which live event.

Solana (§1.7: ``create``/``fill``/``cancel``, numeric statuses, base58) has its own,
``solana_wire``; the order cache, REST plumbing and socket loop are shared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Self

from notifier.events import FINAL_ORDER_EVENTS, OrderInfo
from notifier.timestamps import parse_iso

__all__ = [
    "FINAL_STATUSES",
    "MAKER_ADDRESS",
    "ORDER_HASH",
    "RECONCILED_EVENTS",
    "Listed",
    "RestStatus",
    "int_or_none",
    "listed_info",
    "order_info",
    "state_key",
]

# REST order status -> the live event it stands for when the feed missed it. ``expired`` has no
# live counterpart (nothing is emitted, the order just stops being reconciled); ``pending`` and
# ``not-enough-balance-or-allowance`` are not transitions worth a synthetic event.
RECONCILED_EVENTS = {
    "filled": "order_filled",
    "partially-filled": "order_filled_partially",
    "cancelled": "order_cancelled",
    "false-predicate": "order_invalid",
    "invalid-signature": "order_invalid",
    "wrong-permit": "order_invalid",
}
FINAL_STATUSES = frozenset(
    {"filled", "cancelled", "expired", "false-predicate", "invalid-signature", "wrong-permit"}
)
ORDER_HASH = re.compile(r"[0-9A-Za-z_-]{1,200}")
MAKER_ADDRESS = re.compile(r"0x[0-9a-f]{40}")


def state_key(event: str, remaining: int | None) -> str | None:
    """The state a fill/cancel/invalidation leaves an order in; None for other events."""
    if event == "order_filled_partially":
        return f"{event}:{'' if remaining is None else remaining}"
    return event if event in FINAL_ORDER_EVENTS else None


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"not an integer: {value!r}")
    return int(value)


def int_or_none(value: Any) -> int | None:
    try:
        return _as_int(value)
    except (TypeError, ValueError):
        return None


def _created_ms(raw: Any) -> int | None:
    """``createdAt`` as unix ms: an ISO string (Fusion), or already ms (Fusion+)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    seconds = parse_iso(raw)
    return None if seconds is None else int(seconds * 1000)


def listed_info(order_hash: str, maker: str, item: Mapping[str, Any]) -> OrderInfo | None:
    """An ``OrderInfo`` from an orders-by-maker item, which has no ``order`` struct.

    ``OrderFillsByMakerOutput`` gives ``makerAsset``, ``takerAsset``, ``makerAmount`` and
    ``minTakerAmount``; the SDK's fixtures show the latter two equal to the order's
    ``makingAmount`` / ``takingAmount``. Receiver and deadline are not listed.
    """
    try:
        return OrderInfo(
            order_hash=order_hash,
            maker=maker,
            receiver="",
            maker_asset=str(item["makerAsset"]),
            taker_asset=str(item["takerAsset"]),
            making_amount=_as_int(item["makerAmount"]),
            taking_amount=_as_int(item["minTakerAmount"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def order_info(order_hash: str, payload: Mapping[str, Any]) -> OrderInfo | None:
    """An ``OrderInfo`` from an ``order_created`` result, an active order or a REST status."""
    order = payload.get("order")
    if not isinstance(order, Mapping):
        return None
    deadline = payload.get("deadline")
    try:
        return OrderInfo(
            order_hash=order_hash,
            maker=str(order["maker"]),
            receiver=str(order.get("receiver", "")),
            maker_asset=str(order["makerAsset"]),
            taker_asset=str(order["takerAsset"]),
            making_amount=_as_int(order["makingAmount"]),
            taking_amount=_as_int(order["takingAmount"]),
            deadline=deadline if isinstance(deadline, str) else None,
            remaining_maker_amount=int_or_none(payload.get("remainingMakerAmount")),
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class RestStatus:
    """The parts of ``GET …/order/status/{hash}`` (or of an orders-by-maker item) the feed uses."""

    status: str
    info: OrderInfo | None
    remaining: int | None

    @classmethod
    def parse(
        cls, order_hash: str, body: Mapping[str, Any], maker: str | None = None
    ) -> Self | None:
        """``maker`` (the listed maker) reads an orders-by-maker item's flat fields."""
        status = body.get("status")
        if not isinstance(status, str):
            return None
        remaining = int_or_none(body.get("remainingMakerAmount"))
        info = order_info(order_hash, body)
        if info is None and maker is not None:
            info = listed_info(order_hash, maker, body)
        fills = body.get("fills")
        if remaining is None and info is not None and isinstance(fills, list):
            filled = sum(
                int_or_none(f.get("filledMakerAmount")) or 0 for f in fills if isinstance(f, dict)
            )
            remaining = max(info.making_amount - filled, 0)
        if info is not None and remaining is not None:
            info = replace(info, remaining_maker_amount=remaining)
        return cls(status=status, info=info, remaining=remaining)


@dataclass(frozen=True, slots=True)
class Listed:
    """One usable item of ``GET …/order/maker/{address}``."""

    order_hash: str
    created_at: str | None
    created_ms: int | None
    found: RestStatus

    @classmethod
    def parse(cls, maker: str, item: Any) -> Self | None:
        if not isinstance(item, dict):
            return None
        order_hash = item.get("orderHash")
        if not isinstance(order_hash, str) or not ORDER_HASH.fullmatch(order_hash):
            return None
        found = RestStatus.parse(order_hash, item, maker)
        if found is None or found.info is None:
            return None
        created = item.get("createdAt")
        return cls(
            order_hash=order_hash,
            created_at=created if isinstance(created, str) else None,
            created_ms=_created_ms(created),
            found=found,
        )
