"""Argyros quote stream (UPSTREAMS §2): websocket subscriptions derived from the rules.

Quote pushes carry no ``exactIn`` field, so a push is mapped back to its subscription by
``(in, out, amount)`` on the connection it arrived on. Two wanted tuples differing only in
``exactIn`` are therefore never placed on the same connection.

Upstream ``type:error`` frames and malformed frames are counted on the feed's health and logged
at most once a minute per kind, with the count held back, so garbage cannot flood the journal.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import msgspec
import orjson

from notifier.backoff import BackoffPolicy
from notifier.config import QuoteSettings
from notifier.events import EventSink, Interest, PairKey, QuoteEvent
from notifier.logthrottle import LogLimiter
from notifier.metrics import Metrics
from notifier.sources.base import FeedHealth, FeedStatus, SourceContext, describe_error
from notifier.sources.websocket import LinkOptions, Socket, WebSocketLink, open_session

__all__ = ["QuoteStream"]

log = logging.getLogger(__name__)

FRAME_PAIRS = 256  # most pairs sent in one subscribe/unsubscribe frame
MAX_FRAME = 64 << 10  # a quote is ~300 bytes; a bigger frame drops the connection
WireKey = tuple[str, str, str]  # (in, out, amount): all a quote push identifies


def _wire(pair: PairKey) -> WireKey:
    return (pair[0], pair[1], pair[2])


class _Quote(msgspec.Struct, tag_field="type", tag="quote", rename={"in_mint": "in"}, gc=False):
    """A quote push as UPSTREAMS §2 types it, read by the fast decoder (unknown fields are
    ignored). A push that types a number otherwise (a digit string, a JSON integer amount)
    takes the orjson path, which reads it as before."""

    in_mint: str
    out: str
    amount: str
    amountOut: str  # the wire names and types
    priceImpactBps: int
    hops: int
    slot: int


class _Ack(msgspec.Struct, tag_field="type", tag="subscribed", gc=False):
    count: Any = None


class _Nack(msgspec.Struct, tag_field="type", tag="unsubscribed", gc=False):
    count: Any = None


class _Error(msgspec.Struct, tag_field="type", tag="error", gc=False):
    message: Any = None


# Decodes a well-formed frame straight into a struct; anything it refuses (bad JSON, a missing
# field, a wrong type, an unknown ``type``) takes the orjson path, which says what is wrong.
_decode = msgspec.json.Decoder(_Quote | _Ack | _Nack | _Error).decode
_FRAME_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)


def _as_int(value: Any) -> int:
    if type(value) is int:  # the common cases first: this runs four times per quote frame
        return value
    if type(value) is str:  # amounts come as digit strings
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"not an integer: {value!r}")
    return int(value)


class _Connection:
    """One websocket slot: the pairs it owns and the subscription changes not yet sent."""

    link: WebSocketLink  # set by the stream right after construction

    def __init__(self, index: int) -> None:
        self.index = index
        self.pairs: dict[WireKey, PairKey] = {}
        self.to_subscribe: set[PairKey] = set()
        self.to_unsubscribe: set[PairKey] = set()
        self.dirty = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def has_room(self, pair: PairKey, limit: int) -> bool:
        wire = _wire(pair)
        return (
            len(self.pairs) < limit
            and wire not in self.pairs
            and all(_wire(p) != wire for p in self.to_unsubscribe)
        )

    def add(self, pair: PairKey) -> None:
        self.pairs[_wire(pair)] = pair
        if pair in self.to_unsubscribe:
            self.to_unsubscribe.discard(pair)
        else:
            self.to_subscribe.add(pair)
        self.dirty.set()

    def remove(self, pair: PairKey) -> None:
        del self.pairs[_wire(pair)]
        if pair in self.to_subscribe:
            self.to_subscribe.discard(pair)
        else:
            self.to_unsubscribe.add(pair)
        self.dirty.set()

    def take_pending(self) -> tuple[list[PairKey], list[PairKey]]:
        """Changes to send now, as (unsubscribe, subscribe)."""
        gone, new = sorted(self.to_unsubscribe), sorted(self.to_subscribe)
        self.to_unsubscribe.clear()
        self.to_subscribe.clear()
        self.dirty.clear()
        return gone, new


class QuoteStream:
    """Keeps the wanted pairs subscribed over as few connections as the 256-pair cap allows."""

    name = "quote"

    def __init__(
        self,
        settings: QuoteSettings,
        sink: EventSink,
        metrics: Metrics,
        *,
        backoff: BackoffPolicy | None = None,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._key = settings.api_key.get_secret_value()
        parts = urlsplit(settings.url)
        query = [*parse_qsl(parts.query), ("key", self._key)] if self._key else []
        self._url = urlunsplit(parts._replace(query=urlencode(query))) if query else settings.url
        self._log_url = urlunsplit(parts._replace(query=""))  # never log the key
        self._backoff = backoff or BackoffPolicy()
        self._health = FeedHealth("quote", sink, metrics)
        self._count = metrics.events.feed("quote")  # what ``_health.event`` counts, inlined
        self._emit = sink.emit
        self._limited = LogLimiter(log)
        self._socket_options = LinkOptions(
            log,
            self._health,
            self._backoff,
            settings.heartbeat,
            MAX_FRAME,
            self._refresh_health,
            (self._key,),
        )
        self._connections: list[_Connection] = []
        self._home: dict[PairKey, _Connection] = {}
        self._next_index = 0
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def create(cls, context: SourceContext) -> Self | None:
        settings = context.settings.quotes
        return cls(settings, context.sink, context.metrics) if settings.enabled else None

    def set_interest(self, interest: Interest) -> None:
        """Move to ``interest.pairs``; live connections get only (un)subscribe frames."""
        wanted = interest.pairs
        gone = [pair for pair in self._home if pair not in wanted]
        new = sorted(pair for pair in wanted if pair not in self._home)
        for pair in gone:
            self._home.pop(pair).remove(pair)
        for pair in new:
            connection = self._place(pair)
            connection.add(pair)
            self._home[pair] = connection
        for connection in [c for c in self._connections if not c.pairs]:
            self._connections.remove(connection)
            if connection.task is not None:
                connection.task.cancel()
        if gone or new:
            log.info(
                "quote subscriptions: +%d -%d, %d pairs on %d connection(s)",
                len(new),
                len(gone),
                len(self._home),
                len(self._connections),
            )
        self._changed.set()

    def connection_pairs(self) -> list[frozenset[PairKey]]:
        """The pairs each connection owns, in connection order."""
        return [frozenset(c.pairs.values()) for c in self._connections]

    def status(self) -> FeedStatus:
        live = sum(1 for c in self._connections if c.link.ws is not None)
        return self._health.status(connections=live, tracked=len(self._home))

    async def run(self) -> None:
        async with open_session() as session:
            try:
                while True:
                    self._changed.clear()
                    self._start_missing(session)
                    self._refresh_health()
                    await self._changed.wait()
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _place(self, pair: PairKey) -> _Connection:
        limit = self._settings.max_pairs_per_connection
        for connection in self._connections:
            # Removed and wanted again before the unsubscribe went out: just cancel it.
            if pair in connection.to_unsubscribe and len(connection.pairs) < limit:
                return connection
        for connection in self._connections:
            if connection.has_room(pair, limit):
                return connection
        connection = _Connection(self._next_index)
        self._next_index += 1
        connection.link = WebSocketLink(
            self._url,
            f"quote connection #{connection.index} to {self._log_url}",
            self._socket_options,
            on_frame=functools.partial(self._on_frame, connection),
            on_malformed=functools.partial(self._malformed, connection),
            on_connect=functools.partial(self._subscribed, connection),
        )
        self._connections.append(connection)
        return connection

    def _start_missing(self, session: aiohttp.ClientSession) -> None:
        for connection in self._connections:
            if connection.task is None:
                task = asyncio.create_task(
                    connection.link.run(session), name=f"quote-connection-{connection.index}"
                )
                connection.task = task
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _refresh_health(self) -> None:
        failed = [c for c in self._connections if c.link.failed]
        if failed:
            names = ", ".join(f"#{c.index}" for c in failed)
            self._health.set(False, f"{len(failed)}/{len(self._connections)} down ({names})")
        elif not self._connections:
            self._health.set(True, "idle: no pairs wanted")
        elif any(c.link.connects for c in self._connections):
            live = sum(1 for c in self._connections if c.link.ws is not None)
            self._health.set(True, f"{live}/{len(self._connections)} connected")

    @asynccontextmanager
    async def _subscribed(self, connection: _Connection, ws: Socket) -> AsyncIterator[None]:
        """Around one connection: subscribe every pair it owns, then send changes as they come."""
        # A new socket holds no subscriptions: send the whole set, not the pending diff.
        connection.take_pending()
        pairs = sorted(connection.pairs.values())
        log.info("quote connection #%d: subscribing %d pair(s)", connection.index, len(pairs))
        await self._send(ws, "subscribe", pairs)
        writer = asyncio.create_task(self._write(connection, ws))
        try:
            yield
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _write(self, connection: _Connection, ws: Socket) -> None:
        while True:
            await connection.dirty.wait()
            gone, new = connection.take_pending()
            await self._send(ws, "unsubscribe", gone)
            await self._send(ws, "subscribe", new)

    @staticmethod
    async def _send(ws: Socket, op: str, pairs: Sequence[PairKey]) -> None:
        for start in range(0, len(pairs), FRAME_PAIRS):
            frame = {"op": op, "pairs": list(_wire_pairs(pairs[start : start + FRAME_PAIRS]))}
            await ws.send_str(orjson.dumps(frame).decode())

    def _on_frame(self, connection: _Connection, data: str | bytes) -> None:
        """Parse one frame and hand a quote to the sink; never awaits. The hot path: once per
        quote, so ``_as_int`` and ``FeedHealth.event`` are inlined."""
        try:
            frame = _decode(data)
        except _FRAME_ERRORS:
            self._on_odd_frame(connection, data)
            return
        if type(frame) is _Quote:
            try:  # a digit string; anything else int() takes, as ``_as_int`` does
                amount_out = int(frame.amountOut)
            except ValueError as exc:
                self._malformed(connection, f"bad quote ({describe_error(exc)})", data)
                return
            pair = connection.pairs.get((frame.in_mint, frame.out, frame.amount))
            if pair is None:
                return  # unsubscribed meanwhile, or not ours
            at = time.time()
            count = self._count
            count.last_event_at = at
            count.events += 1
            self._emit(
                QuoteEvent(pair, amount_out, frame.priceImpactBps, frame.hops, frame.slot, at)
            )
        elif type(frame) is _Error:
            self._upstream_error(connection, frame.message)
        else:
            kind = "subscribed" if type(frame) is _Ack else "unsubscribed"
            log.debug("quote connection #%d: %s %s", connection.index, kind, frame.count)

    def _on_odd_frame(self, connection: _Connection, data: str | bytes) -> None:
        """A frame the fast decoder refused: read it as a dict to say what is wrong with it."""
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._malformed(connection, "not JSON", data)
            return
        if not isinstance(frame, dict):
            self._malformed(connection, "not an object", data)
            return
        kind = frame.get("type")
        if kind == "quote":
            self._on_quote(connection, frame, data)
        elif kind in ("subscribed", "unsubscribed"):
            log.debug("quote connection #%d: %s %s", connection.index, kind, frame.get("count"))
        elif kind == "error":
            self._upstream_error(connection, frame.get("message"))
        else:
            self._malformed(connection, f"unknown type {kind!r}", data)

    def _upstream_error(self, connection: _Connection, message: Any) -> None:
        self._health.errors += 1
        self._limited.warning(
            "error", "quote connection #%d: upstream error: %.200r", connection.index, message
        )

    def _on_quote(self, connection: _Connection, frame: dict[str, Any], data: str | bytes) -> None:
        try:
            wire = (frame["in"], frame["out"], frame["amount"])
            amount_out = _as_int(frame["amountOut"])
            impact = _as_int(frame["priceImpactBps"])
            hops = _as_int(frame["hops"])
            slot = _as_int(frame["slot"])
        except (KeyError, TypeError, ValueError) as exc:
            self._malformed(connection, f"bad quote ({describe_error(exc)})", data)
            return
        try:
            pair = connection.pairs.get(wire)
        except TypeError:  # unhashable: a list or an object where a string belongs
            pair = None
        if pair is None:  # a hit needs no type check: only a str equals a subscribed str
            if not all(isinstance(part, str) for part in wire):
                self._malformed(connection, "bad quote (in/out/amount not strings)", data)
            return  # unsubscribed meanwhile, or not ours
        at = time.time()
        self._health.event(at)
        self._sink.emit(QuoteEvent(pair, amount_out, impact, hops, slot, at))

    def _malformed(self, connection: _Connection, why: str, data: str | bytes) -> None:
        self._health.malformed()
        self._limited.warning(
            "malformed",
            "quote connection #%d: skipped malformed frame (%s): %.200r",
            connection.index,
            why,
            data,
        )


def _wire_pairs(pairs: Iterable[PairKey]) -> Iterable[dict[str, Any]]:
    for in_mint, out_mint, amount, exact_in in pairs:
        yield {"in": in_mint, "out": out_mint, "amount": amount, "exactIn": exact_in}
