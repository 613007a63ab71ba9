"""What the bot writes: an outbox row as a Telegram message (bold title, body, buttons when
the row is an alert one can act on), the line an action adds to it, and the alert episode an
outbox row belongs to.

Formatting goes in ``entities`` (UTF-16 offsets), never ``parse_mode``: a rule's text is sent
as written, with nothing to escape, and an edit can append a line and keep the formatting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_TEXT",
    "AlertRef",
    "alert_of",
    "appended",
    "render",
    "utf16_len",
    "who",
]

MAX_TEXT = 4096  # Telegram's limit for a message's text, after entities
ROOM_FOR_ACTIONS = 296  # kept free for the lines button presses append
_MARKS = {"failure": "🔴", "warning": "🟠", "success": "✅", "info": "🔵"}
_ACTIONABLE = ("firing", "repeat")


@dataclass(frozen=True, slots=True)
class AlertRef:
    """One episode of one alert: rule, state key, and when the episode began (the engine's
    dedup key carries all three)."""

    rule: str
    key: str
    episode: float


def alert_of(kind: str, rule_id: str, dedup_key: str) -> AlertRef | None:
    """The alert episode of an outbox row that says an alert fires (or still fires):
    ``{rule}|{key}|{firing|repeat}|{episode}[|{n}]``; None for anything else."""
    if kind != "rule" or not dedup_key.startswith(rule_id + "|"):
        return None
    parts = dedup_key[len(rule_id) + 1 :].split("|")
    for tail in (2, 3):  # "…|transition|episode" or "…|transition|episode|repeats"
        if len(parts) <= tail or parts[-tail] not in _ACTIONABLE:
            continue
        try:
            episode = float(parts[-tail + 1])
        except ValueError:
            continue
        return AlertRef(rule_id, "|".join(parts[:-tail]), episode)
    return None


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: how Telegram counts offsets and limits."""
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, units: int) -> str:
    if utf16_len(text) <= units:
        return text
    encoded = text.encode("utf-16-le")[: max(units - 1, 0) * 2]
    return encoded.decode("utf-16-le", errors="ignore") + "…"


def render(title: str, body: str, severity: str) -> tuple[str, list[dict[str, Any]]]:
    """The text and entities of a notification: a severity mark and the title in bold, then
    the body (cut to fit, leaving room for the lines actions append)."""
    head = _cut(f"{_MARKS.get(severity, _MARKS['info'])} {title.strip() or '(no title)'}", 512)
    text = head
    body = body.strip()
    if body and body != title.strip():
        text = head + "\n" + _cut(body, MAX_TEXT - ROOM_FOR_ACTIONS - utf16_len(head) - 1)
    return text, [{"type": "bold", "offset": 0, "length": utf16_len(head)}]


def appended(message: Mapping[str, Any], line: str) -> tuple[str, list[dict[str, Any]]]:
    """A message's text and entities with ``line`` added in italics below it (the text cut
    when both would not fit)."""
    text = str(message.get("text") or "")
    entities = [e for e in message.get("entities") or [] if isinstance(e, dict)]
    line = _cut(line, ROOM_FOR_ACTIONS // 2)
    room = MAX_TEXT - utf16_len(line) - 1
    if utf16_len(text) > room:
        text = _cut(text, room)
        end = utf16_len(text)
        entities = [e for e in entities if _int(e.get("offset")) + _int(e.get("length")) <= end]
    start = text + "\n"
    italic = {"type": "italic", "offset": utf16_len(start), "length": utf16_len(line)}
    return start + line, [*entities, italic]


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def who(user: object) -> str:
    """A Telegram user as people in the chat know them: ``Ada Lovelace (@ada)``."""
    if not isinstance(user, dict):
        return "someone"
    name = " ".join(str(user[k]) for k in ("first_name", "last_name") if user.get(k))
    handle = f"@{user['username']}" if user.get("username") else ""
    if name and handle:
        return f"{name} ({handle})"
    return name or handle or f"user {user.get('id', '?')}"
