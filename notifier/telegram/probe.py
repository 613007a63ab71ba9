"""``notifier notify-test`` with the bot's chats among the channels it tries."""

from __future__ import annotations

from notifier.config import Settings
from notifier.dispatch import ChannelResult
from notifier.dispatch import notify_test as notify_channels
from notifier.telegram import Telegram

__all__ = ["notify_test"]


async def notify_test(settings: Settings, tag: str | None) -> list[ChannelResult]:
    """One test message through every channel matching ``tag``: apprise's and, for the tags
    in ``telegram.tags``, each chat of the bot instead."""
    bot = Telegram(settings.telegram)
    try:
        return await notify_channels(settings, tag, bot.senders)
    finally:
        await bot.close()
