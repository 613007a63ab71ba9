"""The bot's own Bot API client against the fake Bot API on loopback: results, Telegram's
refusals as typed errors, 429 ``retry_after`` honoured, and the token never in an error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from notifier.telegram.api import BotApi, BotApiError
from notifier.telegram.buttons import ButtonSigner, keyboard, without
from notifier.telegram.messages import MAX_TEXT, alert_of, appended, render, utf16_len, who
from tests.fakebotapi import FAKE_TOKEN, FakeBotApi, user
from tests.receivers import closed_port_url


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


@pytest.fixture
async def api(fake: FakeBotApi) -> AsyncIterator[BotApi]:
    client = BotApi(FAKE_TOKEN, fake.url)
    yield client
    await client.close()


async def test_send_message_returns_the_message_the_fake_recorded(
    fake: FakeBotApi, api: BotApi
) -> None:
    """sendMessage with entities and an inline keyboard: the fake validates and keeps it."""
    text, entities = render("SOL at 201.5", "price 201.5 > 200", "warning")
    markup = keyboard(ButtonSigner(FAKE_TOKEN), 7)
    params = {"chat_id": 1001, "text": text, "entities": entities, "reply_markup": markup}
    message = await api.call("sendMessage", params, within=5)
    assert message["chat"]["id"] == 1001
    assert fake.sent(1001) == [message]
    assert [b["text"] for b in message["reply_markup"]["inline_keyboard"][0]] == [
        "Ack",
        "Snooze 1h",
        "Silence 24h",
    ]


async def test_a_429_is_waited_out_for_its_retry_after_then_sent(
    fake: FakeBotApi, api: BotApi
) -> None:
    """Flood control: the client waits the retry_after Telegram names, then succeeds."""
    fake.fail("sendMessage", 429, retry_after=1)
    await api.call("sendMessage", {"chat_id": 1001, "text": "hi"}, within=10)
    first, second = fake.of("sendMessage")
    assert first.error is not None
    assert second.error is None
    assert second.at - first.at >= 0.9


async def test_a_retry_after_beyond_the_budget_is_a_retryable_error(
    fake: FakeBotApi, api: BotApi
) -> None:
    """A wait longer than the call may take fails at once, retryable, and holds back the
    next call too."""
    fake.fail("sendMessage", 429, retry_after=30)
    with pytest.raises(BotApiError) as caught:
        await api.call("sendMessage", {"chat_id": 1001, "text": "hi"}, within=2)
    assert caught.value.retryable
    assert caught.value.retry_after == 30
    with pytest.raises(BotApiError, match="flood control"):
        await api.call("sendMessage", {"chat_id": 1001, "text": "again"}, within=2)
    assert len(fake.of("sendMessage")) == 1  # the second never reached Telegram


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (502, True), (400, False), (403, False)]
)
async def test_server_errors_are_retryable_and_refusals_are_not(
    fake: FakeBotApi, api: BotApi, status: int, retryable: bool
) -> None:
    fake.fail("sendMessage", status)
    with pytest.raises(BotApiError) as caught:
        await api.call("sendMessage", {"chat_id": 1001, "text": "hi"}, within=5)
    assert caught.value.retryable is retryable
    assert caught.value.status == status


async def test_the_fake_refuses_what_telegram_refuses(fake: FakeBotApi, api: BotApi) -> None:
    """Unknown chat, empty and too long text, a bad parse_mode, a button with 65 bytes."""
    bad = [
        {"chat_id": 999, "text": "hi"},
        {"chat_id": 1001, "text": " "},
        {"chat_id": 1001, "text": "x" * 4097},
        {"chat_id": 1001, "text": "hi", "parse_mode": "HTM"},
        {"chat_id": 1001, "text": "<b>hi", "parse_mode": "HTML"},
        {"chat_id": 1001, "text": "hi", "entities": [{"type": "bold", "offset": 0, "length": 3}]},
        {
            "chat_id": 1001,
            "text": "hi",
            "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "y" * 65}]]},
        },
    ]
    for params in bad:
        with pytest.raises(BotApiError, match="Bad Request") as caught:
            await api.call("sendMessage", params, within=5)
        assert not caught.value.retryable
    assert fake.sent() == []


async def test_a_wrong_token_says_which_key_and_shows_no_token(fake: FakeBotApi) -> None:
    wrong = "987654321:AAWrongTokenWrongTokenWrongToken12"
    client = BotApi(wrong, fake.url)
    try:
        with pytest.raises(BotApiError, match=r"telegram\.bot_token") as caught:
            await client.call("getMe", {}, within=5)
    finally:
        await client.close()
    assert caught.value.status == 401
    assert not caught.value.retryable
    assert wrong not in str(caught.value)


@pytest.mark.parametrize("base", [closed_port_url().replace("json://", "http://"), "http://[::1"])
async def test_network_failures_never_show_the_token(base: str) -> None:
    """Connection refused or a URL aiohttp rejects (its message quotes the whole URL)."""
    client = BotApi(FAKE_TOKEN, base)
    try:
        with pytest.raises(BotApiError) as caught:
            await client.call("getMe", {}, within=5)
    finally:
        await client.close()
    assert FAKE_TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.retryable


# -- buttons and texts ----------------------------------------------------------------------


def test_buttons_are_signed_small_and_unforgeable() -> None:
    signer = ButtonSigner(FAKE_TOKEN)
    data = signer.data("ack", 123456789012)
    assert len(data.encode()) <= 64
    button = signer.check(data)
    assert button is not None
    assert (button.action, button.row_id) == ("ack", 123456789012)
    forged = "s" + data[1:]  # the same row, another action
    assert signer.check(forged) is None
    assert signer.check(data.replace("123456789012", "123456789013")) is None
    assert ButtonSigner("another:token").check(data) is None
    assert signer.check(None) is None
    assert signer.check("a1." + "A" * 16) is None


def test_pressing_one_button_leaves_the_others() -> None:
    markup = keyboard(ButtonSigner(FAKE_TOKEN), 5)
    ack = markup["inline_keyboard"][0][0]["callback_data"]
    rest = without(markup, ack)
    assert [b["text"] for b in rest["inline_keyboard"][0]] == ["Snooze 1h", "Silence 24h"]


def test_the_alert_of_a_row_comes_from_the_engines_dedup_key() -> None:
    ref = alert_of("rule", "sol", "sol|SOL/USDC|a|b|firing|1700000000.250000")
    assert ref is not None
    assert (ref.rule, ref.key, ref.episode) == ("sol", "SOL/USDC|a|b", 1700000000.25)
    repeat = alert_of("rule", "sol", "sol|k|repeat|1700000000.250000|3")
    assert repeat is not None
    assert (repeat.key, repeat.episode) == ("k", 1700000000.25)
    after = alert_of("rule", "sol", "sol|k|firing|17.000000|after snooze 20.000000")
    assert after is not None
    assert (after.key, after.episode) == ("k", 17.0)
    assert alert_of("rule", "sol", "sol|k|resolved|17.000000") is None
    assert alert_of("rule", "fill", "fill|0xabc:order_filled") is None  # an event rule
    assert alert_of("digest", "sol", "sol|k|firing|17.000000") is None
    assert alert_of("rule", "sol", "other|k|firing|17.000000") is None


def test_texts_fit_telegrams_limit_and_appending_keeps_the_formatting() -> None:
    text, entities = render("T" * 600, "😀" * 5000, "failure")
    assert utf16_len(text) <= MAX_TEXT
    assert entities[0]["type"] == "bold"
    assert text.startswith("🔴 ")
    message = {"text": text, "entities": entities}
    for _ in range(10):
        text, entities = appended(message, "✔️ Acknowledged by " + who(user()))
        message = {"text": text, "entities": entities}
        assert utf16_len(text) <= MAX_TEXT
        assert all(e["offset"] + e["length"] <= utf16_len(text) for e in entities)
    assert text.endswith("Acknowledged by Ada (@ada)")
    assert who({"id": 7}) == "user 7"
    assert who({"id": 7, "first_name": "Bo"}) == "Bo"
