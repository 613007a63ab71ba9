"""1inch Fusion orders (UPSTREAMS §1): the ``OrderFeed`` source and its parts.

``wire`` reads the EVM payloads and REST statuses, ``store`` keeps the order cache and sync
watermarks, ``rest`` looks orders up, ``reconcile`` catches a chain up after a (re)connect and
on start, and ``feed`` runs one websocket per chain through the shared ``WebSocketLink``.
Solana (§1.7, chain 501) is ``solana`` (run by the feed beside the EVM chains), with its wire
(``solana_wire``) and catch-up (``solana_sync``); it shares the cache, REST plumbing, frame
reading (``frames``) and the socket loop.
"""

from __future__ import annotations

from notifier.sources.fusion.feed import SINCE_MARGIN, OrderFeed
from notifier.sources.fusion.store import CachedOrder, OrderCache, SyncMarks

__all__ = ["SINCE_MARGIN", "CachedOrder", "OrderCache", "OrderFeed", "SyncMarks"]
