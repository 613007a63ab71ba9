"""Delivery end to end: outbox → real apprise → a local HTTP receiver and SMTP server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from notifier.config import DeliverySettings, Settings
from notifier.dispatch import Dispatcher, Notification
from notifier.metrics import Metrics
from notifier.store import SqliteStore, Store
from tests.receivers import (
    FakeClock,
    HttpReceiver,
    SmtpReceiver,
    closed_port_url,
    running,
    wait_until,
    write_apprise_yaml,
)


def make_settings(tmp_path: Path, config: Path, **delivery: Any) -> Settings:
    values: dict[str, Any] = {"timeout": 5.0, "backoff_cap": 0.05, "retry_for": 60.0}
    values.update(delivery)
    return Settings(
        apprise_config=config,
        state_dir=tmp_path / "state",
        errors_to=["admin"],
        delivery=DeliverySettings(**values),
    )


def note(key: str, title: str | None = None, *tags: str, severity: Any = "info") -> Notification:
    return Notification(
        key=key,
        rule_id="r1",
        title=title or key,
        body=f"body of {key}",
        severity=severity,
        tags=tags,
    )


def sent(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("notifier_notifications_total", {"outcome": outcome})
    return value or 0.0


async def test_one_notification_reaches_http_and_smtp_exactly_once(tmp_path: Path) -> None:
    """One enqueue: the JSON endpoint and the mailbox each get it once, with its severity."""
    async with HttpReceiver() as http, SmtpReceiver() as smtp:
        config = write_apprise_yaml(
            tmp_path / "apprise.yml", [(http.url(), "ops"), (smtp.url(), "ops")]
        )
        metrics = Metrics()
        dispatcher = Dispatcher(Store.open(tmp_path), make_settings(tmp_path, config), metrics)
        async with running(dispatcher):
            assert dispatcher.enqueue(note("k1", "SOL at 201", "ops", severity="warning"))
            await http.wait_until(lambda: len(http.delivered) == 1)
            await smtp.wait_until(lambda: len(smtp.messages) == 1)
            await dispatcher.wait_settled()
        assert http.delivered_titles() == ["SOL at 201"]
        assert http.delivered[0].type == "warning"
        assert http.delivered[0].message == "body of k1"
        assert smtp.subjects() == ["SOL at 201"]
        assert "body of k1" in smtp.messages[0].text()
        assert smtp.messages[0].rcpt_tos == ("ops@example.com",)
        stats = dispatcher.stats()
        assert (stats["pending"], stats["sent"], stats["dead"]) == (0, 1, 0)
        assert stats["channels"] == 2
        assert sent(metrics, "sent") == 1
        assert metrics.registry.get_sample_value("notifier_outbox_pending") == 0


async def test_tags_route_to_matching_channels_and_no_tags_reach_every_channel(
    tmp_path: Path,
) -> None:
    """``notify: [phone]`` reaches phone only; omitted ``notify`` reaches tagged and untagged."""
    async with HttpReceiver() as http:
        config = write_apprise_yaml(
            tmp_path / "apprise.yml",
            [
                (http.url("phone"), "phone"),
                (http.url("email"), "email"),
                (http.url("plain"), ""),
                (http.url("admin"), "admin"),
            ],
        )
        dispatcher = Dispatcher(Store.open(tmp_path), make_settings(tmp_path, config), Metrics())
        async with running(dispatcher):
            dispatcher.enqueue(note("to-phone", None, "phone"))
            dispatcher.enqueue(note("to-phone-or-email", None, "phone", "email"))
            dispatcher.enqueue(note("to-everyone"))
            await wait_until(lambda: dispatcher.stats()["sent"] == 3)
            await dispatcher.wait_settled()

    by_path: dict[str, list[str]] = {}
    for post in http.delivered:
        by_path.setdefault(post.path, []).append(post.title)
    assert sorted(by_path["/phone"]) == ["to-everyone", "to-phone", "to-phone-or-email"]
    assert sorted(by_path["/email"]) == ["to-everyone", "to-phone-or-email"]
    assert by_path["/plain"] == ["to-everyone"]
    assert by_path["/admin"] == ["to-everyone"]
    assert len(http.delivered) == 7


async def test_unknown_tag_is_dead_lettered_and_reported_to_errors_to(tmp_path: Path) -> None:
    """A tag no channel has cannot succeed later: dead at once, and admin hears about it."""
    async with HttpReceiver() as http:
        config = write_apprise_yaml(
            tmp_path / "apprise.yml", [(http.url("phone"), "phone"), (http.url("admin"), "admin")]
        )
        metrics = Metrics()
        dispatcher = Dispatcher(Store.open(tmp_path), make_settings(tmp_path, config), metrics)
        async with running(dispatcher):
            dispatcher.enqueue(note("typo", "SOL alert", "phnoe"))
            await http.wait_until(lambda: len(http.delivered) == 1)
            await dispatcher.wait_settled()
        [report] = http.delivered
        assert report.path == "/admin"
        assert report.title == "Undeliverable: SOL alert"
        assert "no channel matches tags: phnoe" in report.message
        assert report.type == "failure"
        assert dispatcher.stats()["dead"] == 1
        assert sent(metrics, "dead_lettered") == 1


async def test_receiver_answering_500_gets_the_message_once_it_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Failures back off and retry; the recovered endpoint gets exactly one copy, and the
    repeated failure is logged once at WARNING."""
    caplog.set_level(logging.DEBUG, logger="notifier.dispatch")
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        metrics = Metrics()
        dispatcher = Dispatcher(Store.open(tmp_path), make_settings(tmp_path, config), metrics)
        http.fail_status = 500
        async with running(dispatcher):
            dispatcher.enqueue(note("flaky"))
            await http.wait_until(lambda: len(http.posts) >= 3)
            assert dispatcher.stats()["failed"] == 1
            http.fail_status = None
            await http.wait_until(lambda: len(http.delivered) == 1)
            await dispatcher.wait_settled()
        assert http.delivered_titles() == ["flaky"]
        assert all(p.status == 500 for p in http.posts[:-1])
        assert dispatcher.stats()["sent"] == 1
        assert sent(metrics, "failed") >= 2
        warnings = [
            r for r in caplog.records if r.levelno == logging.WARNING and "flaky" in r.getMessage()
        ]
        assert len(warnings) == 1
        assert "Internal server error" in warnings[0].getMessage()
        delivered = [
            r.getMessage() for r in caplog.records if r.getMessage().startswith("delivered")
        ]
        assert len(delivered) == 1
        assert "attempt 1)" not in delivered[0]
        assert delivered[0].endswith(" ok")


