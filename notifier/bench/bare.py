"""The bare receive loop: ``python -m notifier.bench.bare QUOTES_WS PAIRS_JSON``.

The baseline the daemon's throughput is compared with: the same aiohttp websocket client, the
same two connections subscribing the same 512 pairs, and per frame only ``orjson.loads``. Each
line the bench writes to stdin is answered on stdout with ``{"frames": N, "reached_at": T}``
(frames parsed so far, and ``time.time()`` when they first reached the target the line
``target N`` set, or null), so the bench reads both consumers the same way over the same window.
Prints ``{"subscribed": N, "ports": [...]}`` (its connections' local ports) once every
connection has its acknowledgement.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from notifier.bench.child import adopt
from notifier.simulator import SIM_KEYS

__all__ = ["main"]

PER_CONNECTION = 256


class _Counter:
    frames = 0
    target = -1
    reached_at: float | None = None


async def _receive(
    session: aiohttp.ClientSession,
    url: str,
    pairs: list[dict[str, Any]],
    counter: _Counter,
    acked: asyncio.Queue[tuple[int, int]],
) -> None:
    async with session.ws_connect(url, max_msg_size=1 << 20) as ws:
        port = int(ws.get_extra_info("sockname")[1])
        await ws.send_str(orjson.dumps({"op": "subscribe", "pairs": pairs}).decode())
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = orjson.loads(message.data)
            counter.frames += 1
            if counter.frames == counter.target:
                counter.reached_at = time.time()
            if frame.get("type") == "subscribed":
                acked.put_nowait((int(frame.get("count", 0)), port))


async def _run(url: str, pairs: list[list[Any]]) -> None:
    wanted = [{"in": p[0], "out": p[1], "amount": p[2], "exactIn": p[3]} for p in pairs]
    chunks = [wanted[i : i + PER_CONNECTION] for i in range(0, len(wanted), PER_CONNECTION)]
    counter = _Counter()
    acked: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    full_url = f"{url}?key={SIM_KEYS.quotes}"
    async with aiohttp.ClientSession() as session:
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(_receive(session, full_url, chunk, counter, acked))
            for chunk in chunks
        ]
        subscribed, ports = 0, []
        for _ in chunks:
            count, port = await acked.get()
            subscribed += count
            ports.append(port)
        _answer({"subscribed": subscribed, "ports": ports})
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        tasks.append(asyncio.create_task(_answer_lines(reader, counter)))
        tasks.append(asyncio.create_task(stop.wait()))
        try:  # until SIGTERM, EOF on stdin, or a connection ends
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _answer_lines(reader: asyncio.StreamReader, counter: _Counter) -> None:
    while line := await reader.readline():  # one line in, one count out
        if line.startswith(b"target "):
            counter.target, counter.reached_at = int(line.split()[1]), None
        _answer({"frames": counter.frames, "reached_at": counter.reached_at})


def _answer(value: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")
    sys.stdout.flush()


def main() -> None:
    adopt()
    parser = argparse.ArgumentParser(prog="python -m notifier.bench.bare")
    parser.add_argument("url", help="the quote stream's ws:// URL")
    parser.add_argument("pairs", type=Path, help="JSON list of [in, out, amount, exactIn]")
    args = parser.parse_args()
    asyncio.run(_run(args.url, orjson.loads(args.pairs.read_bytes())))


if __name__ == "__main__":
    main()
