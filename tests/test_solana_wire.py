"""The Solana Fusion wire read from the solana-fusion-sdk's own fixtures and types
(``src/ws-api/ws.spec.ts``, ``src/ws-api/types.ts``, ``src/api/orders/types.ts`` @ afe6f2a)."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from notifier.metrics import Metrics
from notifier.sources.base import FeedHealth
from notifier.sources.fusion.frames import FrameReader
from notifier.sources.fusion.solana_wire import (
    SOLANA_EVENTS,
    STATUS_OPEN,
    SolanaStatus,
    TxEvent,
    active_order,
    expiration_seconds,
    expires_at,
)
from notifier.timestamps import parse_iso
from tests.support import Collector

# ws.spec.ts "can subscribe to order events": message1, byte for byte.
SDK_CREATE: dict[str, Any] = {
    "event": "create",
    "result": {
        "transactionSignature": "552R8GxcRyabBGr2inXi8v8VeByRvNghW4obXvXmbTJoy6sLdSNEwFVGcYjiZ"
        "NpBL1CzqigR1bi31yPXxhq7f3Np",
        "slotNumber": 100500,
        "blockTime": 100500,
        "action": "create",
        "commitment": "finalized",
        "orderHash": "Cd7Y1XCsqtd8JGcjecgHHatKtkqyEGkr1h4TCsur14Ki",
        "maker": "49HbHjsigfRLhWriKTse77Bw7UPaMN29dGCxM2BfgfVz",
        "order": {
            "id": 0,
            "fee": {
                "protocolFee": 0,
                "integratorFee": 0,
                "protocolDstAta": None,
                "integratorDstAta": None,
                "surplusPercentage": 0,
                "maxCancellationPremium": "1",
            },
            "dstMint": "So11111111111111111111111111111111111111112",
            "srcMint": "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB",
            "receiver": "49HbHjsigfRLhWriKTse77Bw7UPaMN29dGCxM2BfgfVz",
            "srcAmount": "1200000",
            "minDstAmount": "6729670",
            "expirationTime": 1742228896,
            "srcAssetIsNative": True,
            "dstAssetIsNative": False,
            "dutchAuctionData": {
                "duration": 24,
                "startTime": 1742228860,
                "initialRateBump": 7039,
                "pointsAndTimeDeltas": [],
            },
            "estimatedDstAmount": "6729670",
            "cancellationAuctionDuration": 1,
        },
        "filledAuctionTakerAmount": "12470402",
        "filledMakerAmount": "100000000",
    },
}

# types.ts FillOrderEventPayload / CancelOrderEventPayload, with the create's values.
SDK_FILL = {
    **{k: v for k, v in SDK_CREATE["result"].items() if k != "order"},
    "action": "fill",
    "resolver": "3k2mxMbnXh6ZWtGcKj7VWoGsJGf3Ykq3NcX1ZWQX8Ti",
}
SDK_CANCEL = {k: v for k, v in SDK_FILL.items() if k != "resolver"} | {"action": "cancel"}

# orders/types.ts OrderStatusDTO @example (expirationTime 1634025600000 is milliseconds there).
SDK_STATUS: dict[str, Any] = {
    "maker": "6uJb1VeHBzupesBi6xM9Sh98JhhfmM1nvMTYHL8Pd26b",
    "orderHash": "GxXW4Bhtn1xuFRgzAUNyMnYyBJgzvBALNPontUdmpENm",
    "status": 0,
    "order": {
        "id": 1,
        "srcAmount": "100000000000000000",
        "minDstAmount": "100000000000000000",
        "estimatedDstAmount": "100000000000000000",
        "expirationTime": 1634025600000,
        "receiver": "6uJb1VeHBzupesBi6xM9Sh98JhhfmM1nvMTYHL8Pd26b",
        "srcAssetIsNative": True,
        "dstAssetIsNative": False,
        "fee": {
            "protocolFee": 5,
            "integratorFee": 3,
            "surplusPercentage": 2,
            "protocolDstAta": "string",
            "integratorDstAta": "string",
            "maxCancellationPremium": "string",
        },
        "dutchAuctionData": {
            "startTime": 1715000000,
            "duration": 300,
            "initialRateBump": 1,
            "pointsAndTimeDeltas": [{"rateBump": 1, "timeDelta": 30}],
        },
        "srcMint": "So11111111111111111111111111111111111111112",
        "dstMint": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
        "cancellationAuctionDuration": 1,
    },
    "approximateTakingAmount": "970000000",
    "cancelTx": "5zXYv1KwMkGgyZ8hA5QYpMjPsnvPiK7PXivJLBX9vhvB",
    "expirationTime": 1715000000,
    "fills": [
        {
            "txSignature": "41EYz9L7196ZYPY9V61u33Dhp6dpg7nY1pVexbxBs36xCQLo1fnxvFMBBpjXnkg3ET"
            "rz1jnjLPWYvzpu8xDkP39K",
            "filledMakerAmount": "100000000000000000",
            "filledAuctionTakerAmount": "100000000000000000",
        }
    ],
    "createdAt": 1715000000,
    "srcTokenPriceUsd": 100,
    "dstTokenPriceUsd": 200,
    "cancelable": False,
}


def test_the_sdk_create_fixture_reads_as_an_order() -> None:
    """The spec's ``create`` frame: base58 hash and maker kept exactly, srcMint → maker asset."""
    result = SDK_CREATE["result"]
    event = TxEvent.parse("create", result["orderHash"], result)
    assert event is not None
    assert event.info is not None
    info = event.info
    assert event.tx == result["transactionSignature"]
    assert info.order_hash == "Cd7Y1XCsqtd8JGcjecgHHatKtkqyEGkr1h4TCsur14Ki"
    assert info.maker == "49HbHjsigfRLhWriKTse77Bw7UPaMN29dGCxM2BfgfVz"
    assert (info.maker_asset, info.taker_asset) == (
        "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB",
        "So11111111111111111111111111111111111111112",
    )
    assert (info.making_amount, info.taking_amount) == (1_200_000, 6_729_670)
    assert expires_at(info) == 1742228896
    assert info.remaining_maker_amount == 1_200_000


