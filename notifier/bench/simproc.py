"""The bench's simulator process: ``python -m notifier.bench.simproc``.

The project's `Simulator` on a free loopback port, without the random walk (the bench scripts
every quote), with deep per-connection queues (a consumer slower than the flood is measured,
not dropped), and two extra control routes:

- ``POST /_bench/flood {"rate_per_s", "duration_s"}`` starts ``quotes.flood`` like
  ``/_sim/quotes/flood``; without a rate it saturates instead (`BenchSimulator.saturate`).
  ``GET /_bench/flood`` answers ``{"running", "updates"}`` (quote updates pushed by the last
  flood), so the bench knows how many frames a consumer still has to read;
- ``POST /_bench/burst {"frames", "ports", "exclude"}`` writes ``frames`` quote frames at once
  to the connections whose client port is (``exclude``: is not) in ``ports``, shared between
  them, each a material change of one of the connection's pairs, already framed, so the reader
  alone sets the pace; answers ``{"written_at"}`` (``time.time()`` just before the write);
- ``POST /_bench/send_times {"slots": [...]}`` answers the recorded send times of just those
  slots and forgets the rest, so a long flood's thousands of entries never cross the wire.

Prints ``{"port": N, "quotes_ws": URL}`` once listening; stops on SIGTERM, SIGINT or when its
stdin closes (the bench went away).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys
import time
from typing import Any

import orjson
from aiohttp import web

from notifier.bench.child import adopt
from notifier.events import PairKey
from notifier.simulator import Simulator
from notifier.simulator.wire import json_response, loads_object

__all__ = ["BenchSimulator", "main"]

QUEUE_FRAMES = 4_000_000  # per connection; ~1 GB at worst, only reached by a stalled reader
SLICE_S = 0.25
HEADROOM = 1.25
BURST_SLOTS = 900_000_000  # burst frames carry slots of their own, past the simulator's


def _text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed websocket text frame (RFC 6455 §5.2), as a server sends."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


class BenchSimulator(Simulator):
    """`Simulator` plus ``/_bench/flood`` and ``/_bench/send_times``."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._flood: asyncio.Task[int] | None = None
        self._flood_updates = 0
        self._burst_slot = BURST_SLOTS

    def app(self) -> web.Application:
        app = super().app()
        app.add_routes(
            [
                web.post("/_bench/flood", self._start_flood),
                web.get("/_bench/flood", self._flood_state),
                web.post("/_bench/send_times", self._send_times),
                web.post("/_bench/burst", self._burst),
            ]
        )
        return app

    async def stop(self) -> None:
        if self._flood is not None:
            self._flood.cancel()
        await super().stop()

    async def saturate(self, seconds: float, floor: float = 20_000.0) -> int:
        """Flood for ``seconds`` a quarter faster than the consumers read (or the simulator
        writes, whichever is lower), re-measured every 0.25 s: they always have frames
        waiting, while the backlog stays a few seconds' worth. (``quotes.flood`` asked for
        more than it can push runs on well past its duration.)"""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        rate, updates = floor, 0
        while (left := end - loop.time()) > 0:
            written, begun = self.quotes.quotes_sent, loop.time()
            updates += await self.quotes.flood(rate, min(SLICE_S, left))
            pace = (self.quotes.quotes_sent - written) / max(loop.time() - begun, 1e-3)
            # Everything pushed was read: double. Else a quarter above what was read.
            rate = rate * 2 if pace >= 0.95 * rate else max(floor, pace * HEADROOM)
        return updates

    async def _start_flood(self, request: web.Request) -> web.StreamResponse:
        body = loads_object(await request.read()) or {}
        if self._flood is not None and not self._flood.done():
            return json_response({"ok": False, "error": "a flood is running"}, 409)
        rate, seconds = body.get("rate_per_s"), float(body.get("duration_s", 0))
        self._flood_updates = 0
        flood = self.saturate(seconds) if rate is None else self.quotes.flood(float(rate), seconds)
        self._flood = asyncio.create_task(flood)
        return json_response({"ok": True})

    async def _flood_state(self, request: web.Request) -> web.StreamResponse:
        flood = self._flood
        running = flood is not None and not flood.done()
        if flood is not None and flood.done() and not flood.cancelled():
            if flood.exception() is not None:
                return json_response({"ok": False, "error": repr(flood.exception())}, 500)
            self._flood_updates = flood.result()
        return json_response({"ok": True, "running": running, "updates": self._flood_updates})

    async def _burst(self, request: web.Request) -> web.StreamResponse:
        body = loads_object(await request.read()) or {}
        frames, exclude = int(body.get("frames", 0)), bool(body.get("exclude", False))
        ports = {int(p) for p in body.get("ports", [])}
        targets = [
            (peer, sorted(pairs))
            for peer, pairs in self.quotes.subscriptions().items()
            if pairs and (peer.port in ports) is not exclude
        ]
        if not targets or frames <= 0:
            return json_response({"ok": False, "error": "no connection to burst to"}, 409)
        blobs = []
        for n, (peer, pairs) in enumerate(targets):
            share = frames // len(targets) + (1 if n < frames % len(targets) else 0)
            blobs.append((peer, b"".join(self._burst_frames(pairs, share))))
        written_at = time.time()
        for peer, blob in blobs:
            peer.write_now(blob)
        return json_response({"ok": True, "written_at": written_at, "connections": len(blobs)})

    def _burst_frames(self, pairs: list[PairKey], count: int) -> list[bytes]:
        """``count`` websocket text frames of quotes of ``pairs`` in turn, each a change."""
        out = []
        for i, pair in zip(range(count), itertools.cycle(pairs), strict=False):
            current = self.quotes.quote(*pair[:3])
            self._burst_slot += 1
            payload = orjson.dumps(
                {
                    "type": "quote",
                    "in": pair[0],
                    "out": pair[1],
                    "amount": pair[2],
                    "amountOut": str(current.amount_out + (i // len(pairs)) % 2),
                    "priceImpactBps": current.price_impact_bps,
                    "hops": current.hops,
                    "slot": self._burst_slot,
                }
            )
            out.append(_text_frame(payload))
        return out

    async def _send_times(self, request: web.Request) -> web.StreamResponse:
        body = loads_object(await request.read()) or {}
        slots = body.get("slots")
        wanted = [s for s in slots if isinstance(s, int)] if isinstance(slots, list) else []
        sent = self.quotes.sent_at
        found = {str(slot): sent[slot] for slot in wanted if slot in sent}
        self.quotes.clear_send_times()
        return json_response({"ok": True, "send_times": found})


async def _serve(queue_frames: int) -> None:
    sim = BenchSimulator(seed=7, random_walk=False, quote_queue_size=queue_frames)
    urls = await sim.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    eof = asyncio.create_task(reader.read())  # returns when the bench closes our stdin
    stopped = asyncio.create_task(stop.wait())
    answer: dict[str, Any] = {"port": sim.port, "quotes_ws": urls.quotes_ws}
    sys.stdout.write(orjson.dumps(answer).decode() + "\n")
    sys.stdout.flush()
    try:
        await asyncio.wait([eof, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        eof.cancel()
        stopped.cancel()
        await sim.stop()


def main() -> None:
    adopt()
    parser = argparse.ArgumentParser(prog="python -m notifier.bench.simproc")
    parser.add_argument("--queue-frames", type=int, default=QUEUE_FRAMES)
    args = parser.parse_args()
    asyncio.run(_serve(args.queue_frames))


if __name__ == "__main__":
    main()
