"""QuoteStream against the simulated Argyros stream over loopback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import SecretStr

from notifier.backoff import BackoffPolicy
from notifier.config import QuoteSettings
from notifier.events import FeedEvent, Interest, PairKey, QuoteEvent
from notifier.metrics import Metrics
from notifier.simulator import SIM_KEYS, Simulator
from notifier.sources import QuoteStream
from tests.receivers import wait_until
from tests.support import SOL, USDC, Collector, in_background

FAST = BackoffPolicy(base=0.05, cap=0.2, healthy_after=1.0)


def pair(n: int, exact_in: bool = True) -> PairKey:
    return (SOL, USDC, str(1_000_000 + n), exact_in)


@asynccontextmanager
async def running(
    sim: Simulator, api_key: str = SIM_KEYS.quotes, pairs: Sequence[PairKey] = ()
) -> AsyncIterator[tuple[QuoteStream, Collector, Metrics]]:
    sink, metrics = Collector(), Metrics()
    settings = QuoteSettings(url=sim.urls.quotes_ws, api_key=SecretStr(api_key), heartbeat=5)
    stream = QuoteStream(settings, sink, metrics, backoff=FAST)
    stream.set_interest(Interest(pairs=frozenset(pairs)))
    async with in_background(stream.run()):
        yield stream, sink, metrics


def quoted(sink: Collector, wanted: PairKey) -> list[QuoteEvent]:
    return [e for e in sink.of(QuoteEvent) if e.pair == wanted]


def counter(metrics: Metrics, name: str, label: str) -> float:
    value = metrics.registry.get_sample_value(f"{name}_total", {"source": label})
    return value or 0.0


async def test_subscribes_wanted_pairs_and_emits_quotes() -> None:
    """Every wanted pair is subscribed and its pushes arrive as QuoteEvents."""
    async with Simulator(random_walk=False) as sim:
        wanted = [pair(1), pair(2)]
        async with running(sim, pairs=wanted) as (stream, sink, _):
            await wait_until(lambda: sim.quotes.subscribed_pairs() == set(wanted))
            await wait_until(lambda: all(quoted(sink, p) for p in wanted))
            sim.quotes.set_quote(SOL, USDC, wanted[0][2], 4242, price_impact_bps=7, hops=2)
            await wait_until(lambda: any(e.amount_out == 4242 for e in quoted(sink, wanted[0])))
            last = quoted(sink, wanted[0])[-1]
            assert (last.price_impact_bps, last.hops) == (7, 2)
            assert stream.status().up
            assert sink.of(FeedEvent)[0].up


async def test_set_interest_sends_only_the_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload unsubscribes what went, subscribes what came, and keeps the connection."""
    async with Simulator(random_walk=False) as sim:
        a, b, c = pair(1), pair(2), pair(3)
        async with running(sim, pairs=[a, b]) as (stream, sink, _):
            await wait_until(lambda: sim.quotes.subscribed_pairs() == {a, b})
            sent: list[tuple[str, list[PairKey]]] = []
            original = stream._send

            async def spy(ws: Any, op: str, pairs: Sequence[PairKey]) -> None:
                if pairs:
                    sent.append((op, list(pairs)))
                await original(ws, op, pairs)

            monkeypatch.setattr(stream, "_send", spy)
            stream.set_interest(Interest(pairs=frozenset({b, c})))
            await wait_until(lambda: sim.quotes.subscribed_pairs() == {b, c})
            assert sent == [("unsubscribe", [a]), ("subscribe", [c])]
            assert sim.quotes.connection_count() == 1
            assert stream.status().reconnects == 0
            await wait_until(lambda: quoted(sink, c))
            sim.quotes.set_quote(SOL, USDC, a[2], 1)
            sim.quotes.set_quote(SOL, USDC, b[2], 2)
            await wait_until(lambda: any(e.amount_out == 2 for e in quoted(sink, b)))
            assert not any(e.amount_out == 1 for e in quoted(sink, a))


