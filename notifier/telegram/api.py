"""The daemon's own Telegram Bot API client: one aiohttp session, four methods' worth of
protocol (``sendMessage``, ``getUpdates``, ``answerCallbackQuery``, ``editMessageText``).

The bot token is part of every request's URL path (``/bot<token>/METHOD``), so no aiohttp
exception, URL or response text leaves this module unmasked: every failure becomes a
``BotApiError`` whose message went through the token's redactor, raised without its cause.
A ``429`` answer's ``retry_after`` holds back every later call of this client, not only the
one that got it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from notifier.secrets import Secrets

__all__ = ["BotApi", "BotApiError"]

USER_AGENT = "notifier-telegram"
MAX_RESPONSE_BYTES = 4_000_000  # 100 updates of long messages stay far below this


class BotApiError(Exception):
    """A call failed; the message is secret-free. ``retryable``: trying again may help;
    ``retry_after``: Telegram asked for this many seconds of quiet first (429)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
        uncertain: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.uncertain = uncertain  # timed out: Telegram may have done it all the same


class BotApi:
    """Calls Bot API methods on ``api_url`` with ``token``; create and close it on the loop
    that uses it."""

    def __init__(self, token: str, api_url: str, *, now: Any = time.monotonic) -> None:
        self._base = f"{api_url.rstrip('/')}/bot{token}/"
        self.redact = Secrets(name="notifier.telegram.secrets")
        self.redact.add([token])
        self._now = now
        self._session: aiohttp.ClientSession | None = None
        self._not_before = 0.0  # a 429's retry_after: no call before this (monotonic)

    async def call(self, method: str, params: Mapping[str, Any], *, within: float) -> Any:
        """POST ``params`` as JSON to ``method`` and return its ``result``. Waits out a
        ``retry_after`` (earlier or new) that ends ``within`` seconds; raises ``BotApiError``
        otherwise, and for every failure."""
        deadline = self._now() + within
        while True:
            wait = self._not_before - self._now()
            if wait > 0:
                if self._now() + wait >= deadline:
                    raise BotApiError(
                        f"{method}: Telegram asked to wait {wait:.0f}s (flood control)",
                        status=429,
                        retry_after=wait,
                    )
                await asyncio.sleep(wait)
            try:
                return await self._once(method, params, max(deadline - self._now(), 0.1))
            except BotApiError as exc:
                if exc.retry_after is None:
                    raise
                self._not_before = max(self._not_before, self._now() + exc.retry_after)
                if self._not_before >= deadline:
                    raise

    async def _once(self, method: str, params: Mapping[str, Any], within: float) -> Any:
        session = self._open()
        try:
            async with session.post(
                self._base + method,
                data=orjson.dumps(dict(params)),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=within),
            ) as response:
                status = response.status
                body = await response.content.read(MAX_RESPONSE_BYTES)
        except TimeoutError:
            raise BotApiError(f"{method}: no answer within {within:.0f}s", uncertain=True) from None
        except (aiohttp.ClientError, OSError) as exc:
            text = self.redact(f"{method}: {type(exc).__name__}: {exc}")
            raise BotApiError(text) from None
        return self._result(method, status, body)

    def _result(self, method: str, status: int, body: bytes) -> Any:
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise BotApiError(
                f"{method}: HTTP {status} without a Bot API answer",
                status=status,
                retryable=status >= 500 or status == 429,
            )
        if answer.get("ok") is True and status < 400:
            return answer.get("result")
        code = answer.get("error_code")
        code = code if isinstance(code, int) else status
        description = self.redact(str(answer.get("description") or f"HTTP {status}"))
        parameters = answer.get("parameters")
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        if code == 429:
            after = float(retry_after) if isinstance(retry_after, int | float) else 1.0
            raise BotApiError(f"{method}: {description}", status=code, retry_after=after)
        if code in {401, 404}:
            description += " (is telegram.bot_token right?)"
        raise BotApiError(f"{method}: {description}", status=code, retryable=code >= 500)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
