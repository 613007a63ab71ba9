"""Timestamps as the status JSON and the API show them: RFC 3339, UTC."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_iso", "rfc3339"]


def rfc3339(timestamp: float | None) -> str | None:
    """Unix seconds as ``2025-01-31T12:00:00Z`` (None stays None)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: object) -> float | None:
    """Unix seconds from an ISO 8601 / RFC 3339 string (no zone means UTC); None when it is
    not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
