"""``GET /api/v1/notifications``: recent outbox rows, each with its channels (tags) and
each channel's delivery state: ``queued``, ``sent``, ``retrying`` (with ``next_attempt``),
``dead``, ``silenced`` or ``held``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from notifier.dispatch.channels import Channels
from notifier.timestamps import rfc3339

if TYPE_CHECKING:
    from notifier.store import Store

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "recent_notifications"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

_NAMES = (
    "id", "kind", "rule_id", "alert_key", "transition", "title", "severity", "tags", "route",
    "state", "created_at", "finished_at", "done_channels", "retry_channels", "next_attempt_at",
    "withheld", "withheld_by", "held_channels", "digest_tag", "last_error",
)  # fmt: skip
_COLUMNS = ", ".join(_NAMES)


def recent_notifications(
    store: Store, channels: Channels, limit: int = DEFAULT_LIMIT
) -> list[dict[str, Any]]:
    """The ``limit`` newest rows, newest first (titles as enqueued; no URL, no secret)."""
    rows = store.read(f"SELECT {_COLUMNS} FROM outbox ORDER BY id DESC LIMIT ?", (limit,))
    return [_one(row, channels) for row in rows]


def _one(r: tuple[Any, ...], channels: Channels) -> dict[str, Any]:
    doc = dict(zip(_NAMES, r, strict=True))
    retry_at = _retry_times(doc["retry_channels"], doc["next_attempt_at"])
    route = doc["route"]
    facts = _Facts(
        state=doc["state"],
        withheld=doc["withheld"],
        done=set(json.loads(doc["done_channels"] or "[]")),
        held=set(json.loads(doc["held_channels"] or "[]")),
        retry_at=retry_at,
        routed=None if route is None else set(json.loads(route)),
    )
    out = []
    for tag in json.loads(doc["tags"]) or ["all"]:
        keys = {c.key for c in channels.select([] if tag == "all" else [tag])}
        entry: dict[str, Any] = {"tag": tag, "state": facts.state_of(tag, keys)}
        if entry["state"] == "retrying":
            entry["next_attempt"] = rfc3339(min(retry_at[k] for k in keys if k in retry_at))
        out.append(entry)
    return {
        "id": doc["id"],
        "kind": doc["kind"],
        "rule": doc["rule_id"],
        "key": doc["alert_key"],
        "transition": doc["transition"],
        "title": doc["title"],
        "severity": doc["severity"],
        "state": doc["state"],
        "withheld": doc["withheld"],
        "withheld_by": doc["withheld_by"],
        "digest": doc["digest_tag"],
        "created_at": rfc3339(doc["created_at"]),
        "finished_at": rfc3339(doc["finished_at"]),
        "last_error": doc["last_error"],
        "channels": out,
    }


@dataclass(frozen=True, slots=True)
class _Facts:
    state: str
    withheld: str | None
    done: set[str]
    held: set[str]
    retry_at: dict[str, float]
    routed: set[str] | None  # tags admitted by the rate limit; None = not decided yet

    def state_of(self, tag: str, keys: set[str]) -> str:
        """One tag's state: its channels' answers, or why the row did not reach them."""
        digested = self.routed is not None and tag != "all" and tag not in self.routed
        if self.withheld == "silenced":
            found = "silenced"
        elif self.withheld == "held" or self.state == "digested" or digested:
            found = "held"  # for a digest: quiet hours, or the rate limit
        elif keys and keys <= self.held:
            found = "held"
        elif (keys and keys <= self.done) or self.state == "sent":
            found = "sent"
        elif self.state == "dead":
            found = "dead"
        elif keys & set(self.retry_at):
            found = "retrying"
        else:
            found = "queued"
        return found


def _retry_times(stored: str | None, next_at: float) -> dict[str, float]:
    if stored is None:
        return {}
    loaded = json.loads(stored)
    if isinstance(loaded, dict):
        return {str(k): float(v[0]) for k, v in loaded.items()}
    return dict.fromkeys(map(str, loaded), float(next_at))
