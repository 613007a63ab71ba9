"""What the Fusion WS and REST endpoints share: the Bearer check and the error body."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from notifier.simulator.wire import json_response

__all__ = ["deny", "error_body"]


def deny(request: web.Request, key: str) -> web.Response | None:
    """``401`` unless the request carries ``Authorization: Bearer <key>``."""
    if request.headers.get("Authorization", "") != f"Bearer {key}":
        return json_response(error_body(401, "Unauthorized"), 401)
    return None


def error_body(status: int, error: str, message: str | None = None) -> dict[str, Any]:
    """1inch-style error body; the exact shape is not documented (UPSTREAMS §4)."""
    return {"statusCode": status, "error": error, "message": message or error}
