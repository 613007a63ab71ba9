"""``notifier notify-test`` and ``notifier check`` for the apprise config."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from notifier.config import Settings
from notifier.dispatch.channels import SECRET_LOGGERS, Channel, Channels, SendResult, url_secrets
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


async def notify_test(settings: Settings, tag: str | None) -> list[ChannelResult]:
    """Send a test message through every channel (or those matching ``tag``), one by one.

    An empty list means no channel is configured (problems are logged; see
    ``check_apprise_config``) or none matches ``tag``.
    """
    redactor = url_secrets()
    detach = redactor.attach(SECRET_LOGGERS)
    try:
        channels = await asyncio.to_thread(Channels.load, settings.apprise_config, redactor)
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


async def _one(channels: Channels, channel: Channel, body: str, limit: float) -> ChannelResult:
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
