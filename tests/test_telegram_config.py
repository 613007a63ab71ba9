"""``[telegram]``: the token from the credentials directory, refusals naming the key, and the
bot's chats as dispatcher channels that take their tags away from apprise."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.config import ConfigError, load_settings
from notifier.dispatch import check_apprise_config
from notifier.dispatch.channels import Channels, url_secrets
from notifier.telegram import Telegram
from tests.receivers import write_apprise_yaml

TOKEN = "123456789:AAFromTheCredentialsDirectory-xyz"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("NOTIFIER_TELEGRAM__BOT_TOKEN", raising=False)


def test_the_token_comes_from_the_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "telegram_bot_token").write_text(TOKEN + "\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = tmp_path / "notifier.toml"
    config.write_text('[telegram]\nchat_ids = [1001]\ntags = ["phone"]\n', encoding="utf-8")
    settings = load_settings(config)
    assert settings.telegram.bot_token.get_secret_value() == TOKEN
    assert settings.fusion.api_key.get_secret_value() == ""  # other sections untouched


def test_chats_without_a_token_are_refused_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "notifier.toml"
    config.write_text("[telegram]\nchat_ids = [1001]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"telegram: .*bot_token is empty") as caught:
        load_settings(config)
    assert str(config) in str(caught.value)
    config.write_text(
        f'[telegram]\nchat_ids = [1]\nbot_token = "{TOKEN}"\napi_url = "ftp://x"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="api_url must be an http") as bad_url:
        load_settings(config)
    assert TOKEN not in str(bad_url.value)


async def test_without_chats_the_bot_is_off(tmp_path: Path) -> None:
    settings = load_settings(None, telegram={"bot_token": TOKEN})
    bot = Telegram(settings.telegram)
    assert not bot.enabled
    assert bot.senders == []
    await bot.close()


async def test_the_bots_tags_go_to_its_chats_only(tmp_path: Path) -> None:
    """``phone`` (claimed) reaches the chats and not the apprise URL tagged phone; ``admin``
    reaches apprise only; both tags reach both; no tag reaches apprise's every channel."""
    settings = load_settings(
        None, telegram={"bot_token": TOKEN, "chat_ids": [1001, -2002], "tags": ["phone"]}
    )
    bot = Telegram(settings.telegram)
    config = write_apprise_yaml(
        tmp_path / "apprise.yml",
        [("json://127.0.0.1:9/a", "phone, admin"), ("json://127.0.0.1:9/b", "")],
    )
    channels = Channels.load(config, url_secrets(), bot.senders)
    assert channels.apprise_count == 2
    chats = {"telegram-bot:chat/1001", "telegram-bot:chat/-2002"}

    def labels(tags: list[str]) -> set[str]:
        return {c.label.partition("?")[0] for c in channels.select(tags)}

    for _ in range(2):  # the second time from what ``select`` remembers
        assert labels(["phone"]) == chats
        assert labels(["admin"]) == {"json://127.0.0.1:9/a"}
        assert labels(["phone", "admin"]) == {"json://127.0.0.1:9/a"} | chats
        assert labels([]) == {"json://127.0.0.1:9/a", "json://127.0.0.1:9/b"}
        channels.select(["admin"]).clear()  # a caller's list is its own
    assert all(TOKEN not in c.label for c in channels.channels)
    await bot.close()


async def test_with_the_bot_an_apprise_config_is_optional(tmp_path: Path) -> None:
    missing = tmp_path / "apprise.yml"
    alone = load_settings(
        None,
        apprise_config=missing,
        telegram={"bot_token": TOKEN, "chat_ids": [1001], "tags": ["phone"]},
    )
    assert check_apprise_config(alone) == []
    bot = Telegram(alone.telegram)
    assert Channels.load(missing, url_secrets(), bot.senders).errors == []
    await bot.close()
    without = load_settings(None, apprise_config=missing)
    assert check_apprise_config(without) == ["apprise config not found"]
