"""The bot's commands: ``/status``, ``/alerts``, ``/silences``, ``/silence RULE DURATION
[comment]``, ``/unsilence ID``, ``/ack RULE [KEY]`` (and ``/help``). Each returns the reply's
plain text; the caller sends it to the chat it came from."""

from __future__ import annotations

import time
from collections.abc import Callable

from notifier.durations import parse_duration
from notifier.talkback.model import TalkbackError
from notifier.telegram.actions import ActionError, BotActions
from notifier.telegram.messages import MAX_TEXT

__all__ = ["HELP", "Commands"]

HELP = """\
/status — feeds, rules and alerts at a glance
/alerts — firing and pending alerts
/silences — active silences
/silence RULE DURATION [comment] — silence a rule (a glob) e.g. /silence sol-* 2h maintenance
/unsilence ID — end a silence
/ack RULE [KEY] — acknowledge a firing alert (KEY when the rule fires for several)"""

_STATE_MARKS = {"firing": "🔴", "pending": "⏳"}


class Commands:
    """Runs one command for a person already allowed (the caller checked the chat)."""

    def __init__(
        self,
        actions: BotActions,
        summary: Callable[[], str],
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._actions = actions
        self._summary = summary
        self._now = now
        self._table: dict[str, Callable[[str, str], str]] = {
            "start": self._help,
            "help": self._help,
            "status": self._status,
            "alerts": self._alerts,
            "silences": self._silences,
            "silence": self._silence,
            "unsilence": self._unsilence,
            "ack": self._ack,
        }

    def run(self, name: str, args: str, by: str) -> str:
        handler = self._table.get(name)
        if handler is None:
            return f"Unknown command /{name}.\n\n{HELP}"
        try:
            reply = handler(args, f"telegram: {by}")
        except (ActionError, TalkbackError) as exc:
            reply = f"/{name}: {exc}"
        return reply if len(reply) <= MAX_TEXT else reply[: MAX_TEXT - 1] + "…"

    def _help(self, args: str, by: str) -> str:
        return HELP

    def _status(self, args: str, by: str) -> str:
        alerts = self._actions.alerts()
        acked = sum(1 for a in alerts if a.get("acknowledged"))
        silences = len(self._actions.silences())
        line = self._summary()
        return f"{line}\n{acked} acknowledged, {silences} silence(s) active"

    def _alerts(self, args: str, by: str) -> str:
        alerts = self._actions.alerts()
        if not alerts:
            return "No alert is firing or pending."
        lines = [f"{len(alerts)} alert(s):"]
        for alert in alerts:
            mark = _STATE_MARKS.get(str(alert.get("state")), "•")
            notes = [f"{alert.get('state')} since {self._when(alert.get('since'))}"]
            if alert.get("acknowledged"):
                notes.append("acknowledged")
            if alert.get("snoozed_until"):
                notes.append(f"snoozed until {self._when(alert['snoozed_until'])}")
            if alert.get("silenced_by"):
                notes.append("silenced by " + ", ".join(map(str, alert["silenced_by"])))
            lines.append(f"{mark} {alert.get('rule')} [{alert.get('key')}] — {'; '.join(notes)}")
        return "\n".join(lines)

    def _silences(self, args: str, by: str) -> str:
        silences = self._actions.silences()
        if not silences:
            return "No silence is active."
        lines = [f"{len(silences)} silence(s):"]
        for s in silences:
            line = f"{s.id}: {s.matchers.describe()} until {self._when(s.ends_at)}"
            line += f", by {s.created_by}" if s.created_by else ""
            line += f" — {s.comment}" if s.comment else ""
            lines.append(line)
        return "\n".join(lines)

    def _silence(self, args: str, by: str) -> str:
        parts = args.split(maxsplit=2)
        if len(parts) < 2:
            raise ActionError("usage: /silence RULE DURATION [comment], e.g. /silence sol-* 2h")
        rule, duration = parts[0], parts[1]
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise ActionError(f"{duration}: {exc}") from None
        comment = parts[2] if len(parts) > 2 else ""
        ends_at = self._now() + seconds
        silence_id = self._actions.add_silence(
            {"rule": rule}, ends_at=ends_at, comment=comment, created_by=by
        )
        return f"🔕 Silenced rule {rule} until {self._when(ends_at)} (id {silence_id})."

    def _unsilence(self, args: str, by: str) -> str:
        silence_id = args.strip()
        if not silence_id or " " in silence_id:
            raise ActionError("usage: /unsilence ID (see /silences)")
        self._actions.expire_silence(silence_id, by)
        return f"Silence {silence_id} ended."

    def _ack(self, args: str, by: str) -> str:
        parts = args.split(maxsplit=1)
        if not parts:
            raise ActionError("usage: /ack RULE [KEY]")
        done = self._actions.ack(parts[0], parts[1] if len(parts) > 1 else None, by)
        return f"✔️ Acknowledged {parts[0]} [{done.key}]."

    def _when(self, at: object) -> str:
        """A time as people in a chat read it: today's in HH:MM, others with the date; UTC."""
        if not isinstance(at, int | float):
            return str(at) if at else "?"
        stamp = time.gmtime(at)
        same_day = stamp[:3] == time.gmtime(self._now())[:3]
        return time.strftime("%H:%M UTC" if same_day else "%Y-%m-%d %H:%M UTC", stamp)