async def test_partial_failure_retries_only_the_failed_channel(tmp_path: Path) -> None:
    """Two channels, one failing: the healthy one is not sent the message again."""
    async with HttpReceiver() as good, HttpReceiver() as flaky:
        config = write_apprise_yaml(
            tmp_path / "apprise.yml", [(good.url("good"), "ops"), (flaky.url("flaky"), "ops")]
        )
        dispatcher = Dispatcher(Store.open(tmp_path), make_settings(tmp_path, config), Metrics())
        flaky.fail_status = 500
        async with running(dispatcher):
            dispatcher.enqueue(note("half", None, "ops"))
            await flaky.wait_until(lambda: len(flaky.posts) >= 3)
            flaky.fail_status = None
            await flaky.wait_until(lambda: len(flaky.delivered) == 1)
            await dispatcher.wait_settled()
        assert good.delivered_titles() == ["half"]
        assert len(good.posts) == 1
        assert flaky.delivered_titles() == ["half"]


async def test_duplicate_key_is_not_queued_or_sent_again(tmp_path: Path) -> None:
    """The dedup key is accepted once: before and after delivery."""
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        metrics = Metrics()
        dispatcher = Dispatcher(Store.open(tmp_path), make_settings(tmp_path, config), metrics)
        assert dispatcher.enqueue(note("same-key", "first"))
        assert not dispatcher.enqueue(note("same-key", "second"))
        async with running(dispatcher):
            await http.wait_until(lambda: len(http.delivered) == 1)
            await dispatcher.wait_settled()
            assert not dispatcher.enqueue(note("same-key", "third"))
            await dispatcher.wait_settled()
        assert http.delivered_titles() == ["first"]
        assert sent(metrics, "deduplicated") == 2
        assert sent(metrics, "queued") == 1


