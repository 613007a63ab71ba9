"""The 1inch Fusion orders REST API the feed looks orders up with (fusion-sdk ``OrdersApi``,
and solana-fusion-sdk's for chain 501 under ``v1.0``): an order's status by hash, the active
orders, and (EVM only) a maker's orders since a time.

Every call goes through the feed's session (Bearer key) with at most ``concurrency`` requests
at once; a failure is logged without the key (each kind at most once a minute), counted on the
feed's health and answered None. Bodies are refused past ``MAX_STATUS_BODY`` (one order) or
``MAX_LIST_BODY`` (a page of up to 500) bytes, unread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import orjson

from notifier.logthrottle import LogLimiter
from notifier.sources.base import BodyTooLarge, FeedHealth, describe_error, read_body
from notifier.sources.fusion.wire import Listed, RestStatus, int_or_none

__all__ = ["OrderRest"]

log = logging.getLogger(__name__)
T = TypeVar("T")

ACTIVE_PAGE_LIMIT = 500
ACTIVE_MAX_PAGES = 20
MAKER_PAGE_LIMIT = 500  # the SDK's PaginationRequest allows 1..500
MAKER_MAX_PAGES = 10
REST_TIMEOUT = aiohttp.ClientTimeout(total=15)
MAX_STATUS_BODY = 1 << 20
MAX_LIST_BODY = 16 << 20


class OrderRest:
    """Order look-ups for one feed, usable while ``open`` (between ``open`` and ``close``)."""

    def __init__(
        self, base: str, version: str, health: FeedHealth, key: str, concurrency: int
    ) -> None:
        self._base = base.rstrip("/")
        self._version = version
        self._health = health
        self._key = key
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._limited = LogLimiter(log)
        self.listed_all = False  # the last ``active`` listing reached its last page

    @property
    def open(self) -> bool:
        return self._session is not None

    def start(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._slots = asyncio.Semaphore(self._concurrency)

    def stop(self) -> None:
        self._session = None

    def _url(self, chain: int, path: str) -> str:
        return f"{self._base}/orders/{self._version}/{chain}/order/{path}"

    async def status(self, chain: int, order_hash: str) -> RestStatus | None:
        """``GET …/order/status/{hash}`` on an EVM chain."""
        return await self.status_as(chain, order_hash, RestStatus.parse)

    async def status_as(
        self, chain: int, order_hash: str, parse: Callable[[str, Mapping[str, Any]], T | None]
    ) -> T | None:
        """``GET …/order/status/{hash}``, read by ``parse`` (the EVM or the Solana wire)."""
        url = self._url(chain, f"status/{order_hash}")
        body = await self._get_json(url, limit=MAX_STATUS_BODY)
        found = parse(order_hash, body) if isinstance(body, dict) else None
        if body is not None and found is None:
            self._health.malformed()
            self._limited.warning("no status", "order REST %s: no status in the response", url)
        return found

    async def active(self, chain: int) -> AsyncIterator[Any]:
        """Every item of ``GET …/order/active``, page after page, until one fails
        (``listed_all`` tells which)."""
        url = self._url(chain, "active")
        self.listed_all = False
        page = 1
        while page <= ACTIVE_MAX_PAGES:
            body = await self._get_json(url, {"page": page, "limit": ACTIVE_PAGE_LIMIT})
            if not isinstance(body, dict):
                return
            items = body.get("items")
            for item in items if isinstance(items, list) else []:
                yield item
            following = _next_page(body)
            if following is None:
                self.listed_all = True
                return
            page = following

    async def by_maker(self, chain: int, maker: str, since_ms: int) -> list[Listed] | None:
        """Every page of ``maker``'s orders created since ``since_ms``; None on any failure.

        fusion-sdk ``getOrdersByMaker``: ``GET {url}/orders/v2.0/{chain}/order/maker/{address}/``
        with ``limit`` and ``page``, answering ``{items, meta}``. ``timestampFrom`` (ms) is not
        in the EVM SDK but is in 1inch's sibling endpoints; the ``createdAt`` check below keeps
        the result right if the server ignores it.
        """
        # The trailing slash is the SDK's (``…/maker/${address}/${queryParams}``).
        url = self._url(chain, f"maker/{maker}/")
        found: list[Listed] = []
        page = 1
        for _ in range(MAKER_MAX_PAGES):
            params = {"limit": MAKER_PAGE_LIMIT, "page": page, "timestampFrom": since_ms}
            body = await self._get_json(url, params)
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(body, dict) or not isinstance(items, list):
                if body is not None:
                    self._health.malformed()
                    self._limited.warning(
                        "no items", "order REST %s: no items in the response", url
                    )
                return None
            for item in items:
                listed = Listed.parse(maker, item)
                if listed is None:
                    self._health.malformed()
                    self._limited.warning(
                        "bad item", "order REST %s: skipped an unusable item: %.200r", url, item
                    )
                elif listed.created_ms is None or listed.created_ms >= since_ms:
                    found.append(listed)
            following = _next_page(body)
            if following is None:
                return found
            page = following
        log.warning(
            "order REST %s: more than %d pages since the last sync; the rest are not checked",
            url,
            MAKER_MAX_PAGES,
        )
        return found

    async def _get_json(
        self, url: str, params: Mapping[str, int] | None = None, *, limit: int = MAX_LIST_BODY
    ) -> Any:
        """GET a JSON body of at most ``limit`` bytes; None (logged) on any failure."""
        session, slots = self._session, self._slots
        if session is None or slots is None:
            return None
        async with slots:
            try:
                async with session.get(url, params=params, timeout=REST_TIMEOUT) as response:
                    if response.status != 200:
                        level = logging.INFO if response.status == 404 else logging.WARNING
                        self._limited.log(
                            level, f"HTTP {level}", "order REST %s: HTTP %d", url, response.status
                        )
                        if response.status != 404:
                            self._health.errors += 1
                        return None
                    body = await read_body(response, limit)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._health.errors += 1
                self._limited.warning(
                    "failed", "order REST %s failed: %s", url, describe_error(exc, self._key)
                )
                return None
            except BodyTooLarge as exc:
                self._health.malformed()
                self._limited.warning("too large", "order REST %s: %s", url, exc)
                return None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            self._health.malformed()
            self._limited.warning("not JSON", "order REST %s: body is not JSON", url)
            return None


def _next_page(body: Mapping[str, Any]) -> int | None:
    """The page after this one per ``meta``; None on the last page or without ``meta``."""
    meta = body.get("meta")
    current = int_or_none(meta.get("currentPage")) if isinstance(meta, dict) else None
    total = int_or_none(meta.get("totalPages")) if isinstance(meta, dict) else None
    if current is None or total is None or current >= total:
        return None
    return current + 1
