"""Rule state that outlives the process: one ``AlertState`` per (rule, key) that is pending,
firing, or inside its cooldown, kept in the store's ``rule_state`` table so timers and
cooldowns survive restarts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson

if TYPE_CHECKING:
    from notifier.rules.compiled import Rule
    from notifier.store import Store

__all__ = ["AlertState", "StateStore", "alert_views"]


@dataclass(slots=True)
class AlertState:
    """One (rule, key) that is pending or firing, or inactive but inside its cooldown."""

    rule_id: str
    key: str
    fingerprint: str
    state: Literal["inactive", "pending", "firing"]
    since: float  # pending: when the condition began; firing: when it fired
    last_notified: float = 0.0
    last_fired: float = 0.0
    repeats: int = 0
    silenced: bool = False  # fired inside its cooldown: no notification was sent
    variables: dict[str, Any] = field(default_factory=dict)


class StateStore:
    """The ``rule_state`` table: one row per non-trivial ``AlertState``. Each write joins the
    caller's ``transaction()`` or commits on its own."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def load(self) -> list[AlertState]:
        rows = self._store.read(
            "SELECT rule_id, key, fingerprint, state, since, last_notified, last_fired, repeats,"
            " silenced, variables FROM rule_state"
        )
        return [
            AlertState(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), orjson.loads(r[9])
            )
            for r in rows
        ]

    def save(self, st: AlertState) -> None:
        with self._store.transaction(wait=False) as db:
            db.execute(
                "INSERT INTO rule_state VALUES (?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (rule_id, key) DO UPDATE SET fingerprint = excluded.fingerprint,"
                " state = excluded.state, since = excluded.since,"
                " last_notified = excluded.last_notified, last_fired = excluded.last_fired,"
                " repeats = excluded.repeats, silenced = excluded.silenced,"
                " variables = excluded.variables",
                (
                    st.rule_id,
                    st.key,
                    st.fingerprint,
                    st.state,
                    st.since,
                    st.last_notified,
                    st.last_fired,
                    st.repeats,
                    int(st.silenced),
                    orjson.dumps(st.variables, default=str),
                ),
            )

    def delete(self, rule_id: str, key: str) -> None:
        with self._store.transaction(wait=False) as db:
            db.execute("DELETE FROM rule_state WHERE rule_id=? AND key=?", (rule_id, key))

    def transaction(self) -> AbstractContextManager[object]:
        """The store's transaction: a state change and the outbox row it causes commit together
        (durable before the row is sent, without the event loop waiting for the disk)."""
        return self._store.transaction(wait=False)


def alert_views(states: Iterable[AlertState], rules: Mapping[str, Rule]) -> list[dict[str, Any]]:
    """Firing and pending (rule, key) states, for status and ``/api/v1/alerts``."""
    out = []
    for st in states:
        if st.state == "inactive":
            continue
        rule = rules.get(st.rule_id)
        out.append(
            {
                "rule": st.rule_id,
                "key": st.key,
                "state": st.state,
                "since": st.since,
                "silenced": st.silenced,
                "severity": rule.severity if rule else None,
                "due": st.since + rule.for_ if rule and st.state == "pending" else None,
                "why": st.variables.get("why"),
                "value": {
                    k: v
                    for k, v in st.variables.items()
                    if k in {"price", "status", "up", "age", "detail"}
                },
            }
        )
    return sorted(out, key=lambda a: (a["rule"], a["key"]))
