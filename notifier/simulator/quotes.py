"""Simulated Argyros quote stream, ``WS /api/v1/stream?key=`` (UPSTREAMS §2).

`QuoteStream` keeps one quote per ``(in, out, amount)`` (priced by `QuoteBook`, quotebook.py) and
pushes it to every connection subscribed to that triple (with either ``exactIn``). A seeded random
walk moves the reference prices of subscribed pairs; `QuoteStream.set_quote` scripts an exact
quote (and re-anchors the price).

Push policy as upstream: the first quote of a newly accepted pair goes out at once (before the
ack); later quotes only when ``amountOut``, ``priceImpactBps`` or ``hops`` changed, coalesced over
``coalesce`` seconds. While recording, the wall-clock time (``time.time()``) each slot was first
written to a socket is kept in `QuoteStream.sent_at`, for latency measurements (see
`QuoteStream.flood`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from notifier.events import PairKey
from notifier.simulator.quotebook import Quote, QuoteBook, Triple
from notifier.simulator.wire import Peer, json_response, loads_object

__all__ = ["MAX_SUBSCRIPTIONS", "QuoteStream"]

MAX_SUBSCRIPTIONS = 256
_DIGITS = re.compile(r"[0-9]+")


class QuoteStream:
    """The quote-stream upstream: websocket handler, price model and scripting methods."""

    def __init__(
        self,
        *,
        key: str,
        seed: int = 0,
        random_walk: bool = True,
        walk_interval: float = 1.0,
        volatility: float = 0.002,
        coalesce: float = 0.05,
        queue_size: int = 1024,
    ) -> None:
        self.key = key
        self.random_walk = random_walk
        self.walk_interval = walk_interval
        self.volatility = volatility
        self.coalesce = coalesce
        self.queue_size = queue_size
        self.refusing = False
        self.frames_sent = 0
        self.quotes_sent = 0
        self.dropped_slow = 0
        self.sent_at: dict[int, float] = {}
        self.recording = False
        self._book = QuoteBook(seed)
        self._peers: set[Peer] = set()
        self._subs: dict[Peer, set[PairKey]] = {}
        self._by_pair: dict[PairKey, set[Peer]] = {}
        self._dirty: set[Triple] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the random walk (when enabled)."""
        if self.random_walk:
            self._spawn(self._walk())

    async def stop(self) -> None:
        """Stop background tasks and drop every connection."""
        if self._flush is not None:
            self._flush.cancel()
        for task in self._tasks:
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.drop_connections()

    def routes(self) -> list[web.RouteDef]:
        """The stream's route at its real path."""
        return [web.get("/api/v1/stream", self.handle)]

    # -- scripting ----------------------------------------------------------------------------

    def set_quote(  # noqa: PLR0917 - the public scripting signature takes them positionally
        self,
        in_mint: str,
        out_mint: str,
        amount: str,
        amount_out: int,
        price_impact_bps: int = 0,
        hops: int = 1,
    ) -> None:
        """Script the exact quote of a triple; subscribers get it after the coalescing window.

        The pair's reference price is re-anchored to it, so a running walk moves on from there.
        """
        triple = (in_mint, out_mint, str(amount))
        self._book.script(triple, amount_out, price_impact_bps, hops)
        self._update(triple, amount_out, price_impact_bps, hops)

    def set_price(self, in_mint: str, out_mint: str, price: float) -> None:
        """Set a pair's reference price (raw out units per raw in unit) and requote its triples."""
        self._book.set_price(in_mint, out_mint, price)
        self._requote(in_mint, out_mint)

    def quote(self, in_mint: str, out_mint: str, amount: str) -> Quote:
        """The current quote of a triple (computed from the price model on first use)."""
        return self._book.quote((in_mint, out_mint, str(amount)))

    def drop_connections(self) -> int:
        """Abort every quote socket abruptly (no close frame); answer how many were open."""
        peers = list(self._peers)
        for peer in peers:
            peer.abort()
        return len(peers)

    def send_raw(self, data: bytes) -> int:
        """Send ``data`` as is, as one text frame, to every quote connection (tolerance tests)."""
        peers = list(self._peers)
        for peer in peers:
            peer.send(data)
        return len(peers)

    def refuse_connections(self, refuse: bool = True) -> None:
        """While refusing, upgrade requests are answered ``503``."""
        self.refusing = refuse

    def connection_count(self) -> int:
        """Open quote connections."""
        return len(self._peers)

    def subscription_count(self, peer: Peer | None = None) -> int:
        """Subscriptions over every connection, or of one connection."""
        if peer is not None:
            return len(self._subs.get(peer, ()))
        return sum(len(subs) for subs in self._subs.values())

    def subscriptions(self) -> dict[Peer, frozenset[PairKey]]:
        """Each open connection's subscribed pairs."""
        return {peer: frozenset(pairs) for peer, pairs in self._subs.items()}

    def subscribed_pairs(self) -> set[PairKey]:
        """Every pair that at least one connection subscribes."""
        return {pair for pair, peers in self._by_pair.items() if peers}

    def record(self, on: bool = True) -> None:
        """Turn recording of per-slot send times on or off."""
        self.recording = on

    def send_times(self) -> dict[int, float]:
        """Wall-clock time each recorded slot was first written to a socket."""
        return dict(self.sent_at)

    def clear_send_times(self) -> None:
        """Forget recorded send times."""
        self.sent_at.clear()

    async def flood(self, rate_per_s: float, duration_s: float) -> int:
        """Push changing quotes for every subscribed triple at ``rate_per_s`` frames in total.

        Each update is a material change (``amountOut`` toggles by one unit), pushed at once
        without coalescing, with send times recorded. Answers the number of quote updates made.
        """
        self.recording = True
        loop = asyncio.get_running_loop()
        start = loop.time()
        done = 0
        index = 0
        burst = max(1, min(64, self.queue_size // 4))
        while (elapsed := loop.time() - start) < duration_s:
            triples = sorted({pair[:3] for pair in self.subscribed_pairs()})
            if triples:
                due = int(rate_per_s * elapsed) - done
                for _ in range(due):
                    triple = triples[index % len(triples)]
                    index += 1
                    current = self.quote(*triple)
                    bump = -1 if current.amount_out % 2 else 1
                    self._update(
                        triple,
                        current.amount_out + bump,
                        current.price_impact_bps,
                        current.hops,
                        now=True,
                    )
                    done += 1
                    if done % burst == 0:
                        await asyncio.sleep(0)  # let writers drain: a burst is not slowness
            await asyncio.sleep(0.005)
        return done

    # -- websocket ------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/stream?key=``: the key is checked before the upgrade."""
        key = request.query.get("key")
        if not key:
            return json_response({"success": False, "error": "missing api key"}, 401)
        if key != self.key:
            return json_response({"success": False, "error": "invalid api key"}, 403)
        if self.refusing:
            return json_response({"success": False, "error": "service unavailable"}, 503)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        peer = Peer(ws, request.transport, self.queue_size, self._on_sent)
        self._peers.add(peer)
        self._subs[peer] = set()
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_message(peer, msg.data)
        finally:
            self._forget(peer)
            await peer.finish()
        return ws

    def _on_message(self, peer: Peer, data: str | bytes) -> None:
        message = loads_object(data)
        if message is None:
            peer.send_json({"type": "error", "message": "invalid json"})
            return
        op = message.get("op")
        raw = message.get("pairs")
        pairs = [p for p in (_pair(item) for item in raw) if p] if isinstance(raw, list) else []
        if op == "subscribe":
            self._subscribe(peer, pairs)
        elif op == "unsubscribe":
            subs = self._subs[peer]
            count = 0
            for pair in dict.fromkeys(pairs):
                if pair in subs:
                    subs.discard(pair)
                    self._by_pair[pair].discard(peer)
                    count += 1
            peer.send_json({"type": "unsubscribed", "count": count})
        else:
            peer.send_json({"type": "error", "message": "unknown op"})

    def _subscribe(self, peer: Peer, pairs: list[PairKey]) -> None:
        subs = self._subs[peer]
        count = 0
        refused = 0
        for pair in pairs:
            if pair in subs:
                continue
            if len(subs) >= MAX_SUBSCRIPTIONS:
                refused += 1
                continue
            subs.add(pair)
            self._by_pair.setdefault(pair, set()).add(peer)
            count += 1
            # The first quote of a new pair goes out at once, before the ack (as upstream).
            current = self.quote(*pair[:3])
            peer.send(self._frame(pair[:3], current), current.slot)
        peer.send_json({"type": "subscribed", "count": count})
        if refused:
            # Upstream documents the 256 cap but not what happens beyond it (UPSTREAMS §2.3 [?]):
            # the simulator accepts none past the cap and says so in a `type: error` message.
            message = (
                f"subscription limit {MAX_SUBSCRIPTIONS} reached: {refused} pairs not accepted"
            )
            peer.send_json({"type": "error", "message": message})

    def _forget(self, peer: Peer) -> None:
        self._peers.discard(peer)
        if peer.overflowed:
            self.dropped_slow += 1
        for pair in self._subs.pop(peer, set()):
            peers = self._by_pair.get(pair)
            if peers is not None:
                peers.discard(peer)
                if not peers:
                    del self._by_pair[pair]

    def _on_sent(self, tag: int | None) -> None:
        self.frames_sent += 1
        if tag is not None:
            self.quotes_sent += 1
            if self.recording:
                self.sent_at.setdefault(tag, time.time())

    def _requote(self, in_mint: str, out_mint: str) -> None:
        for triple in self._book.triples(in_mint, out_mint):
            self._update(triple, *self._book.model(triple))

    def _update(
        self, triple: Triple, amount_out: int, impact: int, hops: int, *, now: bool = False
    ) -> None:
        if not self._book.put(triple, amount_out, impact, hops):
            return
        if now:
            self._dirty.discard(triple)
            self._push(triple)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # scripted before start: no connection can be waiting for it
        self._dirty.add(triple)
        if self._flush is None:
            self._flush = loop.call_later(self.coalesce, self._flush_dirty)

    def _flush_dirty(self) -> None:
        self._flush = None
        dirty, self._dirty = self._dirty, set()
        for triple in dirty:
            self._push(triple)

    def _push(self, triple: Triple) -> None:
        current = self._book.quote(triple)
        frame: bytes | None = None
        for exact_in in (True, False):
            for peer in list(self._by_pair.get((*triple, exact_in), ())):
                frame = frame or self._frame(triple, current)
                peer.send(frame, current.slot)

    @staticmethod
    def _frame(triple: Triple, quote: Quote) -> bytes:
        in_mint, out_mint, amount = triple
        return orjson.dumps(
            {
                "type": "quote",
                "in": in_mint,
                "out": out_mint,
                "amount": amount,
                "amountOut": str(quote.amount_out),
                "priceImpactBps": quote.price_impact_bps,
                "hops": quote.hops,
                "slot": quote.slot,
            }
        )

    async def _walk(self) -> None:
        while True:
            await asyncio.sleep(self.walk_interval)
            for in_mint, out_mint in sorted({pair[:2] for pair in self.subscribed_pairs()}):
                self._book.step(in_mint, out_mint, self.volatility)
                self._requote(in_mint, out_mint)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _pair(item: Any) -> PairKey | None:
    """A valid subscription tuple, or None for anything upstream would silently skip."""
    if not isinstance(item, dict):
        return None
    in_mint, out_mint = item.get("in"), item.get("out")
    amount, exact_in = item.get("amount"), item.get("exactIn")
    if not (isinstance(in_mint, str) and in_mint and isinstance(out_mint, str) and out_mint):
        return None
    if not (isinstance(amount, str) and _DIGITS.fullmatch(amount)):
        return None
    if not isinstance(exact_in, bool):
        return None
    return (in_mint, out_mint, amount, exact_in)
