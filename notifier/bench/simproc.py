"""The bench's simulator process: ``python -m notifier.bench.simproc``.

The project's `Simulator` on a free loopback port, without the random walk (the bench scripts
every quote), with deep per-connection queues (a consumer slower than the flood is measured,
not dropped), and one extra control route: ``POST /_bench/send_times {"slots": [...]}`` answers
the recorded send times of just those slots and forgets the rest, so a long flood's thousands
of entries never cross the wire. Prints ``{"port": N}`` once listening; stops on SIGTERM,
SIGINT or when its stdin closes (the bench went away).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import orjson
from aiohttp import web

from notifier.simulator import Simulator
from notifier.simulator.wire import json_response, loads_object

__all__ = ["BenchSimulator", "main"]

QUEUE_FRAMES = 4_000_000  # per connection; ~1 GB at worst, only reached by a stalled reader


class BenchSimulator(Simulator):
    """`Simulator` plus ``/_bench/send_times``."""

    def app(self) -> web.Application:
        app = super().app()
        app.add_routes([web.post("/_bench/send_times", self._send_times)])
        return app

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
    parser = argparse.ArgumentParser(prog="python -m notifier.bench.simproc")
    parser.add_argument("--queue-frames", type=int, default=QUEUE_FRAMES)
    args = parser.parse_args()
    asyncio.run(_serve(args.queue_frames))


if __name__ == "__main__":
    main()
