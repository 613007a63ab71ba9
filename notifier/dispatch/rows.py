"""Outbox rows as Python sees them: ``NewRow``, what ``Outbox.add`` inserts, and ``OutboxRow``,
a row read back (its per-channel retry times decoded)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast

if TYPE_CHECKING:
    from notifier.notification import Notification, Severity

__all__ = [
    "COLUMNS",
    "KEEP_FINISHED",
    "Kind",
    "NewRow",
    "OutboxRow",
    "State",
    "dump",
    "retry_times",
]

KEEP_FINISHED = 7 * 86400.0

Kind = Literal["rule", "digest", "error"]
State = Literal["pending", "sent", "digested", "dead"]

COLUMNS = (
    "id, key, kind, rule_id, title, body, severity, tags, route, attempts, first_attempt_at,"
    " next_attempt_at, done_channels, retry_channels, digest_tag, digest_open, enqueued_at, state"
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    key: str
    kind: Kind
    rule_id: str
    title: str
    body: str
    severity: Severity
    tags: tuple[str, ...]
    route: tuple[str, ...] | None
    attempts: int
    first_attempt_at: float | None
    next_attempt_at: float
    done: frozenset[str]
    retry: frozenset[str] | None
    digest_tag: str | None
    digest_open: bool
    enqueued_at: float
    # Per channel that failed: when it may be tried again and how often it failed
    # (``retry`` holds the same keys).
    retry_at: Mapping[str, float] = field(default_factory=dict)
    failures: Mapping[str, int] = field(default_factory=dict)
    state: State = "pending"

    @classmethod
    def from_db(cls, r: sqlite3.Row | tuple[object, ...]) -> OutboxRow:
        route = cast("str | None", r[8])
        retry = retry_times(cast("str | None", r[13]), cast(float, r[11]))
        return cls(
            id=cast(int, r[0]),
            key=cast(str, r[1]),
            kind=cast(Kind, r[2]),
            rule_id=cast(str, r[3]),
            title=cast(str, r[4]),
            body=cast(str, r[5]),
            severity=cast("Severity", r[6]),
            tags=tuple(json.loads(cast(str, r[7]))),
            route=None if route is None else tuple(json.loads(route)),
            attempts=cast(int, r[9]),
            first_attempt_at=cast("float | None", r[10]),
            next_attempt_at=cast(float, r[11]),
            done=frozenset(json.loads(cast(str, r[12]))),
            retry=None if retry is None else frozenset(retry),
            digest_tag=cast("str | None", r[14]),
            digest_open=bool(r[15]),
            enqueued_at=cast(float, r[16]),
            retry_at={k: at for k, (at, _) in (retry or {}).items()},
            failures={k: n for k, (_, n) in (retry or {}).items()},
            state=cast(State, r[17]),
        )


def retry_times(stored: str | None, next_attempt_at: float) -> dict[str, tuple[float, int]] | None:
    """``retry_channels``: a JSON object {channel key: [when to retry, failures]}; rows
    written by a whole-row retry hold a list of keys, all due at ``next_attempt_at``."""
    if stored is None:
        return None
    loaded = json.loads(stored)
    if isinstance(loaded, dict):
        return {str(k): (float(at), int(n)) for k, (at, n) in loaded.items()}
    return dict.fromkeys(map(str, loaded), (next_attempt_at, 1))


@dataclass(frozen=True, slots=True)
class NewRow:
    """What ``Outbox.add`` inserts."""

    key: str
    kind: Kind
    rule_id: str
    title: str
    body: str
    severity: Severity
    tags: tuple[str, ...]
    created_at: float
    event_at: float | None = None
    alert_key: str | None = None
    transition: str | None = None
    episode: float | None = None
    source: str | None = None

    @classmethod
    def error(
        cls, key: str, title: str, body: str, tags: Iterable[str], created_at: float
    ) -> NewRow:
        """The row of a message to the ``errors_to`` tags, deduplicated on ``key``."""
        return cls(
            key=f"error:{key}",
            kind="error",
            rule_id="notifier",
            title=title,
            body=body,
            severity="failure",
            tags=tuple(tags),
            created_at=created_at,
        )

    @classmethod
    def of(cls, n: Notification) -> NewRow:
        """The row of a rule's notification."""
        return cls(
            key=n.key,
            kind="rule",
            rule_id=n.rule_id,
            title=n.title,
            body=n.body,
            severity=n.severity,
            tags=tuple(n.tags),
            created_at=n.created_at,
            event_at=n.event_at,
            alert_key=n.alert_key,
            transition=n.transition,
            episode=n.episode,
            source=n.source,
        )

    def written(self, row_id: int, route: tuple[str, ...], now: float) -> OutboxRow:
        """The row ``Outbox.add`` wrote at ``now`` as ``row_id`` and the rate limit routed to
        ``route``, as ``Outbox.get`` would read it back in the same transaction."""
        return OutboxRow(
            id=row_id,
            key=self.key,
            kind=self.kind,
            rule_id=self.rule_id,
            title=self.title,
            body=self.body,
            severity=self.severity,
            tags=self.tags,
            route=tuple(sorted(route)),
            attempts=0,
            first_attempt_at=None,
            next_attempt_at=now,
            done=frozenset(),
            retry=None,
            digest_tag=None,
            digest_open=False,
            enqueued_at=now,
        )


def dump(values: Iterable[str]) -> str:
    return json.dumps(sorted(values))
