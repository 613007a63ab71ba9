"""``getUpdates`` long polling: the bot's ears.

One request at a time, held open by Telegram up to ``POLL_TIMEOUT`` seconds; ``offset`` is
one past the last update handled, which also confirms everything before it to Telegram (an
update handled but not yet confirmed when the daemon stops comes again after the restart;
acknowledging twice is harmless). A failing poll backs off with full jitter, or for the
``retry_after`` a 429 names; it is logged when it starts failing and when it works again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from notifier.backoff import BackoffPolicy
from notifier.telegram.api import BotApi, BotApiError
from notifier.telegram.incoming import Incoming

__all__ = ["POLL_BACKOFF", "POLL_TIMEOUT", "Poller"]

log = logging.getLogger("notifier.telegram")

POLL_TIMEOUT = 30  # seconds Telegram holds a getUpdates open when nothing happens
SLACK = 10.0  # more than that before the client gives up on the request
POLL_BACKOFF = BackoffPolicy(base=1.0, cap=60.0)
UPDATES = ["message", "callback_query"]


class Poller:
    """Feeds every update to ``incoming``, in order, until cancelled."""

    def __init__(
        self,
        api: BotApi,
        incoming: Incoming,
        *,
        poll_timeout: int = POLL_TIMEOUT,
        policy: BackoffPolicy = POLL_BACKOFF,
    ) -> None:
        self._api = api
        self._incoming = incoming
        self._poll = poll_timeout
        self._backoff = policy.start()
        self._failing = False
        self.offset: int | None = None

    async def run(self) -> None:
        while True:
            try:
                if not self._incoming.username:
                    await self._hello()
                updates = await self._api.call(
                    "getUpdates", self._params(), within=self._poll + SLACK
                )
            except BotApiError as exc:
                await self._failed(exc)
                continue
            if self._failing:
                log.info("telegram: the Bot API answers again")
                self._failing = False
            self._backoff.reset()
            for update in updates if isinstance(updates, list) else []:
                if isinstance(update, dict):
                    await self._handle(update)

    async def _hello(self) -> None:
        me = await self._api.call("getMe", {}, within=SLACK)
        name = me.get("username") if isinstance(me, dict) else None
        self._incoming.username = str(name or "?")
        log.info("telegram: bot @%s listening", self._incoming.username)

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"timeout": self._poll, "allowed_updates": UPDATES}
        if self.offset is not None:
            params["offset"] = self.offset
        return params

    async def _handle(self, update: dict[str, Any]) -> None:
        update_id = update.get("update_id")
        if isinstance(update_id, int):
            self.offset = max(self.offset or 0, update_id + 1)
        try:
            await self._incoming.handle(update)
        except Exception:  # one bad update must not stop the bot; the logger masks the token
            log.exception("telegram: update %s failed", update_id)

    async def _failed(self, exc: BotApiError) -> None:
        delay = exc.retry_after if exc.retry_after is not None else self._backoff.delay()
        if not self._failing:
            hint = " (another getUpdates or a webhook uses this bot)" if exc.status == 409 else ""
            log.warning("telegram: %s%s; retrying with backoff", exc, hint)
            self._failing = True
        else:
            log.debug("telegram: %s; retrying in %.1fs", exc, delay)
        await asyncio.sleep(delay)
