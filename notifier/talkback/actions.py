"""The talkback facade: every front end (HTTP API, CLI, action-link page, Telegram bot) acts
through one ``Talkback`` object. Its signatures are the contract part B builds on; keep them.

Contract
--------
``ack(rule, key, by) -> Done``
    Acknowledge the firing episode of ``rule`` at ``key`` (``None``: the rule's only firing
    key). Until it resolves the alert sends no ``repeat``; its resolve message is still sent;
    the next episode is not acknowledged. ``NotFound`` when nothing fires, ``Ambiguous`` (with
    the keys) when ``key`` is None and several fire.
``snooze(rule, key, seconds, by) -> Done``
    No message at all for ``rule`` at ``key`` for ``seconds``, whatever its episodes do; when
    it ends while the alert fires, one message. ``key`` None: the rule's only firing or pending
    key. ``Done.until`` is the end.
``add_silence(matchers, *, starts_at=None, ends_at, comment="", created_by) -> str``
    Store a silence and return its id. ``matchers`` is a ``Matchers`` or the API's object
    (``{"rule": "sol-*", "key": "*", "severity": "warning", "source": "quote", "tag":
    "phone"}``, at least one). When it ends while a matching alert fires unacknowledged, that
    alert notifies once.
``expire_silence(silence_id, by) -> Done``
    End a silence now (``NotFound`` if unknown or already over).
``silences() -> list[Silence]``
    Current and future silences, by start.
``alerts() -> list[dict]``
    Firing and pending alerts as ``/api/v1/alerts`` has them, each with ``acknowledged``
    (bool), ``snoozed_until`` (Unix seconds or None) and ``silenced_by`` (silence ids).
``episode(rule, key) -> Episode | None``
    The alert episode a button or link names (rule, key, firing ``since``); None when that
    alert is not pending or firing.
``row_episode(row_id) -> Episode | None``
    The episode an outbox row (a message being sent) speaks of.
``link(episode, issued_at) -> str | None``
    ``{http.public_url}/a/{token}`` for that episode (None without ``public_url``).
``act(token, action, by) -> Done``
    Apply one of ``LINK_ACTIONS`` (``ack``, ``snooze``, ``silence``) granted by an action-link
    token; ``LinkError`` (saying why) for a tampered, expired or foreign token, or one whose
    episode is over. Nothing changes when it raises.

Every action raises a ``TalkbackError`` subclass (``Invalid``, ``NotFound``, ``Ambiguous``)
whose message a user can act on, and changes nothing then. Call on the event loop.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from notifier.durations import format_duration
from notifier.talkback.endings import AlertBook, Endings, Sink
from notifier.talkback.links import LINK_ACTIONS, LinkError, LinkSigner
from notifier.talkback.model import (
    Ack,
    Ambiguous,
    Done,
    Episode,
    Invalid,
    Matchers,
    NotFound,
    Silence,
    Snooze,
    clean_text,
)
from notifier.talkback.store import TalkbackStore
from notifier.timestamps import rfc3339

if TYPE_CHECKING:
    from notifier.rules.compiled import Rule
    from notifier.rules.state import AlertState
    from notifier.store import Store

__all__ = ["Talkback"]

log = logging.getLogger("notifier.talkback")

MAX_SECONDS = 366 * 86400.0  # the longest snooze or silence


def _seconds(value: float, what: str) -> float:
    if not 0 < value <= MAX_SECONDS:
        raise Invalid(f"{what} must be more than 0 s and at most {format_duration(MAX_SECONDS)}")
    return float(value)


class Talkback:
    """Silences, acknowledgements and snoozes, stored, and the checks delivery asks of them."""

    def __init__(
        self,
        store: Store,
        book: AlertBook,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.time,
        public_url: str = "",
    ) -> None:
        self._store = store
        self._db = TalkbackStore(store)
        self._book = book
        self._sink = sink
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self.signer = LinkSigner(self._db.secret("action_links"))
        now = clock()
        self._silences = self._db.silences(now)
        self._acks = self._db.acks()
        self._snoozes = self._db.snoozes()
        self._listeners: list[Callable[[], None]] = []
        self._ended_before_start = True  # silences or snoozes that ended while it was down
        self._endings = Endings(store, self._db, book, sink, self)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every change (the timer re-plans; a page refreshes)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    # -- the facade ------------------------------------------------------------------------

    def ack(self, rule: str, key: str | None, by: str) -> Done:
        rule_obj = self._rule(rule)
        key = self._key(rule_obj, key, ("firing",), "acknowledge")
        st = self._book.state_of(rule, key)
        if st is None or st.state != "firing":
            raise NotFound(f"{rule} {key} is not firing; only a firing alert can be acknowledged")
        by = clean_text(by, "by", "unknown")
        ack = Ack(rule, key, st.since, by, self.clock())
        self._db.set_ack(ack)
        self._acks[(rule, key)] = ack
        log.info("alert %s %s acknowledged by %s", rule, key, by)
        self._changed()
        return Done("ack", rule, key, by, None, f"acknowledged {rule} {key} (by {by})")

    def snooze(self, rule: str, key: str | None, seconds: float, by: str) -> Done:
        rule_obj = self._rule(rule)
        key = self._key(rule_obj, key, ("firing", "pending"), "snooze")
        seconds = _seconds(seconds, "a snooze")
        by = clean_text(by, "by", "unknown")
        now = self.clock()
        snooze = Snooze(rule, key, now + seconds, by, now)
        self._db.set_snooze(snooze)
        self._snoozes[(rule, key)] = snooze
        log.info("alert %s %s snoozed for %s by %s", rule, key, format_duration(seconds), by)
        self._changed()
        text = f"snoozed {rule} {key} for {format_duration(seconds)} (by {by})"
        return Done("snooze", rule, key, by, snooze.until, text)

    def add_silence(
        self,
        matchers: Matchers | Mapping[str, Any],
        *,
        starts_at: float | None = None,
        ends_at: float,
        comment: str = "",
        created_by: str,
    ) -> str:
        found = matchers if isinstance(matchers, Matchers) else Matchers.parse(matchers)
        now = self.clock()
        start = now if starts_at is None else float(starts_at)
        if ends_at <= max(start, now):
            raise Invalid("a silence must end in the future, after it starts")
        _seconds(ends_at - start, "a silence")
        silence = Silence(
            id=secrets.token_hex(6),
            matchers=found,
            starts_at=start,
            ends_at=float(ends_at),
            comment=clean_text(comment, "comment"),
            created_by=clean_text(created_by, "created_by", "unknown"),
            created_at=now,
        )
        self._db.add_silence(silence)
        self._silences.append(silence)
        until = rfc3339(ends_at)
        log.info("silence %s added by %s until %s: %s", silence.id, silence.created_by, until,
                 found.describe())  # fmt: skip
        self._changed()
        return silence.id

    def expire_silence(self, silence_id: str, by: str) -> Done:
        by = clean_text(by, "by", "unknown")
        if not self._db.expire_silence(silence_id, self.clock(), by):
            raise NotFound(f"no current silence {silence_id!r}")
        self._silences = self._db.silences(self.clock() - 0.001)  # keep it until handled
        log.info("silence %s expired by %s", silence_id, by)
        self._changed()
        return Done("expire", None, None, by, None, f"expired silence {silence_id} (by {by})",
                    silence_id=silence_id)  # fmt: skip

    def silences(self) -> list[Silence]:
        now = self.clock()
        return [s for s in self._silences if s.ends_at > now]

    def alerts(self) -> list[dict[str, Any]]:
        return self.annotate(self._book.alerts())

    def snoozes(self) -> list[Snooze]:
        """Snoozes in force now."""
        now = self.clock()
        return sorted(
            (s for s in self._snoozes.values() if s.at <= now < s.until),
            key=lambda s: (s.rule, s.key),
        )

    def acks(self) -> list[Ack]:
        """Acknowledgements of episodes that still fire."""
        return [
            a
            for (rule, key), a in sorted(self._acks.items())
            if (st := self._book.state_of(rule, key)) is not None
            and st.state == "firing"
            and st.since == a.episode
        ]

    def annotate(self, alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Alert views (the engine's, or the status document's) with ``acknowledged``,
        ``snoozed_until`` and ``silenced_by``."""
        now = self.clock()
        out = []
        for alert in alerts:
            rule, key = str(alert["rule"]), str(alert["key"])
            ack = self._acks.get((rule, key))
            st = self._book.state_of(rule, key)
            acked = (
                ack is not None and st is not None and st.state == "firing"
                and ack.episode == st.since
            )  # fmt: skip
            snooze = self._snoozes.get((rule, key))
            out.append(
                {
                    **alert,
                    "acknowledged": acked,
                    "snoozed_until": snooze.until if snooze and snooze.until > now else None,
                    "silenced_by": self.silenced_by(rule, key, now),
                }
            )
        return out

    def state(self, rule: str, key: str) -> AlertState | None:
        """The engine's live state of one alert (None when inactive)."""
        return self._book.state_of(rule, key)

    def episode(self, rule: str, key: str) -> Episode | None:
        st = self._book.state_of(rule, key)
        if st is None or st.state not in ("pending", "firing"):
            return None
        return Episode(rule, key, st.since)

    def row_episode(self, row_id: int) -> Episode | None:
        """The episode an outbox row speaks of (what a chat button names), or None for a row
        that is not a rule's message."""
        found = self._store.read(
            "SELECT rule_id, alert_key, transition, episode FROM outbox WHERE id = ?", (row_id,)
        )
        if not found or found[0][1] is None:
            return None
        rule, key, transition, since = found[0]
        live = transition != "event" and since is not None
        return Episode(str(rule), str(key), float(since) if live else None)

    def link(self, episode: Episode, issued_at: float) -> str | None:
        if not self.public_url:
            return None
        return f"{self.public_url}/a/{self.signer.token(episode, issued_at)}"

    def act(self, token: str, action: str, by: str) -> Done:
        episode = self.current(token)
        if action not in LINK_ACTIONS:
            raise LinkError(f"this link does not grant {action!r}")
        seconds = LINK_ACTIONS[action][1]
        if action == "ack":
            if episode.since is None:
                raise LinkError("this message is not an alert that fires: nothing to acknowledge")
            return self.ack(episode.rule, episode.key, by)
        if action == "snooze":
            assert seconds is not None
            return self.snooze(episode.rule, episode.key, seconds, by)
        assert seconds is not None
        silence_id = self.add_silence(
            Matchers(rule=episode.rule), ends_at=self.clock() + seconds,
            comment="from an action link", created_by=by,
        )  # fmt: skip
        text = f"silenced rule {episode.rule} for {format_duration(seconds)} (by {by})"
        return Done("silence", episode.rule, None, by, self.clock() + seconds, text, silence_id)

    def current(self, token: str) -> Episode:
        """The episode a token names, checked: signed here, not expired, and (for an alert
        that fires) still the episode that fires now. ``LinkError`` otherwise."""
        grant = self.signer.check(token, self.clock())
        episode = grant.episode
        if episode.since is not None:
            now_episode = self.episode(episode.rule, episode.key)
            if now_episode is None or now_episode.since != episode.since:
                raise LinkError(
                    f"the alert this link names ({episode.rule} {episode.key}) is over: it "
                    "resolved, so there is nothing to act on"
                )
        return episode

    # -- what delivery asks ----------------------------------------------------------------

    def rule_facts(
        self, rule_id: str, severity: str, source: str | None, tags: Iterable[str]
    ) -> tuple[str, str | None, tuple[str, ...]]:
        """(severity, source, tags) a silence matches: the rule's own when it is loaded (a
        resolve message of a warning rule is still a warning alert's)."""
        rule = self._book.rules.rules.get(rule_id)
        if rule is None:
            return severity, source, tuple(tags)
        return rule.severity, rule.source, rule.tags

    def silenced_by(
        self,
        rule: str,
        key: str | None,
        now: float,
        facts: tuple[str, str | None, tuple[str, ...]] | None = None,
    ) -> list[str]:
        """Ids of the silences that mute ``rule`` at ``key`` at ``now`` (``facts``: the
        message's severity, source and tags, else the loaded rule's)."""
        severity, source, tags = facts or self.rule_facts(rule, "info", None, ())
        return [
            s.id
            for s in self._silences
            if s.active(now) and s.matchers.matches(rule, key, severity, source, tags)
        ]

    def snoozed(self, rule: str, key: str | None, now: float) -> bool:
        snooze = self._snoozes.get((rule, key or ""))
        return snooze is not None and snooze.at <= now < snooze.until

    def acknowledged(self, rule: str, key: str | None, episode: float | None) -> bool:
        ack = self._acks.get((rule, key or ""))
        return ack is not None and episode is not None and ack.episode == episode

    # -- endings ---------------------------------------------------------------------------

    def next_end(self) -> float | None:
        """When the next silence or snooze ends (its end is then handled by ``endings``)."""
        ends = [s.ends_at for s in self._silences] + [s.until for s in self._snoozes.values()]
        return min(ends, default=None)

    def endings(self) -> int:
        """Handle every silence and snooze that ended: an alert they covered that still fires
        (unacknowledged, not muted otherwise) notifies once. Returns how many messages."""
        now = self.clock()
        next_end = self.next_end()
        if not self._ended_before_start and (next_end is None or next_end > now):
            return 0
        self._ended_before_start = False
        sent = self._endings.silences_ended(now)
        self._silences = [s for s in self._silences if s.ends_at > now]
        for snooze in [s for s in self._snoozes.values() if s.until <= now]:
            sent += self._endings.snooze_ended(snooze, now)
            del self._snoozes[(snooze.rule, snooze.key)]
        if sent:
            self._changed()
        return sent

    # -- helpers ---------------------------------------------------------------------------

    def _rule(self, rule_id: str) -> Rule:
        rule = self._book.rules.rules.get(rule_id)
        if rule is None:
            raise NotFound(f"no rule {rule_id!r} is loaded")
        return rule

    def _key(self, rule: Rule, key: str | None, states: tuple[str, ...], verb: str) -> str:
        if key is not None:
            return key
        keys = [
            str(a["key"])
            for a in self._book.alerts()
            if a["rule"] == rule.id and a["state"] in states
        ]
        if not keys:
            raise NotFound(f"rule {rule.id} has no {' or '.join(states)} alert to {verb}")
        if len(keys) > 1:
            raise Ambiguous(
                f"rule {rule.id} has {len(keys)} {' or '.join(states)} keys; name one: "
                + ", ".join(keys)
            )
        return keys[0]
