"""Reading Fusion websocket frames, EVM and Solana alike: the ``{event, result}`` envelope of
an order event, RPC answers, and what is skipped (counted and logged, never fatal)."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import orjson

from notifier.logthrottle import LogLimiter
from notifier.sources.base import FeedHealth

__all__ = ["MAX_UNKNOWN_EVENTS", "FrameReader"]

MAX_UNKNOWN_EVENTS = 64  # unknown event names logged once each; more are only counted


class FrameReader:
    """Turns a frame into ``(event name, order hash, result)`` or explains why it cannot."""

    def __init__(self, names: Collection[str], health: FeedHealth, log: logging.Logger) -> None:
        self._names = names
        self._health = health
        self._log = log
        self._limited = LogLimiter(log)
        self._unknown: set[str] = set()

    def read(self, chain: int, data: str | bytes) -> tuple[str, str, dict[str, Any]] | None:
        """The order event in ``data``; None for an RPC answer or a frame that was skipped."""
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.malformed(chain, "not JSON", data)
            return None
        if not isinstance(frame, dict):
            self.malformed(chain, "not an object", data)
            return None
        if "event" in frame:
            name = frame["event"]
            # types.ts and every fixture say ``result``; the EVM README says ``data``.
            payload = frame.get("result", frame.get("data"))
            if not isinstance(name, str) or not isinstance(payload, dict):
                self.malformed(chain, "event without an object result", data)
            elif name not in self._names:
                self.unknown(chain, name)
            elif not isinstance(payload.get("orderHash"), str) or not payload["orderHash"]:
                self.malformed(chain, f"{name} without orderHash", data)
            else:
                return name, payload["orderHash"], payload
        elif isinstance(frame.get("method"), str):
            self._log.debug("order feed chain %d: RPC response to %s", chain, frame["method"])
        else:
            self.malformed(chain, "neither event nor method", data)
        return None

    def unknown(self, chain: int, name: str) -> None:
        self._health.malformed()
        if name not in self._unknown and len(self._unknown) < MAX_UNKNOWN_EVENTS:
            self._unknown.add(name)
            self._log.warning("order feed chain %d: skipping unknown event %.100r", chain, name)

    def malformed(self, chain: int, why: str, data: str | bytes) -> None:
        self._health.malformed()
        self._limited.warning(
            f"malformed {chain}",
            "order feed chain %d: skipped malformed frame (%s): %.200r",
            chain,
            why,
            data,
        )