def test_fill_and_cancel_payloads_of_the_sdk_types() -> None:
    """A fill carries its own amount and resolver; a cancel needs only a signature."""
    fill = TxEvent.parse("fill", SDK_FILL["orderHash"], SDK_FILL)
    cancel = TxEvent.parse("cancel", SDK_CANCEL["orderHash"], SDK_CANCEL)
    assert fill is not None
    assert fill.fill is not None
    assert (fill.fill.amount, fill.fill.taker_amount) == (100_000_000, 12_470_402)
    assert cancel is not None
    assert cancel.fill is None
    assert cancel.info is None
    assert TxEvent.parse("fill", "x", {**SDK_FILL, "filledMakerAmount": "0"}) is None
    unsigned = {k: v for k, v in SDK_FILL.items() if k != "transactionSignature"}
    assert TxEvent.parse("fill", "x", unsigned) is None
    assert TxEvent.parse("create", "x", {**SDK_FILL}) is None  # no order


def test_the_sdk_status_example_with_numeric_status_and_fills() -> None:
    """OrderStatusDTO: status 0, one fill by ``txSignature``, expirationTime in ms accepted."""
    found = SolanaStatus.parse(SDK_STATUS["orderHash"], SDK_STATUS)
    assert found is not None
    assert found.info is not None
    assert found.status == STATUS_OPEN
    assert [f.tx for f in found.fills] == [SDK_STATUS["fills"][0]["txSignature"]]
    assert found.cancel_tx == "5zXYv1KwMkGgyZ8hA5QYpMjPsnvPiK7PXivJLBX9vhvB"
    assert expires_at(found.info) == 1634025600
    assert SolanaStatus.parse("x", {**SDK_STATUS, "status": "0"}) is None  # numbers, not strings
    without = {**SDK_STATUS, "order": {**SDK_STATUS["order"]}}
    del without["order"]["expirationTime"]  # falls back to the top-level one
    fallback = SolanaStatus.parse("x", without)
    assert fallback is not None
    assert fallback.info is not None
    assert expires_at(fallback.info) == 1715000000


def test_active_order_items_carry_their_remaining_amount() -> None:
    """ActiveOrder = {orderHash, order, txSignature, maker, remainingMakerAmount}."""
    item = {
        "orderHash": SDK_CREATE["result"]["orderHash"],
        "order": SDK_CREATE["result"]["order"],
        "txSignature": SDK_CREATE["result"]["transactionSignature"],
        "maker": SDK_CREATE["result"]["maker"],
        "remainingMakerAmount": "700000",
    }
    info = active_order(item)
    assert info is not None
    assert info.remaining_maker_amount == 700_000
    assert active_order({**item, "orderHash": "../x"}) is None
    assert active_order({**item, "maker": None}) is None


def test_expiration_time_in_seconds_or_milliseconds() -> None:
    """A value above 10^12 is milliseconds; anything not a positive number is none."""
    assert expiration_seconds(1742228896) == 1742228896
    assert expiration_seconds(1742228896000) == 1742228896
    assert expiration_seconds("1742228896") == 1742228896
    for bad in (None, True, 0, -5, "soon", float("nan")):
        assert expiration_seconds(bad) is None
    assert parse_iso("2025-03-17T16:28:16Z") == 1742228896


def test_the_frame_reader_takes_only_solana_event_names() -> None:
    """EVM event names are unknown on the Solana socket, and the reverse."""
    health = FeedHealth("order", Collector(), Metrics())
    reader = FrameReader(SOLANA_EVENTS, health, logging.getLogger("test"))
    assert reader.read(501, orjson.dumps(SDK_CREATE)) is not None
    evm = {"event": "order_filled", "result": {"orderHash": "a"}}
    assert reader.read(501, orjson.dumps(evm)) is None
    assert reader.read(501, b'{"method": "getActiveOrders", "result": {}}') is None
    assert health.errors == 1
