"""The typed table of source kinds: the built-ins, joined by third-party kinds registered
under the ``notifier.sources`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points

from notifier.sources.base import Source
from notifier.sources.fusion import OrderFeed
from notifier.sources.intents import IntentPoller
from notifier.sources.quotes import QuoteStream

__all__ = ["ENTRY_POINT_GROUP", "SOURCES", "load_plugins"]

ENTRY_POINT_GROUP = "notifier.sources"

SOURCES: dict[str, type[Source]] = {
    "quote": QuoteStream,
    "order": OrderFeed,
    "intent": IntentPoller,
}


def load_plugins(table: dict[str, type[Source]] | None = None) -> list[str]:
    """Add the sources registered under ``notifier.sources`` to ``table`` (default ``SOURCES``).

    A plugin that fails to import, is not a class, or takes a name already in the table is
    skipped, so it cannot take the built-in feeds down with it; every such problem is returned
    as one message for the caller to report.
    """
    target = SOURCES if table is None else table
    problems: list[str] = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        where = f"{entry.name} ({entry.value})"
        if entry.name in target:
            problems.append(f"{where}: name already taken, plugin ignored")
            continue
        try:
            loaded = entry.load()
        except Exception as exc:
            problems.append(f"{where}: failed to load: {type(exc).__name__}: {exc}")
            continue
        if not isinstance(loaded, type):
            problems.append(f"{where}: not a class, plugin ignored")
            continue
        target[entry.name] = loaded
    return problems
