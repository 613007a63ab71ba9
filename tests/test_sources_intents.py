"""IntentPoller against the simulated Changelly intent-status API over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from email.utils import formatdate
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr

from notifier.backoff import BackoffPolicy
from notifier.config import IntentSettings
from notifier.events import FeedEvent, IntentEvent, Interest
from notifier.metrics import Metrics
from notifier.simulator import SIM_KEYS, Simulator
from notifier.sources import IntentPoller
from notifier.sources.intents import (
    MAX_BODY,
    IntentResponse,
    MalformedResponse,
    parse_retry_after,
)
from notifier.store import Store
from tests.receivers import wait_until
from tests.support import Collector, in_background, serving

FAST = BackoffPolicy(base=0.05, cap=0.2)
POLL = 0.05


class IntentCollector(Collector):
    """A sink that keeps every event and picks out one intent's."""

    def intents(self, intent_id: str) -> list[IntentEvent]:
        return [e for e in self.of(IntentEvent) if e.intent_id == intent_id]

    def statuses(self, intent_id: str) -> list[tuple[str | None, str]]:
        return [(e.previous_status, e.status) for e in self.intents(intent_id)]


@asynccontextmanager
async def running(
    sim: Simulator,
    store: Store,
    *,
    track: Sequence[str] = (),
    api_key: str = SIM_KEYS.intents,
    **options: Any,
) -> AsyncIterator[tuple[IntentPoller, IntentCollector]]:
    sink = IntentCollector()
    settings = IntentSettings(
        url=sim.urls.intents, api_key=SecretStr(api_key), poll_interval=POLL, track=list(track)
    )
    poller = IntentPoller(settings, sink, Metrics(), store, backoff=FAST, **options)
    poller.set_interest(Interest())
    async with in_background(poller.run()):
        yield poller, sink


async def test_status_changes_are_emitted_with_previous_status(store: Store) -> None:
    """First sight has previous_status None; each change carries the one before."""
    async with Simulator() as sim:
        intent = sim.intents.add_intent(created_at=1_768_478_400.0)
        async with running(sim, store, track=[intent]) as (poller, sink):
            await wait_until(lambda: sink.intents(intent))
            sim.intents.set_status(intent, "Approved")
            await wait_until(lambda: len(sink.intents(intent)) == 2)
            sim.intents.set_status(intent, "Deposited")
            await wait_until(lambda: len(sink.intents(intent)) == 3)
            assert sink.statuses(intent) == [
                (None, "Created"),
                ("Created", "Approved"),
                ("Approved", "Deposited"),
            ]
            last = sink.intents(intent)[-1]
            assert last.created_at == 1_768_478_400.0
            assert last.fields["from_amount_lots"] == "1000000"
            assert last.swap_metadata is not None
            assert last.swap_metadata["user_deposit_tx"] is not None
            assert poller.status().up
            assert [t.status for t in poller.tracked()] == ["Deposited"]


async def test_polling_stops_at_a_terminal_status(store: Store) -> None:
    """Once Finished, an intent is not requested again while others still are."""
    async with Simulator() as sim:
        done, pending = sim.intents.add_intent(), sim.intents.add_intent()
        async with running(sim, store, track=[done, pending]) as (poller, sink):
            await wait_until(lambda: sink.intents(done) and sink.intents(pending))
            sim.intents.set_status(done, "Finished")
            await wait_until(lambda: sink.statuses(done)[-1] == ("Created", "Finished"))
            requests = sim.intents.request_count(done)
            clock = sim.intents.request_count(pending)
            await wait_until(lambda: sim.intents.request_count(pending) >= clock + 10)
            assert sim.intents.request_count(done) == requests
            (tracked,) = [t for t in poller.tracked() if t.intent_id == done]
            assert not tracked.polling


async def test_retry_after_is_honoured(store: Store) -> None:
    """After a 429 with Retry-After: 1 the intent is not asked again for a second."""
    async with Simulator() as sim:
        intent = sim.intents.add_intent()
        sim.intents.rate_limit_next(1, retry_after=1, intent_id=intent)
        async with running(sim, store, track=[intent]) as (_, sink):
            await wait_until(lambda: sink.intents(intent))
            limited, answered = sim.intents.hits[intent][:2]
            assert (limited.status, answered.status) == (429, 200)
            assert answered.at - limited.at >= 0.95


