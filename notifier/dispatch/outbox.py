"""The outbox: every notification is a SQLite row before anything is sent.

A row is ``pending`` until every channel it targets confirmed (``sent``), it was folded into
a rate-limit digest (``digested``), or it was given up (``dead``). The dedup key is unique,
so a decision enqueued twice, or again after a restart, is one row. Finished rows are kept
for ``KEEP_FINISHED`` so their keys keep deduplicating, then pruned.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, cast

from notifier.dispatch.rows import (
    COLUMNS,
    KEEP_FINISHED,
    Kind,
    NewRow,
    OutboxRow,
    State,
    dump,
    retry_times,
)

if TYPE_CHECKING:
    from notifier.notification import Severity
    from notifier.store import Connection, Store

__all__ = ["KEEP_FINISHED", "Kind", "NewRow", "Outbox", "OutboxRow", "State"]


class Outbox:
    """The outbox tables (created by the store's migrations). Every writing method is one
    ``store.transaction()``: its own, or part of the caller's (the rule engine's, or the
    dispatcher's around a row and its rate-limit decision). Their commits do not wait for the
    disk (the event loop makes them); ``sync`` does, and every send calls it first."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def store(self) -> Store:
        """The store the rows are in: every send calls its ``sync()`` first."""
        return self._store

    # -- writing ---------------------------------------------------------------------------

    def add(self, row: NewRow, now: float, *, due: float | None = None) -> int | None:
        """Insert unless the key exists; durable once the transaction it joined (or its own)
        commits and is synced. Returns the new id or None."""
        with self._store.transaction(wait=False) as db:
            return self._insert(db, row, now, due)

    @staticmethod
    def _insert(db: Connection, row: NewRow, now: float, due: float | None) -> int | None:
        cur = db.execute(
            "INSERT INTO outbox (key, kind, rule_id, title, body, severity, tags,"
            " created_at, event_at, enqueued_at, next_attempt_at, alert_key, transition,"
            " episode, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO NOTHING RETURNING id",
            (
                row.key,
                row.kind,
                row.rule_id,
                row.title,
                row.body,
                row.severity,
                json.dumps(list(row.tags)),
                row.created_at or now,
                row.event_at,
                now,
                now if due is None else due,
                row.alert_key,
                row.transition,
                row.episode,
                row.source,
            ),
        )
        inserted = cur.fetchall()
        return int(inserted[0][0]) if inserted else None

    def route(
        self,
        row_id: int,
        admitted: Sequence[str],
        buckets: Sequence[str],
        held: dict[str, float],
        now: float,
    ) -> bool:
        """Apply a rate-limit decision in one transaction: the tags the row may go to, the
        budget it used (``buckets``) and the held buckets folded into their open digests
        (``held``: bucket -> when its digest is due). False when nothing was admitted."""
        with self._store.transaction(wait=False) as db:
            db.executemany(
                "INSERT INTO outbox_sends (tag, at) VALUES (?, ?)", [(b, now) for b in buckets]
            )
            for tag, due in held.items():
                digest_id = self._open_digest(db, tag, due, now, row_id)
                db.execute(
                    "INSERT INTO outbox_digest_items (digest_id, source_id)"
                    " VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (digest_id, row_id),
                )
            if not buckets:
                db.execute(
                    "UPDATE outbox SET state = 'digested', route = '[]', finished_at = ?"
                    " WHERE id = ?",
                    (now, row_id),
                )
                return False
            db.execute("UPDATE outbox SET route = ? WHERE id = ?", (dump(admitted), row_id))
            return True

    @staticmethod
    def _open_digest(db: Connection, tag: str, due: float, now: float, first_item: int) -> int:
        found = db.execute(
            "SELECT id FROM outbox WHERE digest_open = 1 AND digest_tag = ? AND state = 'pending'",
            (tag,),
        ).fetchone()
        if found is not None:
            return cast(int, found[0])
        cur = db.execute(
            "INSERT INTO outbox (key, kind, rule_id, title, body, severity, tags, route,"
            " created_at, enqueued_at, next_attempt_at, digest_tag, digest_open)"
            " VALUES (?, 'digest', 'notifier', '', '', 'info', ?, ?, ?, ?, ?, ?, 1) RETURNING id",
            (
                f"digest:{tag}:{first_item}",  # a row joins one digest per tag: unique
                json.dumps([] if tag == "all" else [tag]),
                json.dumps([] if tag == "all" else [tag]),
                now,
                now,
                due,
                tag,
            ),
        )
        return int(cur.fetchall()[0][0])

    def digest_items(self, digest_id: int) -> list[tuple[str, str, str, str]]:
        """(kind, rule_id, severity, title) of every row folded into a digest, oldest first."""
        rows = self._store.read(
            "SELECT o.kind, o.rule_id, o.severity, o.title FROM outbox_digest_items i"
            " JOIN outbox o ON o.id = i.source_id WHERE i.digest_id = ? ORDER BY o.id",
            (digest_id,),
        )
        return [(str(k), str(r), str(s), str(t)) for k, r, s, t in rows]

    def seal_digest(self, digest_id: int, title: str, body: str, severity: Severity) -> None:
        """Close a digest to new items and store the text it will be sent with."""
        with self._store.transaction(wait=False) as db:
            db.execute(
                "UPDATE outbox SET digest_open = 0, title = ?, body = ?, severity = ? WHERE id = ?",
                (title, body, severity, digest_id),
            )

    def record_sent(self, row_id: int, delivered: Iterable[str], now: float) -> None:
        with self._store.transaction(wait=False) as db:
            done = self._done(db, row_id) | set(delivered)
            db.execute(
                "UPDATE outbox SET state = 'sent', attempts = attempts + 1,"
                " first_attempt_at = COALESCE(first_attempt_at, ?), finished_at = ?,"
                " done_channels = ?, retry_channels = NULL, last_error = NULL WHERE id = ?",
                (now, now, dump(done), row_id),
            )

    def record_channel(
        self,
        row_id: int,
        key: str,
        *,
        owed: Iterable[str],
        now: float,
        retry_at: float | None = None,
        error: str | None = None,
    ) -> bool:
        """One channel's answer, in one transaction: it confirmed (``retry_at`` None) or is
        tried again at ``retry_at``. The row is sent once no channel in ``owed`` lacks it, and
        otherwise due when its earliest channel is; ``attempts`` counts failures and the
        finishing answer. A row no longer pending (given up meanwhile) only learns a
        confirmation. True: this answer finished the row."""
        with self._store.transaction(wait=False) as db:
            found = db.execute(
                "SELECT state, done_channels, retry_channels, next_attempt_at FROM outbox"
                " WHERE id = ?",
                (row_id,),
            ).fetchone()
            if found is None:
                return False
            done = set(json.loads(found[1]))
            retry = retry_times(found[2], found[3]) or {}
            if retry_at is None:
                done.add(key)
                retry.pop(key, None)
            else:
                retry[key] = (retry_at, retry.get(key, (0.0, 0))[1] + 1)
            if found[0] != "pending":
                db.execute("UPDATE outbox SET done_channels = ? WHERE id = ?", (dump(done), row_id))
                return False
            left = set(owed) - done
            if not left:
                self.record_sent(row_id, done, now)
                return True
            db.execute(
                "UPDATE outbox SET attempts = attempts + ?,"
                " first_attempt_at = COALESCE(first_attempt_at, ?), next_attempt_at = ?,"
                " done_channels = ?, retry_channels = ?, last_error = COALESCE(?, last_error)"
                " WHERE id = ?",
                (
                    int(retry_at is not None),
                    now,
                    min(retry.get(k, (now, 0))[0] for k in left),
                    dump(done),
                    json.dumps({k: list(v) for k, v in sorted(retry.items())}),
                    error,
                    row_id,
                ),
            )
            return False

    def record_failure(
        self,
        row_id: int,
        *,
        delivered: Iterable[str],
        retry: Iterable[str] | None,
        error: str,
        now: float,
        next_attempt_at: float,
    ) -> None:
        with self._store.transaction(wait=False) as db:
            done = self._done(db, row_id) | set(delivered)
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1,"
                " first_attempt_at = COALESCE(first_attempt_at, ?), next_attempt_at = ?,"
                " done_channels = ?, retry_channels = ?, last_error = ? WHERE id = ?",
                (
                    now,
                    next_attempt_at,
                    dump(done),
                    None if retry is None else dump(retry),
                    error,
                    row_id,
                ),
            )

    def record_dead(
        self,
        row_id: int,
        delivered: Iterable[str],
        error: str,
        now: float,
        report: NewRow | None,
    ) -> int | None:
        """Give a row up and, in the same transaction, enqueue its report (if any)."""
        with self._store.transaction(wait=False) as db:
            done = self._done(db, row_id) | set(delivered)
            db.execute(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1,"
                " first_attempt_at = COALESCE(first_attempt_at, ?), finished_at = ?,"
                " done_channels = ?, last_error = ? WHERE id = ?",
                (now, now, dump(done), error, row_id),
            )
            return None if report is None else self._insert(db, report, now, None)

    @staticmethod
    def _done(db: Connection, row_id: int) -> set[str]:
        found = db.execute("SELECT done_channels FROM outbox WHERE id = ?", (row_id,)).fetchone()
        return set(json.loads(found[0])) if found else set()

    def probe(self) -> None:
        """A write that leaves nothing behind: raises while the store cannot write."""
        with self._store.transaction() as db:
            db.execute("INSERT INTO outbox_sends (tag, at) VALUES ('', -1)")
            db.execute("DELETE FROM outbox_sends WHERE tag = '' AND at = -1")

    def prune(self, now: float, keep: float = KEEP_FINISHED, window: float = 86400.0) -> int:
        """Forget finished rows older than ``keep`` and rate-limit entries older than
        ``window``; returns how many outbox rows went."""
        with self._store.transaction() as db:
            cur = db.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND finished_at < ?", (now - keep,)
            )
            db.execute("DELETE FROM outbox_sends WHERE at < ?", (now - window,))
            return cur.rowcount

    # -- reading ---------------------------------------------------------------------------

    @property
    def uncommitted(self) -> bool:
        """A transaction is open on the store: rows it wrote are not durable yet."""
        return self._store.in_transaction

    def get(self, row_id: int) -> OutboxRow | None:
        rows = self._store.read(f"SELECT {COLUMNS} FROM outbox WHERE id = ?", (row_id,))
        return OutboxRow.from_db(rows[0]) if rows else None

    def due(self, now: float, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` pending rows due at ``now``, earliest first."""
        rows = self._store.read(
            f"SELECT {COLUMNS} FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id LIMIT ?",
            (now, limit),
        )
        return [OutboxRow.from_db(r) for r in rows]

    def next_due(self, after: float) -> float | None:
        """When the earliest pending row not due at ``after`` is due."""
        ((due,),) = self._store.read(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'"
            " AND next_attempt_at > ?",
            (after,),
        )
        return None if due is None else float(due)

    def sends_since(self, bucket: str, since: float) -> tuple[int, float | None]:
        """How many admissions ``bucket`` had after ``since``, and the oldest of them."""
        ((count, oldest),) = self._store.read(
            "SELECT COUNT(*), MIN(at) FROM outbox_sends WHERE tag = ? AND at > ?",
            (bucket, since),
        )
        return int(count), None if oldest is None else float(oldest)

    def pending_count(self) -> int:
        ((count,),) = self._store.read("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
        return int(count)

    def counts(self) -> dict[str, int]:
        """Rows per state, plus ``failed``: pending rows that have failed at least once."""
        rows = self._store.read(
            "SELECT state, COUNT(*), SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END)"
            " FROM outbox GROUP BY state"
        )
        found = {state: (int(count), int(failing)) for state, count, failing in rows}
        states: tuple[State, ...] = ("pending", "sent", "digested", "dead")
        result: dict[str, int] = {s: found.get(s, (0, 0))[0] for s in states}
        result["failed"] = found.get("pending", (0, 0))[1]
        return result

    def oldest_pending(self) -> float | None:
        ((oldest,),) = self._store.read(
            "SELECT MIN(enqueued_at) FROM outbox WHERE state = 'pending'"
        )
        return None if oldest is None else float(oldest)
