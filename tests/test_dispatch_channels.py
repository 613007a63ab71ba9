"""The apprise side: config loading and reload, notify-test, the console channel, backoff."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.config import DeliverySettings, Settings
from notifier.dispatch import Dispatcher, Notification, check_apprise_config, notify_test
from notifier.dispatch.console import render
from notifier.dispatch.outbox import KEEP_FINISHED
from notifier.metrics import Metrics
from notifier.store import Store
from tests.receivers import (
    FakeClock,
    HttpReceiver,
    SmtpReceiver,
    closed_port_url,
    running,
    wait_until,
    write_apprise_yaml,
)


def settings_for(tmp_path: Path, config: Path) -> Settings:
    return Settings(
        apprise_config=config,
        state_dir=tmp_path,
        delivery=DeliverySettings(timeout=5.0, backoff_cap=0.05),
    )


async def test_notify_test_reports_each_channel_separately(tmp_path: Path) -> None:
    """One message per channel; a dead channel fails alone; ``--tag`` narrows the set."""
    async with HttpReceiver() as http, SmtpReceiver() as smtp:
        config = write_apprise_yaml(
            tmp_path / "apprise.yml",
            [(http.url(), "phone"), (smtp.url(), "email, admin"), (closed_port_url(), "phone")],
        )
        settings = settings_for(tmp_path, config)
        results = await notify_test(settings, None)
        assert len(results) == 3
        by_ok = sorted(results, key=lambda r: (r.ok, r.url))
        assert [r.ok for r in by_ok] == [False, True, True]
        assert by_ok[0].error is not None
        assert "connection error" in by_ok[0].error.lower()
        assert {r.tags for r in results} == {("phone",), ("admin", "email")}
        assert len(http.delivered) == 1
        assert len(smtp.messages) == 1

        only_email = await notify_test(settings, "email")
        assert [(r.tags, r.ok) for r in only_email] == [(("admin", "email"), True)]
        assert await notify_test(settings, "nobody") == []


def test_check_apprise_config_reports_problems_without_the_path(tmp_path: Path) -> None:
    missing = settings_for(tmp_path, tmp_path / "nope.yml")
    assert check_apprise_config(missing) == ["apprise config not found"]
    empty = tmp_path / "empty.yml"
    empty.write_text("urls: []\n", encoding="utf-8")
    assert check_apprise_config(settings_for(tmp_path, empty))
    good = write_apprise_yaml(tmp_path / "good.yml", [("json://127.0.0.1:9/x", "a")])
    assert check_apprise_config(settings_for(tmp_path, good)) == []


async def test_reload_swaps_the_channel_generation_but_keeps_a_working_one_over_a_broken_file(
    tmp_path: Path,
) -> None:
    async with HttpReceiver() as http:
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(http.url("old"), "")])
        dispatcher = Dispatcher(Store.open(tmp_path), settings_for(tmp_path, config), Metrics())
        write_apprise_yaml(config, [(http.url("new"), ""), (http.url("new2"), "")])
        assert dispatcher.reload_channels() == []
        assert dispatcher.stats()["channels"] == 2

        config.write_text("urls: [\n", encoding="utf-8")  # broken YAML
        errors = dispatcher.reload_channels()
        assert errors
        assert dispatcher.stats()["channels"] == 2  # last good generation kept
        assert dispatcher.stats()["channel_errors"] == errors

        async with running(dispatcher):
            dispatcher.enqueue(Notification(key="k", rule_id="r", title="t", body="b"))
            await http.wait_until(lambda: len(http.delivered) == 2)
            await dispatcher.wait_settled()
        assert sorted(p.path for p in http.delivered) == ["/new", "/new2"]


async def test_notifications_wait_for_a_config_when_none_is_loaded(tmp_path: Path) -> None:
    """Without any channel (missing file) rows stay pending and go out after a reload."""
    async with HttpReceiver() as http:
        config = tmp_path / "apprise.yml"
        dispatcher = Dispatcher(Store.open(tmp_path), settings_for(tmp_path, config), Metrics())
        assert dispatcher.channel_errors == ["apprise config not found"]
        async with running(dispatcher):
            dispatcher.enqueue(Notification(key="early", rule_id="r", title="early", body="b"))
            await wait_until(lambda: dispatcher.stats()["failed"] == 1)
            assert dispatcher.stats()["dead"] == 0
            write_apprise_yaml(config, [(http.url(), "")])
            assert dispatcher.reload_channels() == []
            await http.wait_until(lambda: len(http.delivered) == 1)
            await dispatcher.wait_settled()
        assert http.delivered_titles() == ["early"]


async def test_console_channel_prints_one_readable_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``console://`` in an apprise config prints severity, title and body."""
    config = write_apprise_yaml(tmp_path / "apprise.yml", [("console://", "")])
    dispatcher = Dispatcher(Store.open(tmp_path), settings_for(tmp_path, config), Metrics())
    async with running(dispatcher):
        dispatcher.enqueue(
            Notification(
                key="c",
                rule_id="r",
                title="SOL at 201.50 USDC",
                body="impact 3 bps",
                severity="warning",
            )
        )
        await dispatcher.wait_settled()
    out = capsys.readouterr().out
    assert out == render("SOL at 201.50 USDC", "impact 3 bps", "warning")
    assert out.splitlines()[:3] == [
        "── WARNING " + "─" * 61,
        "SOL at 201.50 USDC",
        "impact 3 bps",
    ]
    assert dispatcher.stats()["sent"] == 1


async def test_finished_rows_dedup_for_a_week_then_are_pruned(tmp_path: Path) -> None:
    clock = FakeClock()
    config = write_apprise_yaml(tmp_path / "apprise.yml", [("console://", "")])
    dispatcher = Dispatcher(
        Store.open(tmp_path), settings_for(tmp_path, config), Metrics(), now=clock
    )
    n = Notification(key="weekly", rule_id="r", title="t", body="b")
    async with running(dispatcher):
        dispatcher.enqueue(n)
        await dispatcher.wait_settled()
        clock.advance(KEEP_FINISHED - 60)
        assert not dispatcher.enqueue(n)
        clock.advance(3600 + 120)  # past the week and the hourly prune
        dispatcher.wake()
        await dispatcher.wait_settled()
        assert dispatcher.stats()["sent"] == 0
        assert dispatcher.enqueue(n)
