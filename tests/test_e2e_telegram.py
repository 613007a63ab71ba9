"""End to end: simulator quotes → the real daemon → the bot's chats on a fake Telegram Bot API
(loopback); button presses and commands queued at the fake act on the real daemon."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from notifier.daemon import Daemon, running
from notifier.simulator import Simulator
from notifier.telegram.outgoing import chat_key
from notifier.telegram.probe import notify_test
from tests.fakebotapi import FAKE_TOKEN, FakeBotApi, user
from tests.receivers import HttpReceiver, wait_until
from tests.support import ONE_SOL, SOL, SOL_ABOVE_200, USDC, daemon_settings, set_price

CHAT, STRANGER = 1001, 2002
RULE = "sol-above-200"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(chats=(CHAT, STRANGER)) as api:
        yield api


@pytest.fixture
async def daemon(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, fake: FakeBotApi
) -> AsyncIterator[Daemon]:
    """``SOL_ABOVE_200`` (tag ``phone``) with the bot on ``phone`` for one chat; the apprise
    receiver is tagged ``admin, phone`` too."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    telegram = {"bot_token": FAKE_TOKEN, "chat_ids": [CHAT], "tags": ["phone"], "api_url": fake.url}
    async with running(
        daemon_settings(tmp_path, sim, receiver, SOL_ABOVE_200, telegram=telegram)
    ) as started:
        await fake.wait_until(lambda: fake.of("getUpdates"))  # the bot listens
        yield started


def alert(daemon: Daemon) -> dict[str, Any]:
    (found,) = [a for a in daemon.talkback.talkback.alerts() if a["rule"] == RULE]
    return found


async def fire(sim: Simulator, daemon: Daemon, fake: FakeBotApi, price: float) -> dict[str, Any]:
    """Cross the threshold; the message the bot sent for it."""
    before = len(fake.sent(CHAT))
    await set_price(sim, daemon, price)
    await fake.wait_until(lambda: len(fake.sent(CHAT)) > before)
    return fake.sent(CHAT)[-1]


async def reply_to(fake: FakeBotApi, text: str, chat: int = CHAT) -> str:
    """Write ``text`` in ``chat``; the bot's reply."""
    message_id = fake.write(chat, text)
    await fake.wait_until(lambda: fake.replies(chat, message_id))
    return str(fake.replies(chat, message_id)[0]["text"])


async def test_an_alert_reaches_the_chat_with_three_buttons_and_not_apprise(
    sim: Simulator, receiver: HttpReceiver, fake: FakeBotApi, daemon: Daemon
) -> None:
    """The bot claims ``phone``: the message goes to the chat, with Ack / Snooze 1h / Silence
    24h, and not also to the apprise channel tagged ``phone``."""
    message = await fire(sim, daemon, fake, 201.5)
    assert message["text"].startswith("🟠 SOL at 201.5") or message["text"].startswith(
        "🔵 SOL at 201.5"
    )
    assert message["entities"][0]["type"] == "bold"
    buttons = [b["text"] for b in message["reply_markup"]["inline_keyboard"][0]]
    assert buttons == ["Ack", "Snooze 1h", "Silence 24h"]
    await daemon.dispatcher_idle()
    assert receiver.posts == []
    channels = daemon.status()["outbox"]["channel_list"]
    assert {"url": f"telegram-bot:chat/{CHAT}", "tags": ["phone"]} in channels
    await set_price(sim, daemon, 197.0)  # resolves: no resolve message asked by this rule
    await daemon.dispatcher_idle()
    assert len(fake.sent(CHAT)) == 1


async def test_ack_from_the_allowed_chat_acknowledges_answers_and_edits(
    sim: Simulator, fake: FakeBotApi, daemon: Daemon
) -> None:
    """Ack: the alert shows acknowledged, the callback is answered, the message says who
    did it and keeps the other two buttons; Snooze then snoozes it."""
    message = await fire(sim, daemon, fake, 201.5)
    fake.press_button(message, "Ack", user(7, "Ada", "ada"))
    await wait_until(lambda: alert(daemon)["acknowledged"])
    await fake.wait_until(lambda: fake.of("editMessageText", ok=True))
    answers = fake.of("answerCallbackQuery", ok=True)
    assert [a.params["text"] for a in answers] == ["✔️ Acknowledged"]
    edited = fake.sent(CHAT)[-1]
    assert edited["message_id"] == message["message_id"]
    assert edited["text"].startswith(message["text"] + "\n✔️ Acknowledged by Ada (@ada) at ")
    assert [b["text"] for b in edited["reply_markup"]["inline_keyboard"][0]] == [
        "Snooze 1h",
        "Silence 24h",
    ]
    fake.press_button(edited, "Snooze 1h")
    await wait_until(lambda: alert(daemon)["snoozed_until"] is not None)
    await fake.wait_until(lambda: "Snoozed for 1h" in fake.sent(CHAT)[-1]["text"])
    assert [b["text"] for b in fake.sent(CHAT)[-1]["reply_markup"]["inline_keyboard"][0]] == [
        "Silence 24h"
    ]


