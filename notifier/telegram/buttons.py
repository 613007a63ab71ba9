"""The three buttons under an alert and the ``callback_data`` they carry.

A button names an action and an outbox row (the message of one alert episode) and is signed
with a key derived from the bot token: ``a1234.<mac>``, well under Telegram's 64 bytes. A
forged or mangled button (any Telegram client can send arbitrary callback data) fails the
check and changes nothing; a new bot token invalidates old buttons.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ACTIONS",
    "Action",
    "Button",
    "ButtonSigner",
    "keyboard",
    "without",
]

Action = Literal["ack", "snooze", "silence"]
ACTIONS: dict[str, tuple[Action, str]] = {  # code in callback_data -> action, button text
    "a": ("ack", "Ack"),
    "z": ("snooze", "Snooze 1h"),
    "s": ("silence", "Silence 24h"),
}
_CODES = {action: code for code, (action, _) in ACTIONS.items()}
_MAC_CHARS = 16  # 96 bits
_DATA = re.compile(r"^([azs])(\d{1,18})\.([A-Za-z0-9_-]{16})$")


@dataclass(frozen=True, slots=True)
class Button:
    """A verified button press: what to do to the alert of which outbox row."""

    action: Action
    row_id: int


class ButtonSigner:
    """Signs and checks ``callback_data``."""

    def __init__(self, token: str) -> None:
        self._key = hashlib.sha256(b"notifier telegram buttons\0" + token.encode()).digest()

    def data(self, action: Action, row_id: int) -> str:
        body = f"{_CODES[action]}{row_id}"
        return f"{body}.{self._mac(body)}"

    def check(self, data: object) -> Button | None:
        """The press ``data`` stands for, or None when it is not a button of this bot."""
        match = _DATA.match(data) if isinstance(data, str) else None
        if match is None:
            return None
        code, row, mac = match.groups()
        if not hmac.compare_digest(mac, self._mac(code + row)):
            return None
        return Button(ACTIONS[code][0], int(row))

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:_MAC_CHARS]


def keyboard(signer: ButtonSigner, row_id: int) -> dict[str, Any]:
    """The ``reply_markup`` of an alert's message: one row of three buttons."""
    return {
        "inline_keyboard": [
            [
                {"text": text, "callback_data": signer.data(action, row_id)}
                for action, text in ACTIONS.values()
            ]
        ]
    }


def without(markup: object, data: str) -> dict[str, Any]:
    """``markup`` (a message's ``reply_markup``) less the button that sent ``data``: after
    a press the other actions stay at hand."""
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    kept = [
        [b for b in row if isinstance(b, dict) and b.get("callback_data") != data]
        for row in (rows if isinstance(rows, list) else [])
        if isinstance(row, list)
    ]
    return {"inline_keyboard": [row for row in kept if row]}