async def test_restart_sends_pending_rows_and_never_resends_sent_ones(tmp_path: Path) -> None:
    """A row confirmed before the 'crash' stays sent; one never attempted goes out once."""
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        settings = make_settings(tmp_path, config)
        store = Store.open(settings.state_dir)
        first = Dispatcher(store, settings, Metrics())
        async with running(first):
            first.enqueue(note("confirmed"))
            await http.wait_until(lambda: len(http.delivered) == 1)
            await first.wait_settled()
        first.enqueue(note("unconfirmed"))  # its loop is gone: stays pending
        first.close()
        store.close()

        second = Dispatcher(Store.open(settings.state_dir), settings, Metrics())
        assert second.pending_count() == 1
        async with running(second):
            await http.wait_until(lambda: len(http.delivered) == 2)
            await second.wait_settled()
        assert http.delivered_titles() == ["confirmed", "unconfirmed"]
        assert second.stats()["sent"] == 2


async def test_dead_channel_is_dead_lettered_after_retry_for_and_reported_once(
    tmp_path: Path,
) -> None:
    """A channel that never answers: retries until ``retry_for``, then dead and reported to
    ``errors_to``; when the report's own channel is dead too, nothing loops."""
    clock = FakeClock()
    async with HttpReceiver() as admin:
        config = write_apprise_yaml(
            tmp_path / "apprise.yml", [(closed_port_url(), "phone"), (admin.url(), "admin")]
        )
        settings = make_settings(tmp_path, config, retry_for=600.0, backoff_cap=30.0)
        metrics = Metrics()
        dispatcher = Dispatcher(Store.open(tmp_path), settings, metrics, now=clock)
        async with running(dispatcher):
            dispatcher.enqueue(note("lost", "fill on chain 1", "phone"))
            for _ in range(200):
                await dispatcher.wait_settled()
                if dispatcher.stats()["dead"]:
                    break
                clock.advance(31.0)
                dispatcher.wake()
            await admin.wait_until(lambda: len(admin.delivered) == 1)
            await dispatcher.wait_settled()
        [report] = admin.delivered
        assert report.title == "Undeliverable: fill on chain 1"
        assert "connection error" in report.message.lower()
        assert sent(metrics, "dead_lettered") == 1
        assert sent(metrics, "failed") >= 2
        assert dispatcher.stats()["pending"] == 0

    # The admin channel dies too: its report is dead-lettered without a report of its own.
    clock2 = FakeClock()
    config = write_apprise_yaml(
        tmp_path / "dead.yml", [(closed_port_url("a"), "phone"), (closed_port_url("b"), "admin")]
    )
    settings = make_settings(tmp_path / "two", config, retry_for=60.0, backoff_cap=30.0)
    dispatcher = Dispatcher(Store.open(tmp_path / "two"), settings, Metrics(), now=clock2)
    async with running(dispatcher):
        dispatcher.enqueue(note("lost-too", None, "phone"))
        for _ in range(200):
            await dispatcher.wait_settled()
            if dispatcher.stats()["pending"] == 0:
                break
            clock2.advance(31.0)
            dispatcher.wake()
    stats = dispatcher.stats()
    assert (stats["dead"], stats["pending"], stats["sent"]) == (2, 0, 0)


