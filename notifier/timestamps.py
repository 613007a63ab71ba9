"""Timestamps as the status JSON and the API show them: RFC 3339, UTC."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["rfc3339"]


def rfc3339(timestamp: float | None) -> str | None:
    """Unix seconds as ``2025-01-31T12:00:00Z`` (None stays None)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
