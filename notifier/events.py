"""What sources hand to the rule engine: typed, immutable events.

Sources parse wire frames into these; nothing downstream sees raw protocol JSON except through
the ``result``/``fields`` mappings kept for rule variables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import msgspec

__all__ = [
    "FINAL_ORDER_EVENTS",
    "INTENT_STATUSES",
    "ORDER_EVENTS",
    "SOLANA_CHAIN",
    "TERMINAL_INTENT_STATUSES",
    "Event",
    "EventSink",
    "FeedEvent",
    "FeedName",
    "IntentEvent",
    "Interest",
    "OrderEvent",
    "OrderInfo",
    "PairKey",
    "QuoteEvent",
    "validate_intent_id",
]

FeedName = Literal["order", "quote", "intent"]

# (input mint, output mint, amount in smallest units as the wire string, exactIn)
PairKey = tuple[str, str, str, bool]

# 1inch Fusion order events (UPSTREAMS §1.4), in the SDK's order.
ORDER_EVENTS = (
    "order_created",
    "order_invalid",
    "order_balance_or_allowance_change",
    "order_filled",
    "order_filled_partially",
    "order_cancelled",
)
FINAL_ORDER_EVENTS = frozenset({"order_filled", "order_cancelled", "order_invalid"})
SOLANA_CHAIN = 501  # Fusion's Solana "chain" (UPSTREAMS §1.7); every other chain id is EVM

# Changelly intent statuses (UPSTREAMS §3); polling stops at a terminal one.
INTENT_STATUSES = (
    "Created",
    "Approved",
    "Verified",
    "Failed",
    "Deposited",
    "Finished",
    "Expired",
    "Refunded",
)
TERMINAL_INTENT_STATUSES = frozenset({"Finished", "Failed", "Expired", "Refunded"})

INTENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def validate_intent_id(intent_id: str) -> str:
    """Return ``intent_id`` or raise ValueError naming the allowed form."""
    if INTENT_ID_RE.fullmatch(intent_id):
        return intent_id
    shown = intent_id if len(intent_id) <= 64 else intent_id[:64] + "…"
    raise ValueError(
        f"invalid intent id {shown!r}: use 1 to 128 characters from A-Z a-z 0-9 _ -, "
        "starting with a letter or digit"
    )


class QuoteEvent(msgspec.Struct, frozen=True, gc=False):
    """One Argyros quote push for a subscribed pair.

    A msgspec struct rather than a frozen dataclass: one is built per quote frame, and a
    struct is built in a tenth of the time (same fields, equality, hashing and immutability).
    """

    pair: PairKey
    amount_out: int
    price_impact_bps: int
    hops: int
    slot: int
    at: float  # wall-clock time the frame was received (time.time())


@dataclass(frozen=True, slots=True)
class OrderInfo:
    """What is known of a Fusion order, from ``order_created`` or a REST look-up."""

    order_hash: str
    maker: str
    receiver: str
    maker_asset: str
    taker_asset: str
    making_amount: int
    taking_amount: int
    deadline: str | None = None
    remaining_maker_amount: int | None = None


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One Fusion order event; ``order`` is filled in from the order cache when known."""

    chain: int
    event: str
    order_hash: str
    result: Mapping[str, Any]
    order: OrderInfo | None
    at: float
    reconciled: bool = False  # synthesised from REST after a reconnect, not pushed live

    @property
    def remaining_maker_amount(self) -> int | None:
        raw = self.result.get("remainingMakerAmount")
        if raw is not None:
            try:
                return int(raw)
            except (TypeError, ValueError):
                return None
        return self.order.remaining_maker_amount if self.order else None

    @property
    def event_key(self) -> str:
        """Distinct per event: a second partial fill differs by its remaining amount."""
        remaining = self.remaining_maker_amount
        return f"{self.order_hash}:{self.event}:{'' if remaining is None else remaining}"


@dataclass(frozen=True, slots=True)
class IntentEvent:
    """A Changelly intent as last polled; emitted when its status changes (or first seen)."""

    intent_id: str
    status: str
    previous_status: str | None
    label: str | None
    fields: Mapping[str, Any]  # flat response fields (``from_amount_lots``, ``to_network_id``…)
    swap_metadata: Mapping[str, Any] | None
    created_at: float | None  # unix seconds, from swap_metadata.created_at
    at: float

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_INTENT_STATUSES


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """A feed's health changed: connected / disconnected or failing."""

    feed: FeedName
    up: bool
    detail: str
    at: float


Event = QuoteEvent | OrderEvent | IntentEvent | FeedEvent


@dataclass(frozen=True, slots=True)
class Interest:
    """What the loaded rules need from the sources; recomputed on every reload."""

    pairs: frozenset[PairKey] = frozenset()
    intents: frozenset[str] = frozenset()
    makers: frozenset[str] = frozenset()  # by ``tokens.address_key``; empty = any maker
    chains: frozenset[int] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)  # intent id -> label


class EventSink(Protocol):
    """Where sources put events. ``emit`` never blocks: a source's reader must stay fast."""

    def emit(self, event: Event) -> None: ...
