"""Sources: clients of the upstreams that turn wire frames into events for the rule engine.

Built-in kinds live in the typed table ``SOURCES`` (``registry``); third-party kinds join that
same table through the ``notifier.sources`` entry-point group (``load_plugins``). What every
source shares is in ``base``.
"""

from __future__ import annotations

from notifier.sources.base import FeedHealth, FeedStatus, Source, SourceContext, describe_error
from notifier.sources.fusion import OrderFeed
from notifier.sources.intents import IntentPoller
from notifier.sources.quotes import QuoteStream
from notifier.sources.registry import ENTRY_POINT_GROUP, SOURCES, load_plugins

__all__ = [
    "ENTRY_POINT_GROUP",
    "SOURCES",
    "FeedHealth",
    "FeedStatus",
    "IntentPoller",
    "OrderFeed",
    "QuoteStream",
    "Source",
    "SourceContext",
    "describe_error",
    "load_plugins",
]