async def test_more_than_256_pairs_use_a_second_connection() -> None:
    """300 pairs: 256 on the first connection, 44 on the second, all quoted."""
    async with Simulator(random_walk=False) as sim:
        wanted = [pair(n) for n in range(300)]
        async with running(sim, pairs=wanted) as (stream, sink, _):
            await wait_until(lambda: sim.quotes.subscription_count() == 300)
            assert sim.quotes.connection_count() == 2
            assert [len(p) for p in stream.connection_pairs()] == [256, 44]
            await wait_until(lambda: {e.pair for e in sink.of(QuoteEvent)} == set(wanted))
            assert stream.status().connections == 2
            # Shrinking empties the second connection, which is closed.
            stream.set_interest(Interest(pairs=frozenset(wanted[:10])))
            await wait_until(lambda: sim.quotes.connection_count() == 1)
            await wait_until(lambda: sim.quotes.subscription_count() == 10)


async def test_exact_in_and_exact_out_of_one_triple_stay_apart() -> None:
    """Pushes carry no exactIn, so the two modes of one triple go on separate connections."""
    async with Simulator(random_walk=False) as sim:
        exact_in, exact_out = pair(1, True), pair(1, False)
        async with running(sim, pairs=[exact_in, exact_out]) as (stream, sink, _):
            await wait_until(lambda: sim.quotes.subscription_count() == 2)
            assert sim.quotes.connection_count() == 2
            await wait_until(lambda: quoted(sink, exact_in) and quoted(sink, exact_out))
            assert len(stream.connection_pairs()) == 2


async def test_reconnects_and_resubscribes_after_a_drop() -> None:
    """An aborted connection comes back with all its pairs; the feed goes down and up."""
    async with Simulator(random_walk=False) as sim:
        wanted = [pair(n) for n in range(5)]
        async with running(sim, pairs=wanted) as (stream, sink, metrics):
            await wait_until(lambda: sim.quotes.subscribed_pairs() == set(wanted))
            assert sim.quotes.drop_connections() == 1
            await wait_until(lambda: stream.status().reconnects >= 1)
            await wait_until(lambda: sim.quotes.subscribed_pairs() == set(wanted))
            await wait_until(lambda: stream.status().up)
            assert [e.up for e in sink.of(FeedEvent)] == [True, False, True]
            sim.quotes.set_quote(SOL, USDC, wanted[3][2], 777)
            await wait_until(lambda: any(e.amount_out == 777 for e in quoted(sink, wanted[3])))
            reconnects = metrics.registry.get_sample_value(
                "notifier_feed_reconnects_total", {"feed": "quote"}
            )
            assert reconnects is not None
            assert reconnects >= 1


async def test_reconnects_after_refused_handshakes() -> None:
    """While the upstream answers 503 the feed is down; it recovers when accepted again."""
    async with Simulator(random_walk=False) as sim:
        wanted = [pair(1)]
        sim.quotes.refuse_connections(True)
        async with running(sim, pairs=wanted) as (stream, sink, _):
            await wait_until(lambda: stream.status().reconnects >= 2)
            assert not stream.status().up
            sim.quotes.refuse_connections(False)
            await wait_until(lambda: stream.status().up)
            await wait_until(lambda: quoted(sink, wanted[0]))


async def test_malformed_and_error_frames_are_skipped() -> None:
    """Bad frames are counted and skipped; the connection and later quotes are unaffected."""
    async with Simulator(random_walk=False) as sim:
        wanted = pair(1)
        async with running(sim, pairs=[wanted]) as (stream, sink, metrics):
            await wait_until(lambda: quoted(sink, wanted))
            # The simulator has no public hook for raw frames; its peers' queue is the wire.
            for peer in sim.quotes._peers:
                peer.send(b"{not json")
                peer.send(b'{"type":"quote","in":"x"}')
                peer.send(
                    b'{"type":"quote","in":"a","out":"b","amount":"1","amountOut":"x",'
                    b'"priceImpactBps":0,"hops":1,"slot":1}'
                )
                peer.send(b'{"type":"error","message":"unknown op"}')
                peer.send(b"[1,2]")
            sim.quotes.set_quote(SOL, USDC, wanted[2], 31337)
            await wait_until(lambda: any(e.amount_out == 31337 for e in quoted(sink, wanted)))
            assert counter(metrics, "notifier_frames_malformed", "quote") == 4
            assert stream.status().errors == 5
            assert stream.status().reconnects == 0


