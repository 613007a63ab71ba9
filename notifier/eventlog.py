"""The event log: ``notifier run --record`` writes it, ``notifier replay`` reads it.

The JSON-lines format, one event per line (``at`` is unix seconds)::

    {"at": 1700000000.0, "type": "quote", "in": "<mint>", "out": "<mint>", "amount": "1000000000",
     "exact_in": true, "amount_out": "201500000", "price_impact_bps": 3, "hops": 1, "slot": 1}
    {"at": …, "type": "order", "chain": 1, "event": "order_filled", "order_hash": "0x…",
     "result": {…wire payload…}, "order": {"order_hash": "0x…", "maker": "0x…",
     "receiver": "0x…", "maker_asset": "0x…", "taker_asset": "0x…", "making_amount": "<int>",
     "taking_amount": "<int>", "deadline": … | null, "remaining_maker_amount": "<int>" | null}
     | null, "reconciled": false}
    {"at": …, "type": "intent", "intent_id": "…", "status": "Expired",
     "previous_status": "Deposited",
     "label": null, "fields": {…}, "swap_metadata": {…} | null, "created_at": 1699990000.0}
    {"at": …, "type": "feed", "feed": "quote", "up": false, "detail": "connection lost"}
    {"at": …, "type": "tick"}          # only advances the clock (fires due timers)

Amounts are decimal strings (wei exceed 64 bits); integers are accepted too.
``notifier run --record FILE`` writes exactly this format.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import orjson

from notifier.events import Event, FeedEvent, IntentEvent, OrderEvent, OrderInfo, QuoteEvent

__all__ = ["event_from_json", "event_to_json"]


FEEDS = frozenset({"order", "quote", "intent"})
ORDER_AMOUNTS = ("making_amount", "taking_amount", "remaining_maker_amount")


def event_to_json(event: Event) -> bytes:
    if isinstance(event, QuoteEvent):
        data: dict[str, Any] = {
            "at": event.at, "type": "quote", "in": event.pair[0], "out": event.pair[1],
            "amount": event.pair[2], "exact_in": event.pair[3],
            "amount_out": str(event.amount_out), "price_impact_bps": event.price_impact_bps,
            "hops": event.hops, "slot": event.slot,
        }  # fmt: skip
    elif isinstance(event, OrderEvent):
        data = {
            "at": event.at, "type": "order", "chain": event.chain, "event": event.event,
            "order_hash": event.order_hash, "result": dict(event.result),
            "order": _order_to_json(event.order) if event.order else None,
            "reconciled": event.reconciled,
        }  # fmt: skip
    elif isinstance(event, IntentEvent):
        data = {
            "at": event.at, "type": "intent", "intent_id": event.intent_id,
            "status": event.status, "previous_status": event.previous_status,
            "label": event.label, "fields": dict(event.fields),
            "swap_metadata": dict(event.swap_metadata) if event.swap_metadata else None,
            "created_at": event.created_at,
        }  # fmt: skip
    else:
        data = {"at": event.at, "type": "feed", "feed": event.feed, "up": event.up,
                "detail": event.detail}  # fmt: skip
    try:
        return orjson.dumps(data, default=str)
    except TypeError:  # an integer beyond 64 bits somewhere in the wire payload
        return orjson.dumps(_big_ints_as_strings(data), default=str)


def _order_to_json(order: OrderInfo) -> dict[str, Any]:
    """Amounts as strings: wei amounts exceed 64 bits, which JSON readers round."""
    data = dataclasses.asdict(order)
    for name in ORDER_AMOUNTS:
        if data[name] is not None:
            data[name] = str(data[name])
    return data


def _big_ints_as_strings(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _big_ints_as_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_big_ints_as_strings(v) for v in value]
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return str(value)
    return value


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = data.get(key)
    if value is not None and not isinstance(value, Mapping):
        raise TypeError(f"{key!r} must be an object or null")
    return value


def _flag(data: Mapping[str, Any], key: str, default: bool | None = None) -> bool:
    value = data[key] if default is None else data.get(key, default)
    if not isinstance(value, bool):
        raise TypeError(f"{key!r} must be true or false")
    return value


def event_from_json(data: Any) -> Event | float:
    """An event, or a bare timestamp for ``{"type": "tick"}``."""
    if not isinstance(data, Mapping):
        raise TypeError("a line must be a JSON object")
    at = float(data["at"])
    if not math.isfinite(at):
        raise ValueError("'at' must be a finite number of seconds")
    kind = data.get("type")
    if kind == "tick":
        return at
    if kind == "quote":
        pair = (
            str(data["in"]),
            str(data["out"]),
            str(data["amount"]),
            _flag(data, "exact_in", True),
        )
        return QuoteEvent(pair, int(data["amount_out"]), int(data.get("price_impact_bps", 0)),
                          int(data.get("hops", 1)), int(data.get("slot", 0)), at)  # fmt: skip
    if kind == "order":
        order = _mapping(data, "order")
        info = None
        if order:
            fields = {f.name for f in dataclasses.fields(OrderInfo)}
            known = {k: v for k, v in order.items() if k in fields}
            for name in ORDER_AMOUNTS:
                if known.get(name) is not None:
                    known[name] = int(known[name])
            info = OrderInfo(**known)
        return OrderEvent(int(data["chain"]), str(data["event"]), str(data["order_hash"]),
                          dict(_mapping(data, "result") or {}), info, at,
                          _flag(data, "reconciled", False))  # fmt: skip
    if kind == "intent":
        created = data.get("created_at")
        return IntentEvent(
            str(data["intent_id"]), str(data["status"]), data.get("previous_status"),
            data.get("label"), dict(_mapping(data, "fields") or {}),
            _mapping(data, "swap_metadata"),
            float(created) if created is not None else None, at,
        )  # fmt: skip
    if kind == "feed":
        if data["feed"] not in FEEDS:
            raise ValueError(f"unknown feed {data['feed']!r}; expected order, quote or intent")
        return FeedEvent(data["feed"], _flag(data, "up"), str(data.get("detail", "")), at)
    raise ValueError(f"unknown event type {kind!r}")
