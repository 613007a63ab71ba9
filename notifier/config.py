"""Configuration: one TOML file, ``NOTIFIER_*`` environment overrides, systemd credentials.

Precedence, highest first: environment, ``$CREDENTIALS_DIRECTORY`` files (secrets only),
the TOML file, built-in defaults.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from notifier.durations import parse_duration
from notifier.events import validate_intent_id
from notifier.ha.settings import HaSettings, StoreSetting
from notifier.talkback.settings import QuietHoursSettings
from notifier.tokens import TokenTable

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ConfigError",
    "FusionSettings",
    "HttpSettings",
    "IntentSettings",
    "LimitSettings",
    "QuoteSettings",
    "Settings",
    "TelegramSettings",
    "TokenSettings",
    "load_settings",
]

DEFAULT_CONFIG_PATH = Path("/etc/notifier/notifier.toml")
SECRET_FILES = {
    "fusion": "fusion_api_key",
    "quotes": "quotes_api_key",
    "intents": "intents_api_key",
    "telegram": "telegram_bot_token",
}
SECRET_KEYS = {"telegram": "bot_token"}  # the key a section's secret file fills; else api_key

Duration = Annotated[float, BeforeValidator(parse_duration)]
IntentId = Annotated[str, AfterValidator(validate_intent_id)]  # it becomes a URL path segment


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpSettings(_Section):
    listen: str = "127.0.0.1:9310"
    token: SecretStr = SecretStr("")
    # Host names (besides localhost, loopback and the listen host) the API answers to.
    allowed_hosts: list[str] = Field(default_factory=list)
    public_url: str = ""  # where users reach the daemon (a reverse proxy): action links


class FusionSettings(_Section):
    enabled: bool = True
    url: str = "wss://api.1inch.com/fusion/ws"
    version: str = "v2.0"
    chains: list[int] = Field(default_factory=lambda: [1])
    rest_url: str = "https://api.1inch.com/fusion"
    api_key: SecretStr = SecretStr("")
    heartbeat: Duration = 20.0
    order_cache_size: int = Field(default=10_000, ge=100)


class QuoteSettings(_Section):
    enabled: bool = True
    url: str = "wss://api.argyros.xyz/api/v1/stream"
    api_key: SecretStr = SecretStr("")
    heartbeat: Duration = 20.0
    max_pairs_per_connection: int = Field(default=256, ge=1, le=256)


class IntentSettings(_Section):
    enabled: bool = True
    url: str = "https://defiapi.changelly.com"
    api_key: SecretStr = SecretStr("")
    poll_interval: Duration = 10.0
    track: list[IntentId] = Field(default_factory=list)


class TokenSettings(_Section):
    address: str
    decimals: int = Field(ge=0, le=36)


class RateLimitSettings(_Section):
    """Per-tag budget: at most ``count`` messages per ``per``; the rest fold into a digest."""

    count: int = Field(default=20, ge=1)
    per: Duration = 60.0


class DeliverySettings(_Section):
    timeout: Duration = 30.0  # per send, in each channel's lane
    concurrency: int = Field(default=2, ge=1, le=64)  # sends at a time, per channel
    retry_for: Duration = 86400.0
    backoff_cap: Duration = 300.0
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    rate_limits: dict[str, RateLimitSettings] = Field(default_factory=dict)


class HistorySettings(_Section):
    max_window: Duration = Field(default=7 * 86400.0, ge=60.0, le=366 * 86400.0)  # SPEC §8


class TelegramSettings(_Section):
    """The two-way bot (SPEC §9); it runs when ``chat_ids`` names at least one chat."""

    bot_token: SecretStr = SecretStr("")
    chat_ids: list[int] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    api_url: str = "https://api.telegram.org"

    @model_validator(mode="after")
    def _token_when_chats(self) -> TelegramSettings:
        if self.chat_ids and not self.bot_token.get_secret_value().strip():
            raise ValueError(
                "bot_token is empty (or put it in $CREDENTIALS_DIRECTORY/telegram_bot_token)"
            )
        if not self.api_url.startswith(("https://", "http://")):
            raise ValueError("api_url must be an http(s) URL")
        return self


class LimitSettings(_Section):
    """What one evaluation of a rule's expression or one render of its template may spend
    (SPEC §12); past either, the rule is disabled until its file changes."""

    eval_cpu: Duration = Field(default=0.05, ge=0.001, le=1.0)  # CPU time, e.g. "50ms"
    eval_memory: ByteSize = Field(default=ByteSize(32_000_000), ge=1_000_000)  # e.g. "32MB"


_config_path: ContextVar[Path | None] = ContextVar("notifier_config_path", default=None)


class _TomlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is not None:
            try:
                self._data = tomllib.loads(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
            except UnicodeDecodeError as exc:
                raise ConfigError(
                    f"{path}: not UTF-8 text (byte {exc.start}): is it the right file?"
                ) from exc
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: {exc}") from exc

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class _CredentialsSource(PydanticBaseSettingsSource):
    """Reads ``fusion_api_key`` & co. from systemd's ``$CREDENTIALS_DIRECTORY``."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            return {}
        found: dict[str, Any] = {}
        for section, filename in SECRET_FILES.items():
            path = Path(directory) / filename
            value = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
            if value:  # the unit's SetCredential= fallback is empty: keep the TOML key then
                found[section] = {SECRET_KEYS.get(section, "api_key"): value}
        return found


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NOTIFIER_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    rules_dir: Path = Path("rules")
    rules_max_bytes: int = Field(default=1_000_000, ge=1)  # a larger rule file is not read
    state_dir: Path = Path("state")
    store: StoreSetting = "sqlite"  # or postgresql://USER@HOST:PORT/DB: an HA group (SPEC §11)
    apprise_config: Path = Path("apprise.yml")
    errors_to: list[str] = Field(default_factory=lambda: ["admin"])
    log_level: str = "INFO"

    http: HttpSettings = Field(default_factory=HttpSettings)
    fusion: FusionSettings = Field(default_factory=FusionSettings)
    quotes: QuoteSettings = Field(default_factory=QuoteSettings)
    intents: IntentSettings = Field(default_factory=IntentSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    ha: HaSettings = Field(default_factory=HaSettings)
    tokens: dict[str, TokenSettings] = Field(default_factory=dict)
    quiet_hours: list[QuietHoursSettings] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _CredentialsSource(settings_cls),
            _TomlSource(settings_cls, _config_path.get()),
        )

    @property
    def effective_state_dir(self) -> Path:
        """systemd's ``$STATE_DIRECTORY`` wins over the configured path."""
        state = os.environ.get("STATE_DIRECTORY")
        return Path(state.split(":")[0]) if state else self.state_dir

    def token_table(self) -> TokenTable:
        return TokenTable.with_overrides(
            {symbol: (t.address, t.decimals) for symbol, t in self.tokens.items()}
        )


def resolve_config_path(explicit: Path | None) -> Path | None:
    """``-c FILE``, else ``$NOTIFIER_CONFIG``, else the system file when it exists."""
    if explicit is not None:
        return explicit
    env = os.environ.get("NOTIFIER_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load settings; raise ``ConfigError`` with every bad key named, never a secret value."""
    config_path = resolve_config_path(path)
    token = _config_path.set(config_path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        where = f"{config_path}: " if config_path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        raise ConfigError(f"{where}invalid configuration: {problems}") from None
    finally:
        _config_path.reset(token)