async def test_frames_of_every_shape_take_the_same_way_as_before() -> None:
    """The typed fast decoder and the dict reading agree: numbers or digit strings, extra
    fields ignored; floats, booleans, lists where strings belong and unknown types are
    malformed; acks are not."""
    async with Simulator(random_walk=False) as sim:
        wanted = pair(1)
        async with running(sim, pairs=[wanted]) as (stream, sink, metrics):
            await wait_until(lambda: quoted(sink, wanted))
            head = f'{{"type":"quote","in":"{SOL}","out":"{USDC}","amount":"{wanted[2]}",'
            for peer in sim.quotes._peers:
                peer.send(
                    (
                        head + '"amountOut":777,"priceImpactBps":" 4","hops":"2","slot":9,'
                        '"extra":[1,{"a":null}]}'
                    ).encode()
                )
                peer.send((head + '"amountOut":1.5,"priceImpactBps":0,"hops":1,"slot":1}').encode())
                peer.send(
                    (head + '"amountOut":5,"priceImpactBps":0,"hops":true,"slot":1}').encode()
                )
                peer.send(
                    b'{"type":"quote","in":["x"],"out":"b","amount":"1","amountOut":"1",'
                    b'"priceImpactBps":0,"hops":1,"slot":1}'
                )
                peer.send(b'{"type":"subscribed","count":{"odd":1}}')
                peer.send(b'{"type":"pong"}')
            await wait_until(lambda: counter(metrics, "notifier_frames_malformed", "quote") >= 4)
            sim.quotes.set_quote(SOL, USDC, wanted[2], 31337)
            await wait_until(lambda: any(e.amount_out == 31337 for e in quoted(sink, wanted)))
            odd = [e for e in quoted(sink, wanted) if e.amount_out == 777]
            assert [(e.price_impact_bps, e.hops, e.slot) for e in odd] == [(4, 2, 9)]
            assert counter(metrics, "notifier_frames_malformed", "quote") == 4
            assert stream.status().reconnects == 0


async def test_api_key_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Neither a working nor a rejected key shows up in any log line."""
    caplog.set_level(logging.DEBUG)
    async with Simulator(random_walk=False) as sim:
        async with running(sim, pairs=[pair(1)]) as (stream, sink, _):
            await wait_until(lambda: quoted(sink, pair(1)))
            sim.quotes.drop_connections()
            await wait_until(lambda: stream.status().reconnects >= 1)
            await wait_until(lambda: stream.status().up)
        wrong = "argy_" + "dead" * 8
        async with running(sim, api_key=wrong, pairs=[pair(1)]) as (stream, _, _):
            await wait_until(lambda: stream.status().reconnects >= 1)
            await wait_until(lambda: "HTTP 403" in caplog.text)
    assert SIM_KEYS.quotes not in caplog.text
    assert wrong not in caplog.text
    assert sim.urls.quotes_ws in caplog.text


async def test_a_flood_of_error_and_garbage_frames_logs_a_line_per_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Thousands of ``type:error`` frames (each text different) and garbage frames are all
    counted, but each kind is logged once a minute, not once per frame."""
    async with Simulator(random_walk=False) as sim:
        wanted = pair(1)
        async with running(sim, pairs=[wanted]) as (stream, sink, _):
            await wait_until(lambda: quoted(sink, wanted))
            for batch in range(20):  # batches: the simulator drops a reader that lags
                for n in range(batch * 100, batch * 100 + 100):
                    sim.quotes.send_raw(b'{"type":"error","message":"garbage %d"}' % n)
                    sim.quotes.send_raw(b"{garbage %d" % n)
                expected = (batch + 1) * 200
                await wait_until(lambda: stream.status().errors == expected, timeout=30)  # noqa: B023
            assert stream.status().reconnects == 0
            sim.quotes.set_quote(SOL, USDC, wanted[2], 31337)
            await wait_until(lambda: any(e.amount_out == 31337 for e in quoted(sink, wanted)))
    assert caplog.text.count("upstream error") == 1
    assert caplog.text.count("skipped malformed frame") == 1
