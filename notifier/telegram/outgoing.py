"""The bot as a delivery channel: one ``ChatSender`` per chat in ``telegram.chat_ids``, each
with its own lane in the dispatcher, sending outbox rows with ``sendMessage``.

A row that says an alert fires carries the three buttons; resolves, digests and error
reports carry none. The outcome is a ``SendResult`` like apprise's: a 429, a 5xx or a network
failure is retryable, any other refusal (chat not found, bot blocked, bad token) is not.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from notifier.dispatch.channels import SendResult
from notifier.dispatch.outbox import OutboxRow
from notifier.telegram.api import BotApi, BotApiError
from notifier.telegram.buttons import ButtonSigner, keyboard
from notifier.telegram.messages import alert_of, render

__all__ = ["ChatSender", "chat_key"]

log = logging.getLogger("notifier.telegram")


def chat_key(chat_id: int) -> str:
    """The outbox's channel key of a chat: stable across restarts and token changes."""
    return hashlib.sha256(f"telegram-bot:{chat_id}".encode()).hexdigest()[:24]


class ChatSender:
    """Sends outbox rows to one chat (a ``RowSender`` of the dispatcher)."""

    def __init__(
        self, api: BotApi, signer: ButtonSigner, chat_id: int, tags: tuple[str, ...]
    ) -> None:
        self._api = api
        self._signer = signer
        self.chat_id = chat_id
        self.key = chat_key(chat_id)
        self.label = f"telegram-bot:chat/{chat_id}"
        self.tags = tags

    def submit(self, row: OutboxRow, *, timeout: float) -> asyncio.Future[SendResult]:
        return asyncio.ensure_future(self._send(row, timeout))

    def params(self, row: OutboxRow) -> dict[str, Any]:
        """The ``sendMessage`` parameters of ``row``."""
        text, entities = render(row.title, row.body, row.severity)
        params: dict[str, Any] = {
            "chat_id": self.chat_id,
            "text": text,
            "entities": entities,
            "link_preview_options": {"is_disabled": True},
        }
        if alert_of(row.kind, row.rule_id, row.key) is not None:
            params["reply_markup"] = keyboard(self._signer, row.id)
        return params

    async def _send(self, row: OutboxRow, within: float) -> SendResult:
        keys = frozenset({self.key})
        try:
            await self._api.call("sendMessage", self.params(row), within=within)
        except BotApiError as exc:
            return SendResult(False, frozenset(), keys, exc.retryable, str(exc), exc.uncertain)
        except Exception as exc:  # a bug here must not leak the token through a traceback
            error = self._api.redact(f"sendMessage failed: {type(exc).__name__}: {exc}")
            log.exception("%s", error)
            return SendResult(False, frozenset(), keys, True, error)
        return SendResult(True, keys, frozenset(), False)