async def test_silence_button_silences_the_rule_for_a_day(
    sim: Simulator, fake: FakeBotApi, daemon: Daemon
) -> None:
    message = await fire(sim, daemon, fake, 201.5)
    fake.press_button(message, "Silence 24h")
    await wait_until(daemon.talkback.talkback.silences)
    (silence,) = daemon.talkback.talkback.silences()
    assert silence.matchers.rule == RULE
    assert 86000 < silence.ends_at - time.time() <= 86400
    assert silence.created_by == "telegram: Ada (@ada)"
    await fake.wait_until(lambda: "Rule silenced for 24h" in fake.sent(CHAT)[-1]["text"])
    assert alert(daemon)["silenced_by"] == [silence.id]


async def test_a_press_or_command_from_another_chat_changes_nothing_and_is_logged_once(
    sim: Simulator, fake: FakeBotApi, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="notifier")
    message = await fire(sim, daemon, fake, 201.5)
    elsewhere = {**message, "chat": {"id": STRANGER, "type": "private"}}
    for _ in range(2):
        fake.press_button(elsewhere, "Ack", user(666, "Mallory", "mallory"))
    fake.write(STRANGER, "/silence * 1d")
    await fake.wait_until(lambda: len(fake.of("answerCallbackQuery")) == 2)
    await fake.wait_until(lambda: fake.pending_updates == 0)
    await reply_to(fake, "/help")  # the allowed chat is still served: the updates were handled
    assert [a.params["text"] for a in fake.of("answerCallbackQuery")] == ["Not allowed."] * 2
    assert not alert(daemon)["acknowledged"]
    assert daemon.talkback.talkback.silences() == []
    assert fake.sent(STRANGER) == []
    assert fake.of("editMessageText") == []
    ignored = [
        r.getMessage() for r in caplog.records if "not in telegram.chat_ids" in r.getMessage()
    ]
    assert len(ignored) == 1
    assert f"chat {STRANGER}" in ignored[0]


