"""What the Fusion WS and REST endpoints share: the Bearer check, the error body, and the
REST gate (auth, scripted ``503`` faults, the request log) every REST endpoint passes."""

from __future__ import annotations

from collections import deque
from typing import Any

from aiohttp import web

from notifier.simulator.wire import json_response

__all__ = ["RestGate", "deny", "error_body"]


def deny(request: web.Request, key: str) -> web.Response | None:
    """``401`` unless the request carries ``Authorization: Bearer <key>``."""
    if request.headers.get("Authorization", "") != f"Bearer {key}":
        return json_response(error_body(401, "Unauthorized"), 401)
    return None


def error_body(status: int, error: str, message: str | None = None) -> dict[str, Any]:
    """1inch-style error body; the exact shape is not documented (UPSTREAMS §4)."""
    return {"statusCode": status, "error": error, "message": message or error}


class RestGate:
    """Bearer auth, then the scripted ``503`` faults of ``failures``; records each request."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.failures = 0
        self.requests: deque[str] = deque(maxlen=10_000)  # path and query, newest last

    def check(self, request: web.Request) -> web.Response | None:
        """None when the request may proceed, else the answer to give it."""
        denied = deny(request, self.key)
        if denied is not None:
            return denied
        self.requests.append(request.path_qs)
        if self.failures > 0:
            self.failures -= 1
            return json_response(error_body(503, "Service Unavailable"), 503)
        return None
