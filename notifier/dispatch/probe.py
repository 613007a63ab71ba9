"""``notifier notify-test`` and ``notifier check`` for the apprise config."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from notifier.config import Settings
from notifier.dispatch.channels import (
    SECRET_LOGGERS,
    Channel,
    Channels,
    RowSender,
    SendResult,
    url_secrets,
)
from notifier.dispatch.outbox import OutboxRow
from notifier.dispatch.pool import THREAD_GRACE, run_in_thread

__all__ = ["ChannelResult", "check_apprise_config", "notify_test"]

log = logging.getLogger("notifier.dispatch")

TEST_TITLE = "notifier test notification"


def check_apprise_config(settings: Settings) -> list[str]:
    """Every problem apprise reports in ``settings.apprise_config`` (URLs masked, no path)."""
    if settings.telegram.chat_ids and not settings.apprise_config.exists():
        return []  # the Telegram bot alone is a channel
    return Channels.load(settings.apprise_config, url_secrets()).errors


@dataclass(frozen=True, slots=True)
class ChannelResult:
    """How one channel took the test message. ``url`` is the privacy form."""

    url: str
    tags: tuple[str, ...]
    ok: bool
    error: str | None = None


async def notify_test(
    settings: Settings, tag: str | None, senders: Sequence[RowSender] = ()
) -> list[ChannelResult]:
    """Send a test message through every channel (or those matching ``tag``), one by one;
    ``senders`` (the Telegram bot's chats) are channels too.

    An empty list means no channel is configured (problems are logged; see
    ``check_apprise_config``) or none matches ``tag``.
    """
    redactor = url_secrets()
    detach = redactor.attach(SECRET_LOGGERS)
    try:
        load = functools.partial(Channels.load, settings.apprise_config, redactor, senders)
        channels = await asyncio.to_thread(load)
        for error in channels.errors:
            log.warning("%s: %s", settings.apprise_config, error)
        targets = channels.select([tag] if tag else [])
        body = (
            f"If you can read this, notifier on {socket.gethostname()} can reach this "
            f"channel. Sent at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC."
        )
        timeout = settings.delivery.timeout
        return list(await asyncio.gather(*(_one(channels, c, body, timeout) for c in targets)))
    finally:
        detach()


def _test_row(body: str) -> OutboxRow:
    """The test message as an outbox row never stored, for a ``RowSender``."""
    return OutboxRow(
        0, "notify-test", "error", "notifier", TEST_TITLE, body, "info", (), None, 0, None,
        0.0, frozenset(), None, None, False, 0.0,
    )  # fmt: skip


async def _one(channels: Channels, channel: Channel, body: str, limit: float) -> ChannelResult:
    if channel.sender is not None:
        sent = channel.sender.submit(_test_row(body), timeout=limit)
        answer = await asyncio.wait_for(sent, limit + THREAD_GRACE)
        return ChannelResult(channel.label, channel.tags, answer.ok, answer.error)
    call = functools.partial(
        channels.send,
        channel,
        title=TEST_TITLE,
        body=body,
        severity="info",
        timeout=limit,
    )
    try:
        result: SendResult = await asyncio.wait_for(run_in_thread(call), limit + THREAD_GRACE)
    except TimeoutError:
        return ChannelResult(channel.label, channel.tags, False, f"no answer within {limit}s")
    except Exception as exc:
        error = channels.redactor(f"{type(exc).__name__}: {exc}")
        return ChannelResult(channel.label, channel.tags, False, error)
    return ChannelResult(channel.label, channel.tags, result.ok, result.error)
