"""The talkback tables (migration 3): silences, acks, snoozes and the secrets (action-link
key) kept in the store, so every one of them survives a restart."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING

from notifier.talkback.model import Ack, Matchers, Silence, Snooze

if TYPE_CHECKING:
    from notifier.store import Store

__all__ = ["TalkbackStore"]

_SILENCE = "id, matchers, starts_at, ends_at, comment, created_by, created_at, expired_by"


def _silence(row: tuple[object, ...]) -> Silence:
    raw = json.loads(str(row[1]))
    return Silence(
        id=str(row[0]),
        matchers=Matchers(**{k: str(v) for k, v in raw.items()}),
        starts_at=float(row[2]),  # type: ignore[arg-type]
        ends_at=float(row[3]),  # type: ignore[arg-type]
        comment=str(row[4]),
        created_by=str(row[5]),
        created_at=float(row[6]),  # type: ignore[arg-type]
        expired_by=None if row[7] is None else str(row[7]),
    )


class TalkbackStore:
    """Reads and writes of the talkback tables; each write is one transaction (its own or
    the caller's)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- silences --------------------------------------------------------------------------

    def add_silence(self, silence: Silence) -> None:
        with self._store.transaction() as db:
            db.execute(
                f"INSERT INTO silences ({_SILENCE}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    silence.id,
                    json.dumps(silence.matchers.as_json(), sort_keys=True),
                    silence.starts_at,
                    silence.ends_at,
                    silence.comment,
                    silence.created_by,
                    silence.created_at,
                    silence.expired_by,
                ),
            )

    def expire_silence(self, silence_id: str, now: float, by: str) -> bool:
        """End a silence now; False when it does not exist or already ended."""
        with self._store.transaction() as db:
            cur = db.execute(
                "UPDATE silences SET ends_at = ?, expired_by = ? WHERE id = ? AND ends_at > ?",
                (now, by, silence_id, now),
            )
            return cur.rowcount == 1

    def silence(self, silence_id: str) -> Silence | None:
        rows = self._store.read(f"SELECT {_SILENCE} FROM silences WHERE id = ?", (silence_id,))
        return _silence(rows[0]) if rows else None

    def silences(self, ended_after: float) -> list[Silence]:
        """Silences not ended before ``ended_after`` (current and future ones), by start."""
        rows = self._store.read(
            f"SELECT {_SILENCE} FROM silences WHERE ends_at > ? ORDER BY starts_at, id",
            (ended_after,),
        )
        return [_silence(r) for r in rows]

    def ended_silences(self, now: float) -> list[Silence]:
        """Silences over at ``now`` whose end was not handled yet."""
        rows = self._store.read(
            f"SELECT {_SILENCE} FROM silences WHERE end_handled = 0 AND ends_at <= ?"
            " ORDER BY ends_at, id",
            (now,),
        )
        return [_silence(r) for r in rows]

    def silence_handled(self, silence_id: str) -> None:
        with self._store.transaction() as db:
            db.execute("UPDATE silences SET end_handled = 1 WHERE id = ?", (silence_id,))

    def prune_silences(self, before: float) -> None:
        with self._store.transaction() as db:
            db.execute("DELETE FROM silences WHERE end_handled = 1 AND ends_at < ?", (before,))

    # -- acknowledgements ------------------------------------------------------------------

    def set_ack(self, ack: Ack) -> None:
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO acks (rule_id, key, episode, acked_by, acked_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (rule_id, key) DO UPDATE SET"
                " episode = excluded.episode, acked_by = excluded.acked_by,"
                " acked_at = excluded.acked_at",
                (ack.rule, ack.key, ack.episode, ack.by, ack.at),
            )

    def acks(self) -> dict[tuple[str, str], Ack]:
        rows = self._store.read("SELECT rule_id, key, episode, acked_by, acked_at FROM acks")
        return {
            (str(r[0]), str(r[1])): Ack(str(r[0]), str(r[1]), float(r[2]), str(r[3]), float(r[4]))
            for r in rows
        }

    def drop_ack(self, rule: str, key: str) -> None:
        with self._store.transaction() as db:
            db.execute("DELETE FROM acks WHERE rule_id = ? AND key = ?", (rule, key))

    # -- snoozes ---------------------------------------------------------------------------

    def set_snooze(self, snooze: Snooze) -> None:
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO snoozes (rule_id, key, until_at, snoozed_by, snoozed_at,"
                " end_handled) VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (rule_id, key) DO UPDATE"
                " SET until_at = excluded.until_at, snoozed_by = excluded.snoozed_by,"
                " snoozed_at = excluded.snoozed_at, end_handled = 0",
                (snooze.rule, snooze.key, snooze.until, snooze.by, snooze.at),
            )

    def snoozes(self) -> dict[tuple[str, str], Snooze]:
        """Every snooze whose end is not handled yet (current ones, and ones just over)."""
        rows = self._store.read(
            "SELECT rule_id, key, until_at, snoozed_by, snoozed_at FROM snoozes"
            " WHERE end_handled = 0"
        )
        return {
            (str(r[0]), str(r[1])): Snooze(
                str(r[0]), str(r[1]), float(r[2]), str(r[3]), float(r[4])
            )
            for r in rows
        }

    def snooze_handled(self, snooze: Snooze) -> None:
        with self._store.transaction() as db:
            db.execute(
                "DELETE FROM snoozes WHERE rule_id = ? AND key = ? AND until_at = ?",
                (snooze.rule, snooze.key, snooze.until),
            )

    # -- secrets ---------------------------------------------------------------------------

    def secret(self, name: str) -> str:
        """A random secret kept in the store under ``name``, created on first use."""
        with self._store.transaction() as db:
            found = db.execute(
                "SELECT value FROM talkback_secrets WHERE name = ?", (name,)
            ).fetchone()
            if found is not None:
                return str(found[0])
            value = secrets.token_urlsafe(32)
            db.execute("INSERT INTO talkback_secrets (name, value) VALUES (?, ?)", (name, value))
            return value
