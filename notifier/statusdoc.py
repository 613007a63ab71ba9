"""The status document's parts (shape in ``notifier.ctl``), built from the daemon's pieces:
JSON-ready, times as RFC 3339 strings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from notifier.rules import FileReport
from notifier.sources import FeedStatus
from notifier.timestamps import rfc3339

__all__ = ["alerts_json", "feed_json", "intents_json", "rule_files_json"]


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


def intents_json(poller: Any) -> dict[str, Any]:
    """The optional ``intents``: what the intent feed polls (nothing when it is disabled)."""
    if poller is None:
        return {}
    return {
        "intents": [
            {"id": t.intent_id, "label": t.label, "status": t.status} for t in poller.tracked()
        ]
    }