async def test_server_errors_back_off_then_recover(store: Store) -> None:
    """5xx answers mark the feed down after three in a row; the next success brings it up."""
    async with Simulator() as sim:
        intent = sim.intents.add_intent()
        sim.intents.fail_next(4, status=503, intent_id=intent)
        async with running(sim, store, track=[intent]) as (poller, sink):
            await wait_until(lambda: sink.intents(intent))
            assert [e.up for e in sink.of(FeedEvent)] == [False, True]
            assert [h.status for h in sim.intents.hits[intent][:5]] == [503] * 4 + [200]
            assert poller.status().reconnects == 4


async def test_nested_response_shape_is_accepted(store: Store) -> None:
    """The from/to shape is flattened to the flat names, amounts back into lots."""
    async with Simulator() as sim:
        intent = sim.intents.add_intent(nested=True, status="Deposited")
        async with running(sim, store, track=[intent]) as (_, sink):
            await wait_until(lambda: sink.intents(intent))
            (event,) = sink.intents(intent)
            assert event.status == "Deposited"
            assert event.fields["from_amount_lots"] == "1000000"
            assert event.fields["to_min_amount_lots"] == "6500000"
            assert event.fields["to_network_id"] == 4
            assert event.fields["from_token"] == "0xdac17f958d2ee523a2206206994597c13d831ec7"
            assert event.swap_metadata is None


