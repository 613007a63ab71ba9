"""The two-way Telegram bot (SPEC §9): the daemon talks to the Bot API itself.

Sending: one ``ChatSender`` per configured chat is a channel of the dispatcher, so the tags
in ``telegram.tags`` go through the same outbox (retries, dedup, rate limits, quiet hours) on
lanes of their own, and no longer through apprise. Hearing: ``getUpdates`` long polling
(``Poller``) feeds button presses and commands to ``Incoming``, which acts through
``BotActions``.

Built on aiohttp, which the daemon already uses, rather than a bot framework: notifier needs
five methods, its own outbox does retries and rate limits, and a framework would bring its
own dispatcher, session and models for that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from notifier.config import TelegramSettings
from notifier.dispatch.channels import RowSender
from notifier.telegram.actions import ActionError, BotActions
from notifier.telegram.api import BotApi, BotApiError
from notifier.telegram.buttons import ButtonSigner
from notifier.telegram.incoming import Incoming
from notifier.telegram.outgoing import ChatSender, chat_key
from notifier.telegram.poller import POLL_TIMEOUT, Poller

__all__ = [
    "ActionError",
    "BotActions",
    "BotApi",
    "BotApiError",
    "Telegram",
    "chat_key",
]

SECRET_LOGGERS = ("notifier.telegram", "aiohttp.client", "aiohttp.internal")


class Telegram:
    """The bot of one daemon; without chats it does nothing (no senders, ``run`` returns)."""

    def __init__(self, settings: TelegramSettings, *, poll_timeout: int = POLL_TIMEOUT) -> None:
        self.settings = settings
        token = settings.bot_token.get_secret_value().strip()
        self.api = BotApi(token, settings.api_url)
        self._detach = self.api.redact.attach(SECRET_LOGGERS)
        self.signer = ButtonSigner(token)
        tags = tuple(settings.tags)
        self.senders: list[RowSender] = [
            ChatSender(self.api, self.signer, chat, tags) for chat in settings.chat_ids
        ]
        self._poll_timeout = poll_timeout
        self.incoming: Incoming | None = None
        self.poller: Poller | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.settings.chat_ids)

    async def run(self, actions: BotActions, summary: Callable[[], str]) -> None:
        """Listen until cancelled (returns at once without chats)."""
        if not self.enabled:
            return
        chats = self.settings.chat_ids
        self.incoming = Incoming(self.api, self.signer, actions, chats, summary=summary)
        self.poller = Poller(self.api, self.incoming, poll_timeout=self._poll_timeout)
        await self.poller.run()

    async def close(self) -> None:
        """After the last send (the dispatcher drained): close the HTTP session."""
        await self.api.close()
        self._detach()
        await asyncio.sleep(0)  # let aiohttp's transports finish closing
