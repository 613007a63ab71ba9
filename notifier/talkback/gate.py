"""The talkback stage of delivery, run right before a rule's row is sent (and before each
retry): a snoozed alert, a silenced one and the ``repeat`` of an acknowledged one are recorded
as ``silenced`` and not sent; channels inside quiet hours are ``held`` and get the row in one
digest per tag when the window ends; what is sent gets its action link.

The row keeps why: ``withheld`` (``silenced`` | ``held``), ``withheld_by`` (a silence id,
``snooze``, ``acknowledged`` or ``quiet hours``) and ``held_channels``. A silenced row is
finished as ``sent`` to no channel, a wholly held one as ``digested``; a partly held one owes
only its other channels (the held ones count as done, the digest reaches them).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING

from notifier.dispatch.channels import Channel, Channels
from notifier.dispatch.digest import QUIET_PREFIX
from notifier.dispatch.outbox import OutboxRow
from notifier.talkback.actions import Talkback
from notifier.talkback.model import Episode
from notifier.talkback.quiet import QuietHours

if TYPE_CHECKING:
    from notifier.store import Connection, Store

__all__ = ["Gate"]

log = logging.getLogger("notifier.talkback")

LINKED = frozenset({"firing", "repeat", "event"})  # a resolve names an episode that is over


class Gate:
    """``gate(row, route, channels, now)``: the row to send (maybe with fewer channels owed
    and its action link), or None when it was settled without a send."""

    def __init__(self, store: Store, talkback: Talkback, quiet: QuietHours) -> None:
        self._store = store
        self._talkback = talkback
        self._quiet = quiet

    def __call__(
        self, row: OutboxRow, route: tuple[str, ...], channels: Channels, now: float
    ) -> OutboxRow | None:
        found = self._store.read(
            "SELECT alert_key, transition, episode, source FROM outbox WHERE id = ?", (row.id,)
        )
        if not found:
            return row
        key, transition, episode, source = found[0]
        tb = self._talkback
        facts = tb.rule_facts(row.rule_id, row.severity, source, row.tags)
        why = None
        if tb.snoozed(row.rule_id, key, now):
            why = "snooze"
        elif silences := tb.silenced_by(row.rule_id, key, now, facts):
            why = silences[0]
        elif transition == "repeat" and tb.acknowledged(row.rule_id, key, episode):
            why = "acknowledged"
        if why is not None:
            self._silence(row, why, now)
            return None
        if self._quiet:
            held = self._hold(row, route, channels, now)
            if held is None:
                return None
            row = held
        link = None
        if key is not None and transition in LINKED:
            since = float(episode) if transition != "event" and episode is not None else None
            link = tb.link(Episode(row.rule_id, str(key), since), row.enqueued_at)
        return row if link is None else dataclasses.replace(row, body=f"{row.body}\n\n{link}")

    def _silence(self, row: OutboxRow, why: str, now: float) -> None:
        with self._store.transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'sent', finished_at = ?, retry_channels = NULL,"
                " withheld = 'silenced', withheld_by = ? WHERE id = ? AND state = 'pending'",
                (now, why, row.id),
            )
        log.info("silenced %r (rule %s, row %d): %s", row.title, row.rule_id, row.id, why)

    def _hold(
        self, row: OutboxRow, route: tuple[str, ...], channels: Channels, now: float
    ) -> OutboxRow | None:
        """Hold the owed channels a quiet window covers; None when that is all of them."""
        held_tags = self._quiet.holding(route or self._quiet.tags, row.severity, now)
        if not held_tags:
            return row
        owed = [c for c in channels.select(route) if c.key not in row.done]
        held = [c for c in owed if _held(c, route, held_tags.keys())]
        if not held:
            return row
        keys = {c.key for c in held}
        whole = len(held) == len(owed)
        with self._store.transaction() as db:
            for tag in sorted({t for c in held for t in c.tags if t in held_tags}):
                digest_id = _open_digest(db, tag, held_tags[tag], now, row.id)
                db.execute(
                    "INSERT INTO outbox_digest_items (digest_id, source_id) VALUES (?, ?)"
                    " ON CONFLICT (digest_id, source_id) DO NOTHING",
                    (digest_id, row.id),
                )
            if whole:
                db.execute(
                    "UPDATE outbox SET state = 'digested', finished_at = ?, withheld = 'held',"
                    " withheld_by = 'quiet hours', held_channels = ? WHERE id = ?",
                    (now, json.dumps(sorted(keys)), row.id),
                )
            else:
                db.execute(
                    "UPDATE outbox SET done_channels = ?, held_channels = ? WHERE id = ?",
                    (json.dumps(sorted(row.done | keys)), json.dumps(sorted(keys)), row.id),
                )
        log.info(
            "quiet hours: %r (rule %s, row %d) held for %s",
            row.title, row.rule_id, row.id, ", ".join(sorted(held_tags)),
        )  # fmt: skip
        return None if whole else dataclasses.replace(row, done=row.done | keys)


def _held(channel: Channel, route: tuple[str, ...], held_tags: Collection[str]) -> bool:
    """A channel is held when a held tag reaches it and no tag of the route that is not held
    does (an untagged route reaches every channel)."""
    tags = set(channel.tags)
    if not tags & set(held_tags):
        return False
    return not route or not tags & (set(route) - set(held_tags))


def _open_digest(db: Connection, tag: str, due: float, now: float, first: int) -> int:
    bucket = f"{QUIET_PREFIX}{tag}"
    found = db.execute(
        "SELECT id FROM outbox WHERE digest_open = 1 AND digest_tag = ? AND state = 'pending'",
        (bucket,),
    ).fetchone()
    if found is not None:
        return int(found[0])
    tags = json.dumps([tag])
    cur = db.execute(
        "INSERT INTO outbox (key, kind, rule_id, title, body, severity, tags, route,"
        " created_at, enqueued_at, next_attempt_at, digest_tag, digest_open)"
        " VALUES (?, 'digest', 'notifier', '', '', 'info', ?, ?, ?, ?, ?, ?, 1) RETURNING id",
        (f"{bucket}:{first}", tags, tags, now, now, due, bucket),
    )
    return int(cur.fetchone()[0])
