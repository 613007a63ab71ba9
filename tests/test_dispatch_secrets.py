"""Channel secrets never show: not in logs (any logger, DEBUG), errors, stats or reports."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from notifier.config import DeliverySettings, Settings
from notifier.dispatch import Dispatcher, Notification, check_apprise_config, notify_test
from notifier.metrics import Metrics
from notifier.store import Store
from tests.receivers import FakeClock, HttpReceiver, running, write_apprise_yaml

TOKEN = "s3cr3tT0kenSeed9"


async def test_seeded_token_never_appears_in_logs_errors_stats_or_reports(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, apprise and urllib3 included
    clock = FakeClock()
    async with HttpReceiver() as http, HttpReceiver() as admin:
        config = write_apprise_yaml(
            tmp_path / "apprise.yml",
            [
                (http.url("secret", user="bot", password=TOKEN), "phone"),
                (admin.url("admin"), "admin"),
            ],
        )
        # Lines apprise complains about, carrying the token: apprise echoes the second
        # one raw in its warning; neither the log nor the returned errors may show it.
        with config.open("a", encoding="utf-8") as f:
            f.write(f"  - bogus://{TOKEN}@example.com/x\n")
            f.write(f"  - json://bot:{TOKEN}@127.0.0.1:9/other:\n")
            f.write("      tag: other\n      tags: also\n")
        settings = Settings(
            apprise_config=config,
            state_dir=tmp_path,
            errors_to=["admin"],
            delivery=DeliverySettings(timeout=5.0, backoff_cap=1.0, retry_for=10.0),
        )
        store = Store.open(tmp_path)
        dispatcher = Dispatcher(store, settings, Metrics(), now=clock)
        errors = dispatcher.reload_channels()
        assert len(errors) == 2  # both lines are reported…
        assert any("contains both 'tag' and 'tags'" in e for e in errors)
        http.fail_status = 500
        async with running(dispatcher):
            dispatcher.enqueue(
                Notification(key="k", rule_id="r", title="t", body="b", tags=("phone",))
            )
            for _ in range(100):
                await dispatcher.wait_settled()
                if dispatcher.stats()["dead"]:
                    break
                clock.advance(2.0)
                dispatcher.wake()
            await admin.wait_until(lambda: len(admin.delivered) == 1)
            await dispatcher.wait_settled()
        results = await notify_test(settings, "phone")

    # The secret really was used: the receiver got it as basic auth.
    assert (
        http.posts[0].authorization == "Basic " + base64.b64encode(f"bot:{TOKEN}".encode()).decode()
    )
    report = admin.delivered[0]
    assert report.title == "Undeliverable: t"
    stored = store.read("SELECT * FROM outbox")
    everything = "\n".join(
        [
            caplog.text,
            *errors,
            *check_apprise_config(settings),
            json.dumps(dispatcher.stats()),
            repr(stored),
            report.message,
            repr(results),
        ]
    )
    assert "Internal server error" in everything  # the failure itself is reported…
    assert "bot:****@" in everything  # …with the privacy form of the URL
    assert TOKEN not in everything
    assert results
    assert not results[0].ok


async def test_learnt_secrets_are_masked_in_apprise_and_urllib3_log_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Defence in depth: whatever apprise or urllib3 might print, a known token is masked;
    closing the dispatcher removes the filters again."""
    caplog.set_level(logging.DEBUG)
    config = write_apprise_yaml(
        tmp_path / "apprise.yml", [(f"json://bot:{TOKEN}@127.0.0.1:9/x", "")]
    )
    settings = Settings(apprise_config=config, state_dir=tmp_path)
    dispatcher = Dispatcher(Store.open(tmp_path), settings, Metrics())
    caplog.clear()
    logging.getLogger("apprise").warning("posting to json://bot:%s@127.0.0.1:9/x", TOKEN)
    logging.getLogger("urllib3.connectionpool").debug('"POST /x?token=%s HTTP/1.1" 200', TOKEN)
    assert TOKEN not in caplog.text
    assert caplog.text.count("****") == 2
    filters = logging.getLogger("apprise").filters
    count = len(filters)
    dispatcher.close()
    assert len(filters) == count - 1
