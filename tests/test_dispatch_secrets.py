"""Channel secrets never show: not in logs (any logger, DEBUG), errors, stats or reports."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from notifier.config import DeliverySettings, Settings
from notifier.dispatch import Dispatcher, Notification, check_apprise_config, notify_test
from notifier.dispatch.channels import Channels, url_secrets
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


# Each URL form apprise accepts a secret in, with the secret(s) it carries. Every secret is
# 8+ characters and distinct from the rest of the URL, so a leak cannot hide in a word.
URL_FORMS = [
    pytest.param("json://127.0.0.1:9/x?+Authorization=Bearer%20hdrS3cretA1", ["hdrS3cretA1"],
                 id="json-header"),
    pytest.param("json://127.0.0.1:9/x?-apikey=prmS3cretB2", ["prmS3cretB2"], id="json-param"),
    pytest.param("json://127.0.0.1:9/x?:token=pldS3cretC3", ["pldS3cretC3"], id="json-payload"),
    pytest.param("xml://127.0.0.1:9/x?+X-Api-Key=xmlS3cretD4", ["xmlS3cretD4"], id="xml-header"),
    pytest.param("form://127.0.0.1:9/x?-key=frmS3cretE5", ["frmS3cretE5"], id="form-param"),
    pytest.param("json://usrS3cretF6@127.0.0.1:9/x", ["usrS3cretF6"], id="json-lone-user"),
    pytest.param("json://bot:pwdS3cretG7@127.0.0.1:9/x", ["pwdS3cretG7"], id="json-password"),
    pytest.param("tgram://123456789:AAtgS3cretH8xyz/12345678", ["AAtgS3cretH8xyz"], id="telegram"),
    pytest.param("discord://4174216298/dscS3cretI9_token", ["dscS3cretI9_token"], id="discord"),
    pytest.param("ntfys://ops:ntfS3cretJ0@ntfy.example.com/topic", ["ntfS3cretJ0"], id="ntfy"),
    pytest.param("ntfy://ntfy.example.com/topic?token=tk_ntfS3cretK1", ["tk_ntfS3cretK1"],
                 id="ntfy-token"),
    pytest.param("mailtos://ops:mlS3cretL2@example.com?to=a@example.com", ["mlS3cretL2"],
                 id="mailtos"),
    pytest.param("slack://TslS3cretA/BslS3cretB/CslS3cretC",
                 ["TslS3cretA", "BslS3cretB", "CslS3cretC"], id="slack"),
    pytest.param("gotify://example.com/gotS3cretM3", ["gotS3cretM3"], id="gotify"),
    pytest.param("pover://usrkS3cretN4@tokS3cretO5", ["usrkS3cretN4", "tokS3cretO5"],
                 id="pushover"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "secrets"), URL_FORMS)
def test_every_secret_an_apprise_url_can_carry_is_hidden_from_labels_and_masked_in_text(
    tmp_path: Path, url: str, secrets: list[str]
) -> None:
    """The channel's label (status, logs, notify-test) shows none of the URL's secrets, and
    the dispatcher's redactor masks each of them, and the full URL, in any text."""
    config = write_apprise_yaml(tmp_path / "apprise.yml", [(url, "")])
    redactor = url_secrets()
    channels = Channels.load(config, redactor)
    assert not channels.errors
    (channel,) = channels.channels
    assert channel.service is not None
    full = str(channel.service.url())  # type: ignore[no-untyped-call]
    text = redactor(f"POST {full} failed; {' '.join(secrets)}; {url}")
    for secret in secrets:
        assert secret in full  # apprise really holds it
        assert secret not in channel.label
        assert secret not in text
    assert channel.label.partition("://")[0] == url.partition("://")[0]


async def test_header_and_parameter_secrets_stay_out_of_status_logs_outbox_and_notify_test(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``+Authorization`` header and a ``-apikey`` parameter reach the receiver but no
    status, log line, stored error or notify-test result."""
    caplog.set_level(logging.DEBUG)
    bearer, apikey = "b3arerT0kenXyz", "ap1KeyValueQrs"
    async with HttpReceiver() as http:
        url = f"{http.url('h')}?+Authorization=Bearer%20{bearer}&-apikey={apikey}"
        config = write_apprise_yaml(tmp_path / "apprise.yml", [(url, "phone")])
        settings = Settings(
            apprise_config=config,
            state_dir=tmp_path,
            errors_to=[],
            delivery=DeliverySettings(timeout=5.0, backoff_cap=1.0, retry_for=60.0),
        )
        store = Store.open(tmp_path)
        dispatcher = Dispatcher(store, settings, Metrics())
        http.fail_status = 500
        async with running(dispatcher):
            dispatcher.enqueue(
                Notification(key="k", rule_id="r", title="t", body="b", tags=("phone",))
            )
            await http.wait_until(lambda: len(http.posts) == 1)
            await dispatcher.wait_settled()
            stats = dispatcher.stats()
        results = await notify_test(settings, "phone")
    assert http.posts[0].authorization == f"Bearer {bearer}"
    stored = store.read("SELECT last_error FROM outbox")
    everything = "\n".join([caplog.text, json.dumps(stats), repr(stored), repr(results)])
    assert "Bearer%20****" in json.dumps(stats)
    assert "500" in repr(stored)  # the failure itself is recorded
    assert bearer not in everything
    assert apikey not in everything