async def test_a_forged_button_changes_nothing(
    sim: Simulator, fake: FakeBotApi, daemon: Daemon
) -> None:
    """callback_data the bot did not sign (a modified client can send any) is refused."""
    message = await fire(sim, daemon, fake, 201.5)
    data = message["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    fake.press(message, "s" + data[1:])  # Ack's signature on Silence
    await fake.wait_until(lambda: fake.of("answerCallbackQuery", ok=True))
    assert fake.of("answerCallbackQuery")[0].params["text"] == "This button is no longer valid."
    assert daemon.talkback.talkback.silences() == []


async def test_ack_on_an_episode_that_is_over_changes_nothing(
    sim: Simulator, fake: FakeBotApi, daemon: Daemon
) -> None:
    """The old message's Ack does not acknowledge the next episode."""
    old = await fire(sim, daemon, fake, 201.5)
    await set_price(sim, daemon, 197.0)
    await fire(sim, daemon, fake, 202.0)
    fake.press_button(old, "Ack")
    await fake.wait_until(lambda: fake.of("answerCallbackQuery", ok=True))
    assert "over" in fake.of("answerCallbackQuery")[0].params["text"]
    assert not alert(daemon)["acknowledged"]


async def test_commands(sim: Simulator, fake: FakeBotApi, daemon: Daemon) -> None:
    """/status, /alerts, /silence, /silences, /unsilence and /ack work from the chat."""
    await fire(sim, daemon, fake, 201.5)
    status = await reply_to(fake, "/status")
    assert "1 firing" in status
    assert "0 acknowledged, 0 silence(s) active" in status
    alerts = await reply_to(fake, "/alerts@notifier_test_bot")
    assert alerts.startswith("1 alert(s):\n🔴 sol-above-200 [")
    silenced = await reply_to(fake, "/silence sol-* 2h maintenance window")
    assert silenced.startswith("🔕 Silenced rule sol-* until ")
    (silence,) = daemon.talkback.talkback.silences()
    assert silence.comment == "maintenance window"
    assert f"(id {silence.id})" in silenced
    listed = await reply_to(fake, "/silences")
    assert f"{silence.id}: " in listed
    assert "maintenance window" in listed
    assert await reply_to(fake, f"/unsilence {silence.id}") == f"Silence {silence.id} ended."
    assert daemon.talkback.talkback.silences() == []
    acked = await reply_to(fake, f"/ack {RULE}")
    assert acked.startswith(f"✔️ Acknowledged {RULE} [")
    assert alert(daemon)["acknowledged"]
    assert (await reply_to(fake, "/ack no-such-rule")).startswith("/ack: no rule 'no-such-rule'")
    assert (await reply_to(fake, "/silence sol-* soon")).startswith("/silence: soon: ")
    assert (await reply_to(fake, "/nope")).startswith("Unknown command /nope.")
    other = fake.write(CHAT, "/status@some_other_bot")  # a group's command for another bot
    await reply_to(fake, "/help")
    assert fake.replies(CHAT, other) == []


async def test_429_and_5xx_from_the_bot_api_are_retried_and_the_token_never_logged(
    sim: Simulator, fake: FakeBotApi, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """Flood control (429 retry_after) and a 502 on sendMessage, a 500 on getUpdates: the
    message arrives once; no log record carries the token."""
    caplog.set_level(logging.DEBUG)
    fake.fail("sendMessage", 429, retry_after=1)
    fake.fail("sendMessage", 502)
    fake.fail("getUpdates", 500)
    message = await fire(sim, daemon, fake, 201.5)
    sends = fake.of("sendMessage")
    assert [c.error is None for c in sends] == [False, False, True]
    assert len(fake.sent(CHAT)) == 1
    fake.press_button(message, "Ack")
    await wait_until(lambda: alert(daemon)["acknowledged"])
    assert fake.of("getUpdates", ok=False)
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "") + str(record.args or "")
        assert FAKE_TOKEN not in text
        assert FAKE_TOKEN.split(":")[1] not in text
    key = chat_key(CHAT)
    assert key not in "".join(r.getMessage() for r in caplog.records)


async def test_round_trip_from_a_press_to_the_alert_acknowledged(
    sim: Simulator, fake: FakeBotApi, daemon: Daemon
) -> None:
    """Five episodes: the time from the press queued at the fake until the daemon's alert
    shows acknowledged (printed; nothing asserted about speed)."""
    times = []
    for episode in range(5):
        message = await fire(sim, daemon, fake, 201.0 + episode)
        fake.press_button(message, "Ack")
        started = time.perf_counter()
        await wait_until(lambda: alert(daemon)["acknowledged"], interval=0.0005)
        times.append((time.perf_counter() - started) * 1000)
        await set_price(sim, daemon, 197.0)
    print(
        f"\npress → acknowledged: median {statistics.median(times):.1f} ms, "
        f"all {', '.join(f'{t:.1f}' for t in times)} ms"
    )


async def test_notify_test_reaches_the_bots_chats_instead_of_apprise_for_its_tags(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, fake: FakeBotApi
) -> None:
    """``notifier notify-test --tag phone``: the chat gets the test message (no buttons), the
    apprise URL tagged phone does not."""
    telegram = {"bot_token": FAKE_TOKEN, "chat_ids": [CHAT], "tags": ["phone"], "api_url": fake.url}
    settings = daemon_settings(tmp_path, sim, receiver, SOL_ABOVE_200, telegram=telegram)
    results = await notify_test(settings, "phone")
    assert [(r.url, r.ok) for r in results] == [(f"telegram-bot:chat/{CHAT}", True)]
    (message,) = fake.sent(CHAT)
    assert message["text"].startswith("🔵 notifier test notification\nIf you can read this")
    assert "reply_markup" not in message
    assert receiver.posts == []
    fake.fail("sendMessage", 400)
    (failed,) = await notify_test(settings, "phone")
    assert not failed.ok
    assert failed.error is not None
    assert FAKE_TOKEN not in failed.error


async def test_another_poller_of_the_same_bot_is_said_once_and_outlived(
    tmp_path: Path,
    sim: Simulator,
    receiver: HttpReceiver,
    fake: FakeBotApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """409 Conflict on getUpdates (another program polls the bot): one warning naming the
    cause, backoff, and the bot listens again once the other one is gone."""
    caplog.set_level(logging.INFO, logger="notifier")
    fake.fail("getUpdates", 409, times=3)
    telegram = {"bot_token": FAKE_TOKEN, "chat_ids": [CHAT], "tags": ["phone"], "api_url": fake.url}
    settings = daemon_settings(tmp_path, sim, receiver, SOL_ABOVE_200, telegram=telegram)
    async with running(settings):
        await fake.wait_until(lambda: fake.of("getUpdates", ok=True), timeout=30)
        assert (await reply_to(fake, "/help")).startswith("/status")
    lines = [r.getMessage() for r in caplog.records if r.name == "notifier.telegram"]
    conflicts = [line for line in lines if "another getUpdates or a webhook" in line]
    assert len(conflicts) == 1
    assert any(line == "telegram: the Bot API answers again" for line in lines)
