"""The ``[[quiet_hours]]`` config section (SPEC §9). Imports nothing of notifier: the
configuration imports it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DAYS", "QuietHoursSettings", "system_zone"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def system_zone() -> ZoneInfo:
    """The system's zone with its DST rules: ``$TZ``, else ``/etc/localtime``, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    try:
        with localtime.open("rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError):
        return ZoneInfo("UTC")


class QuietHoursSettings(BaseModel):
    """One window: messages for ``tags`` inside it are held (except ``except_severity``) and
    summed up in one digest per tag when it ends. ``days`` are the days a window starts on."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tags: list[str] = Field(min_length=1)
    from_: str = Field(alias="from")
    to: str
    days: list[Day] = Field(default_factory=lambda: list(DAYS))  # type: ignore[arg-type]
    timezone: str = ""  # IANA name; "" = the system's
    except_severity: list[Literal["info", "success", "warning", "failure"]] = Field(
        default_factory=list
    )

    @field_validator("from_", "to")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not _HHMM.match(value.strip()):
            raise ValueError(f"{value!r} is not a time of day as HH:MM (00:00 to 23:59)")
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value.strip():
            try:
                ZoneInfo(value.strip())
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}; use an IANA name") from None
        return value.strip()

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone) if self.timezone else system_zone()

    @property
    def starts(self) -> tuple[int, int]:
        hours, minutes = self.from_.split(":")
        return int(hours), int(minutes)

    @property
    def ends(self) -> tuple[int, int]:
        hours, minutes = self.to.split(":")
        return int(hours), int(minutes)