async def test_unknown_intent_is_polled_slowly_until_it_appears(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """404 is logged once and polled at the slow rate; the intent is picked up when it exists."""
    async with Simulator() as sim, running(sim, store, not_found_interval=0.3) as (poller, sink):
        poller.track("later", label="my swap")
        await wait_until(lambda: sim.intents.request_count("later") >= 3)
        hits = sim.intents.hits["later"]
        assert all(h.status == 404 for h in hits)
        assert all(b.at - a.at >= 0.25 for a, b in itertools.pairwise(hits))
        assert caplog.text.count("intent later not found") == 1
        sim.intents.add_intent("later")
        await wait_until(lambda: sink.intents("later"))
        assert sink.intents("later")[0].label == "my swap"


async def test_tracked_intents_survive_a_restart(store: Store) -> None:
    """Run-time tracks, labels and last statuses persist; an unchanged status is not re-sent."""
    async with Simulator() as sim:
        intent = sim.intents.add_intent()
        async with running(sim, store) as (poller, sink):
            assert poller.track(intent, label="rent")
            assert not poller.track(intent)
            await wait_until(lambda: sink.intents(intent))
        async with running(sim, store) as (poller, sink):
            (tracked,) = poller.tracked()
            assert (tracked.intent_id, tracked.label, tracked.status) == (intent, "rent", "Created")
            assert tracked.origins == ("api",)
            count = sim.intents.request_count(intent)
            await wait_until(lambda: sim.intents.request_count(intent) >= count + 3)
            sim.intents.set_status(intent, "Verified")
            await wait_until(lambda: sink.intents(intent))
            assert sink.statuses(intent) == [("Created", "Verified")]
            assert poller.untrack(intent)
            assert not poller.untrack(intent)
            assert poller.tracked() == []


def test_track_takes_only_ids_the_http_api_takes(store: Store) -> None:
    """``track`` and ``PUT /api/v1/intents/{id}`` share one rule: ``validate_intent_id``."""
    poller = IntentPoller(IntentSettings(), IntentCollector(), Metrics(), store)
    for bad in ("", " padded ", "-lead", "x" * 129, "a/b"):
        with pytest.raises(ValueError, match="invalid intent id"):
            poller.track(bad)
    assert poller.track("fe5601fb-60f2-4cb0-8a67-c55bd3640411")
    assert poller.track("A_" + "x" * 126)


async def test_rules_intents_are_polled_with_their_labels(store: Store) -> None:
    """Interest.intents are tracked for as long as the rules name them."""
    async with Simulator() as sim:
        intent = sim.intents.add_intent()
        async with running(sim, store) as (poller, sink):
            poller.set_interest(Interest(intents=frozenset({intent}), labels={intent: "rule"}))
            await wait_until(lambda: sink.intents(intent))
            assert sink.intents(intent)[0].label == "rule"
            poller.set_interest(Interest())
            assert poller.tracked() == []


async def test_api_key_never_reaches_the_logs(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A rejected key fails polls (401) and is never logged."""
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-intents-key-xyz"
    async with Simulator() as sim:
        intent = sim.intents.add_intent()
        async with running(sim, store, track=[intent], api_key=wrong) as (poller, _):
            await wait_until(lambda: not poller.status().up and poller.status().reconnects >= 3)
        async with running(sim, store, track=[intent]) as (_, sink):
            await wait_until(lambda: sink.intents(intent))
    assert "HTTP 401" in caplog.text
    assert wrong not in caplog.text
    assert SIM_KEYS.intents not in caplog.text


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    """Both Retry-After forms become seconds to wait, capped, never negative."""
    now = time.time()
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("999999") == 3600.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_response_without_status_is_rejected() -> None:
    """A body without a status string is not an intent."""
    with pytest.raises(MalformedResponse, match="no usable status"):
        IntentResponse.parse({"intent_id": "x"})
    with pytest.raises(MalformedResponse, match="not an object"):
        IntentResponse.parse([1])
    parsed = IntentResponse.parse({"status": "Created", "swap_metadata": None})
    assert parsed is not None
    assert parsed.swap_metadata is None
    assert parsed.created_at is None


def _nested(amount: str, decimals: int = 6) -> bytes:
    side = {"network_id": 1, "decimals": decimals, "amount": amount}
    return orjson.dumps({"intent_id": "x", "status": "Created", "from": side, "to": side})


HOSTILE_BODIES = {
    "exponent amount": _nested("1e999999"),
    "infinite amount": _nested("Infinity"),
    "5000 decimals": _nested("0." + "1" * 5000),
    "huge decimals": _nested("1", decimals=10**9),
    "5000-digit lots": orjson.dumps({"status": "Created", "from_amount_lots": "9" * 5000}),
    "exponent lots": b'{"status": "Created", "from_amount_lots": 1e999999}',
    "html": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    "garbage": bytes(range(256)) * 8,
}


@asynccontextmanager
async def hostile(body: bytes) -> AsyncIterator[tuple[str, list[float]]]:
    """An intent API answering 200 with ``body`` to every GET; yields its URL and GET times."""
    gets: list[float] = []

    async def answer(request: web.Request) -> web.Response:
        gets.append(time.monotonic())
        return web.Response(body=body, content_type="application/json")

    async with serving(web.get("/v1/intents/{intent_id}", answer)) as url:
        yield url, gets


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
async def test_a_malformed_body_backs_off_and_downs_the_feed(
    store: Store, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Every unusable 200 body is a failed poll: full-jitter backoff per intent (never a spin,
    never the normal interval), the feed goes down, the reason is logged at most once a minute.
    """
    async with hostile(body) as (url, gets):
        settings = IntentSettings(url=url, poll_interval=0.02, track=["spin"])
        sink = IntentCollector()
        poller = IntentPoller(
            settings, sink, Metrics(), store, backoff=BackoffPolicy(base=0.5, cap=60.0)
        )
        poller.set_interest(Interest())
        async with in_background(poller.run()):
            await wait_until(lambda: len(gets) >= 3, timeout=30)
            window = 3.0
            counted = len(gets)
            await asyncio.sleep(window)
            during = len(gets) - counted
    # 0.02 s polls would be 150 in the window, a spin thousands; doubling from 0.5 s a handful.
    assert during <= 10
    assert not poller.status().up
    assert poller.status().errors >= 3
    assert sink.intents("spin") == []
    assert caplog.text.count("malformed response skipped") == 1
    (tracked,) = poller.tracked()
    assert tracked.detail.startswith("failing: malformed response")


async def test_an_oversized_body_is_refused_without_reading_it(store: Store) -> None:
    """A body over MAX_BODY (here an endless stream) is refused after about MAX_BODY bytes,
    with or without a Content-Length, and polled with backoff."""
    sent: list[int] = []

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        sent.append(0)
        chunk = b'{"status": "Created", "pad": "' + b"x" * (1 << 16)
        with contextlib.suppress(ConnectionError):
            for _ in range(400 * 16):  # 400 MiB unless the client goes away
                await response.write(chunk)
                sent[-1] += len(chunk)
        return response

    async with serving(web.get("/v1/intents/{intent_id}", endless)) as url:
        settings = IntentSettings(url=url, poll_interval=0.02, track=["big"])
        poller = IntentPoller(
            settings, IntentCollector(), Metrics(), store, backoff=BackoffPolicy(base=0.5)
        )
        poller.set_interest(Interest())
        async with in_background(poller.run()):
            await wait_until(lambda: poller.status().errors >= 2, timeout=30)
    (tracked,) = poller.tracked()
    assert "body too large" in tracked.detail
    # The kernel's socket buffers hold a few MiB more than the client read.
    assert max(sent) < MAX_BODY + (32 << 20)
