"""Per-tag rate limits: bursts fold into durable digests; nothing is dropped silently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from notifier.config import DeliverySettings, RateLimitSettings, Settings
from notifier.dispatch import Dispatcher, Notification, Severity
from notifier.dispatch.outbox import NewRow, Outbox
from notifier.dispatch.ratelimit import Admission, RateLimiter
from notifier.metrics import Metrics
from notifier.store import Store
from tests.receivers import FakeClock, HttpReceiver, running, write_apprise_yaml


def limited_settings(tmp_path: Path, config: Path) -> Settings:
    return Settings(
        apprise_config=config,
        state_dir=tmp_path,
        errors_to=["admin"],
        delivery=DeliverySettings(
            timeout=5.0,
            backoff_cap=0.05,
            rate_limit=RateLimitSettings(count=100, per=60.0),
            rate_limits={"burst": RateLimitSettings(count=5, per=60.0)},
        ),
    )


def burst_note(i: int, tag: str = "burst") -> Notification:
    severity: Severity = "failure" if i == 42 else "info"
    return Notification(
        key=f"b{i}",
        rule_id="spam",
        title=f"event {i:02d}",
        body="",
        severity=severity,
        tags=(tag,),
    )


def named_titles(http: HttpReceiver) -> set[str]:
    """Every notification title the receiver saw, directly or listed in a digest."""
    names = {t for t in http.delivered_titles() if t.startswith("event ")}
    for post in http.delivered:
        names |= set(re.findall(r"\] (event \d\d) \(", post.message))
    return names


async def test_burst_of_50_arrives_as_5_messages_plus_one_digest_naming_the_rest(
    tmp_path: Path,
) -> None:
    """50 notifications to a tag limited to 5/min: 5 go out, the other 45 are named in one
    digest sent when the window frees up; other tags keep their own budget."""
    clock = FakeClock()
    async with HttpReceiver() as http:
        config = write_apprise_yaml(
            tmp_path / "apprise.yml", [(http.url("burst"), "burst"), (http.url("calm"), "calm")]
        )
        metrics = Metrics()
        dispatcher = Dispatcher(
            Store.open(tmp_path), limited_settings(tmp_path, config), metrics, now=clock
        )
        async with running(dispatcher):
            for i in range(50):
                assert dispatcher.enqueue(burst_note(i))
            dispatcher.enqueue(burst_note(99, tag="calm"))
            await dispatcher.wait_settled()
            burst_posts = [p for p in http.delivered if p.path == "/burst"]
            assert len(burst_posts) == 5
            assert [p.title for p in http.delivered if p.path == "/calm"] == ["event 99"]
            stats = dispatcher.stats()
            assert stats["digested"] == 45
            assert stats["pending"] == 1  # the digest, due when the window frees up

            clock.advance(61.0)
            dispatcher.wake()
            await http.wait_until(lambda: len(http.delivered) == 7)
            await dispatcher.wait_settled()

        burst_posts = [p for p in http.delivered if p.path == "/burst"]
        assert len(burst_posts) == 6
        digest = burst_posts[-1]
        assert digest.title == "45 more notifications for tag 'burst' (rate limit)"
        assert digest.type == "failure"  # the worst severity it holds
        assert named_titles(http) == {f"event {i:02d}" for i in [*range(50), 99]}
        assert dispatcher.stats()["pending"] == 0
        value = metrics.registry.get_sample_value(
            "notifier_notifications_total", {"outcome": "digested"}
        )
        assert value == 45


async def test_digest_survives_a_restart(tmp_path: Path) -> None:
    """Held notifications live in the outbox: a new Dispatcher still sends the digest."""
    clock = FakeClock()
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "burst")])
        settings = limited_settings(tmp_path, config)
        store = Store.open(tmp_path)
        first = Dispatcher(store, settings, Metrics(), now=clock)
        async with running(first):
            for i in range(8):
                first.enqueue(burst_note(i))
            await first.wait_settled()
        assert len(http.delivered) == 5
        first.close()
        store.close()

        clock.advance(61.0)
        second = Dispatcher(Store.open(tmp_path), settings, Metrics(), now=clock)
        async with running(second):
            await http.wait_until(lambda: len(http.delivered) == 6)
            await second.wait_settled()
        assert http.delivered[-1].title == "3 more notifications for tag 'burst' (rate limit)"
        assert named_titles(http) == {f"event {i:02d}" for i in range(8)}


async def test_rows_written_without_a_route_are_rate_limited_when_first_sent(
    tmp_path: Path,
) -> None:
    """Rows an earlier version wrote unrouted (it decided when sending) still get their
    rate-limit decision: 5 go out, the other 3 are held for the digest."""
    clock = FakeClock()
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "burst")])
        store = Store.open(tmp_path)
        legacy = Outbox(store)
        for i in range(8):
            n = burst_note(i)
            row = NewRow(n.key, "rule", n.rule_id, n.title, n.body, n.severity, n.tags, clock())
            assert legacy.add(row, clock()) is not None
        assert store.read("SELECT COUNT(*) FROM outbox WHERE route IS NULL") == [(8,)]
        dispatcher = Dispatcher(store, limited_settings(tmp_path, config), Metrics(), now=clock)
        async with running(dispatcher):
            await dispatcher.wait_settled()
            assert len(http.delivered) == 5
            assert dispatcher.stats()["digested"] == 3
            clock.advance(61.0)
            dispatcher.wake()
            await http.wait_until(lambda: len(http.delivered) == 6)
            await dispatcher.wait_settled()
        assert http.delivered[-1].title == "3 more notifications for tag 'burst' (rate limit)"


@pytest.mark.parametrize("tags", [(), ("calm",), ("zeta", "calm", "alpha"), ("burst", "calm")])
def test_a_written_row_is_the_row_read_back(tmp_path: Path, tags: tuple[str, ...]) -> None:
    """The dispatcher starts a new row's sends from the row as it wrote it, without reading it
    back: that row must be exactly what the outbox reads, whatever the tags and their order."""
    store = Store.open(tmp_path)
    outbox = Outbox(store)
    settings = limited_settings(tmp_path, tmp_path / "apprise.yml")
    limiter = RateLimiter(settings.delivery.rate_limit, settings.delivery.rate_limits, outbox)
    admit = Admission(limiter, outbox, Metrics()).admit
    row = NewRow.of(Notification(key="k", rule_id="r", title="t", body="b", tags=tags))
    now = 1_700_000_000.25
    with store.transaction():
        row_id = outbox.add(row, now)
        assert row_id is not None
        route = admit(row_id, row.title, row.tags, now)
        assert route is not None
    assert row.written(row_id, route, now) == outbox.get(row_id)
    store.close()
