"""The Changelly intent status response (UPSTREAMS §3), parsed strictly: flat and nested
shapes, amounts as bounded integers or decimals, ``Retry-After`` in seconds or as an HTTP date.
Anything unusable is a ``MalformedResponse``, which the poller backs off on."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Self

from notifier.timestamps import parse_iso

__all__ = [
    "MAX_BODY",
    "IntentResponse",
    "MalformedResponse",
    "parse_retry_after",
]

MAX_RETRY_AFTER = 3600.0
MAX_BODY = 1 << 20  # a status response is ~1 KB; a bigger one is refused unread
MAX_STATUS = 64  # characters
# Amounts: lots are integers of at most 78 digits (2**256 has 78); the nested shape's human
# amounts are decimals of at most 78 digits each side, and ``decimals`` stays within that.
_LOTS = re.compile(r"[0-9]{1,78}")
_DECIMAL = re.compile(r"([0-9]{1,78})(?:\.([0-9]{1,78}))?")
MAX_DECIMALS = 78


class MalformedResponse(ValueError):
    """A 200 body that is not a usable intent status; the message says why."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    wait = when.timestamp() - (time.time() if now is None else now)
    return min(max(wait, 0.0), MAX_RETRY_AFTER)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}… ({len(text)} characters)"


def _check_lots(key: str, value: Any) -> None:
    """Lots are a digit string (or a JSON integer) of bounded length, or null."""
    if value is None or (type(value) is int and value >= 0):
        return
    if not isinstance(value, str) or not _LOTS.fullmatch(value):
        raise MalformedResponse(f"{key} is not an integer amount: {_shown(value)}")


def _lots(key: str, amount: Any, decimals: Any) -> str | None:
    """A human decimal amount as integer base units when it is exact; exact string arithmetic,
    so no precision, exponent or infinity ever enters."""
    if amount is None:
        return None
    text = str(amount) if type(amount) is int else amount
    match = _DECIMAL.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise MalformedResponse(f"{key} is not a decimal amount: {_shown(amount)}")
    if isinstance(decimals, bool) or not isinstance(decimals, int):
        return None
    if not 0 <= decimals <= MAX_DECIMALS:
        raise MalformedResponse(f"decimals out of range: {_shown(decimals)}")
    whole, fraction = match.group(1), (match.group(2) or "").rstrip("0")
    if len(fraction) > decimals:
        return None
    return str(int(whole + fraction.ljust(decimals, "0")))


@dataclass(frozen=True, slots=True)
class IntentResponse:
    """One intent status response, normalised to the flat (defi-execution) field names."""

    status: str
    fields: dict[str, Any]
    swap_metadata: Mapping[str, Any] | None
    created_at: float | None

    @classmethod
    def parse(cls, body: Any) -> Self:
        """Accept the flat shape and the nested ``from``/``to`` shape; ``MalformedResponse``
        says why a body is neither."""
        if not isinstance(body, dict):
            raise MalformedResponse(f"not an object but {type(body).__name__}")
        status = body.get("status")
        if not isinstance(status, str) or not status or len(status) > MAX_STATUS:
            raise MalformedResponse(f"no usable status: {_shown(status)}")
        fields: dict[str, Any] = {}
        for key, value in body.items():
            if key == "swap_metadata":
                continue
            if key in ("from", "to") and isinstance(value, dict):
                fields.update(_flatten_side(key, value))
            else:
                if key.endswith("_amount_lots"):
                    _check_lots(key, value)
                fields[key] = value
        meta = body.get("swap_metadata")
        metadata = meta if isinstance(meta, dict) else None
        created = parse_iso((metadata or {}).get("created_at")) or parse_iso(body.get("created_at"))
        return cls(status=status, fields=fields, swap_metadata=metadata, created_at=created)


def _flatten_side(side: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """``from: {network_id, amount, decimals…}`` -> ``from_network_id``, ``from_amount_lots``…"""
    flat = {f"{side}_{key}": value for key, value in data.items()}
    if "contract_address" in data:
        flat.setdefault(f"{side}_token", data["contract_address"])
    decimals = data.get("decimals")
    for source, target in (
        ("amount", "amount_lots"),
        ("min_amount", "min_amount_lots"),
        ("max_amount", "max_amount_lots"),
    ):
        lots = _lots(f"{side}.{source}", data.get(source), decimals)
        if lots is not None:
            flat.setdefault(f"{side}_{target}", lots)
    return flat
