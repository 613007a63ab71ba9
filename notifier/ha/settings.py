"""The config keys of SPEC §11: ``store`` and ``[ha] takeover``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from notifier.durations import parse_duration

__all__ = ["HaSettings", "StoreSetting", "check_store"]


def check_store(value: str) -> str:
    """``"sqlite"`` or ``postgresql://USER@HOST:PORT/DB``; a password in the URL is refused
    (it would show wherever the config does): it comes from ``$CREDENTIALS_DIRECTORY/
    store_password`` or ``PGPASSWORD``."""
    if value == "sqlite":
        return value
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError('must be "sqlite" or a "postgresql://USER@HOST:PORT/DB" URL')
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid PostgreSQL URL ({exc})") from None
    if parts.password is not None or "password=" in parts.query:
        raise ValueError(
            "the URL may not carry a password: put it in $CREDENTIALS_DIRECTORY/store_password "
            "or PGPASSWORD"
        )
    if not parts.path.strip("/"):
        raise ValueError("the URL names no database (postgresql://USER@HOST:PORT/DB)")
    return value


StoreSetting = Annotated[str, AfterValidator(check_store)]


class HaSettings(BaseModel):
    """``takeover``: how long the group may be without an active member after the active
    dies, freezes or loses the store. The lease lasts half of it; the rest is the standby's
    detection and start-up."""

    model_config = ConfigDict(extra="forbid")

    takeover: Annotated[float, BeforeValidator(parse_duration)] = Field(default=10.0, ge=2.0)

    @property
    def lease(self) -> float:
        return self.takeover / 2

    @property
    def renew_every(self) -> float:
        return self.lease / 4

    @property
    def poll_every(self) -> float:
        return self.takeover / 20

    @property
    def valid_for(self) -> float:
        """How long the active trusts its lease after the start of a renewal that succeeded:
        less than the lease, so it stops before any standby may take over."""
        return self.lease * 0.8