async def test_drain_lets_in_flight_send_finish_and_leaves_cut_off_ones_pending(
    tmp_path: Path,
) -> None:
    """drain(): a send stuck past the grace stays pending (resent after restart)."""
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        settings = make_settings(tmp_path, config, timeout=30.0)
        dispatcher = Dispatcher(Store.open(tmp_path), settings, Metrics())
        http.hang_next(1)
        async with running(dispatcher, grace=0.2) as task:
            dispatcher.enqueue(note("stuck"))
            await http.wait_until(lambda: http.hanging == 1)
        assert task.done()
        assert dispatcher.pending_count() == 1
        assert dispatcher.stats()["sent"] == 0


def traced_store(tmp_path: Path) -> tuple[Store, list[str]]:
    """A store whose connection records every statement it runs."""
    conn = sqlite3.connect(tmp_path / "traced.db", isolation_level=None, check_same_thread=False)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    store = SqliteStore(conn)
    store.migrate()
    statements.clear()
    return store, statements


def test_enqueue_writes_the_row_and_its_rate_limit_decision_in_one_commit(
    tmp_path: Path,
) -> None:
    """One fsync'd commit per notification, and none of its own inside the engine's
    transaction: the route and the rate-limit admission are in it already."""
    config = write_apprise_yaml(tmp_path / "apprise.yml", [(closed_port_url(), "ops")])
    store, statements = traced_store(tmp_path)
    dispatcher = Dispatcher(store, make_settings(tmp_path, config), Metrics())
    assert dispatcher.enqueue(note("alone", None, "ops"))
    assert statements.count("COMMIT") == 1

    statements.clear()
    with store.transaction():  # as the rule engine does around a state change
        assert dispatcher.enqueue(note("joined", None, "ops"))
        assert "COMMIT" not in statements
    assert statements.count("COMMIT") == 1

    routes = store.read("SELECT key, route FROM outbox ORDER BY id")
    assert routes == [("alone", '["ops"]'), ("joined", '["ops"]')]
    assert store.read("SELECT COUNT(*) FROM outbox_sends WHERE tag = 'ops'") == [(2,)]
    dispatcher.close()


class RollBack(Exception):
    """Raised inside a transaction to roll it back."""


async def test_nothing_is_sent_before_the_enqueuing_transaction_commits(tmp_path: Path) -> None:
    """A row enqueued inside an open transaction waits for its commit; a rolled-back one is
    never sent."""
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        store = Store.open(tmp_path)
        dispatcher = Dispatcher(store, make_settings(tmp_path, config), Metrics())
        async with running(dispatcher):
            await dispatcher.wait_settled()
            with contextlib.suppress(RollBack), store.transaction():
                dispatcher.enqueue(note("rolled-back"))
                await asyncio.sleep(0.1)
                raise RollBack
            with store.transaction():
                dispatcher.enqueue(note("committed"))
                await asyncio.sleep(0.1)
                assert http.arrivals == 0
            await http.wait_until(lambda: len(http.delivered) == 1)
            await dispatcher.wait_settled()
        assert http.delivered_titles() == ["committed"]
        assert http.arrivals == 1


async def test_a_hung_send_does_not_hold_up_the_next_notification(tmp_path: Path) -> None:
    """A channel call that never returns keeps its worker; the next notification goes out
    on another one, and the hung row stays pending for a retry."""
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url(), "")])
        settings = make_settings(tmp_path, config, timeout=30.0)
        dispatcher = Dispatcher(Store.open(tmp_path), settings, Metrics())
        http.hang_next(1)
        async with running(dispatcher, grace=0.2):
            dispatcher.enqueue(note("stuck"))
            await http.wait_until(lambda: http.hanging == 1)
            dispatcher.enqueue(note("next"))
            await http.wait_until(lambda: len(http.delivered) == 1)
        assert http.delivered_titles() == ["next"]
        assert dispatcher.pending_count() == 1
