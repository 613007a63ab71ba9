"""The status document's parts (shape in ``notifier.ctl``), built from the daemon's pieces:
JSON-ready, times as RFC 3339 strings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from notifier.durations import format_duration
from notifier.events import PairKey
from notifier.history.book import HistoryBook
from notifier.rules import FileReport
from notifier.rules.ruleset import RuleSet
from notifier.sources import FeedStatus
from notifier.timestamps import rfc3339

__all__ = [
    "alerts_json",
    "feed_json",
    "intents_json",
    "pairs_json",
    "rule_files_json",
    "rules_json",
]


def feed_json(status: FeedStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "up": status.up,
        "detail": status.detail,
        "connections": status.connections,
        "reconnects": status.reconnects,
        "errors": status.errors,
        "last_event_at": rfc3339(status.last_event_at),
        "tracked": status.tracked,
    }


def rule_files_json(
    files: Iterable[FileReport], disabled: Mapping[str, list[str]]
) -> list[dict[str, Any]]:
    """Each rule file with its errors; ``disabled`` adds, per path, the located errors of
    rules disabled for exceeding their budget."""
    return [
        {
            "path": f.path,
            "rules": list(f.rules),
            "error_count": len(f.errors) + len(disabled.get(f.path, ())),
            "loaded": f.loaded,
            "errors": [str(e) for e in f.errors] + disabled.get(f.path, []),
        }
        for f in files
    ]


def alerts_json(alerts: Iterable[Mapping[str, Any]], state: str | None = None) -> list[Any]:
    """Firing and pending alerts, or only those in ``state``."""
    return [
        {**alert, "since": rfc3339(alert.get("since")), "due": rfc3339(alert.get("due"))}
        for alert in alerts
        if state is None or alert["state"] == state
    ]


def rules_json(
    rules: RuleSet, rules_dir: Path, files: Iterable[FileReport], disabled: dict[str, list[str]]
) -> dict[str, Any]:
    """The ``rules`` part of the status: how many run, and each file's outcome."""
    return {
        "loaded": len(rules.rules),
        "dir": str(rules_dir),
        "files": rule_files_json(files, disabled),
    }


def pairs_json(book: HistoryBook, windows: Iterable[tuple[PairKey, float]]) -> list[Any]:
    """Every pair the rules watch or read, with its price and how far its history reaches."""
    read: dict[PairKey, list[float]] = {}
    for pair, window in windows:
        read.setdefault(pair, []).append(window)
    return [
        {
            "pair": pricing.name,
            "key": f"{pair[0]}|{pair[1]}|{pair[2]}|{int(pair[3])}",
            "price": book.price(pair),
            "history_since": rfc3339(
                series.first_at if (series := book.series.get(pair)) else None
            ),
            "windows": [format_duration(w) for w in sorted(read.get(pair, []))],
        }
        for pair, pricing in sorted(book.pricing.items(), key=lambda item: item[1].name)
    ]


def intents_json(poller: Any) -> dict[str, Any]:
    """The optional ``intents``: what the intent feed polls (nothing when it is disabled)."""
    if poller is None:
        return {}
    return {
        "intents": [
            {"id": t.intent_id, "label": t.label, "status": t.status} for t in poller.tracked()
        ]
    }
