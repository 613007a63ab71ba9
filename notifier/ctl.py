"""Client side of ``notifier status``, ``track`` and ``untrack``: talks to the daemon's HTTP API
(``statusreport.render_status`` turns the status document into the report).

The status document (``GET /api/v1/status``; ``StatusDoc`` below) is::

    {
      "version": "0.1.0",
      "uptime_s": 3600.5,
      "ready": true,                       # every enabled feed is up
      "feeds": [{"name": "quote", "up": true, "detail": "connected, 12 pairs",
                 "connections": 1, "reconnects": 0,
                 "last_event_at": "2025-01-31T12:00:00Z"}],          # or null
      "rules": {"loaded": 12,
                "files": [{"path": "/etc/notifier/rules/sol.yaml",
                           "rules": ["sol-above-200", "sol-below-150", "eth-above-4k"],
                           "error_count": 1, "loaded": true,
                           "errors": ["/etc/notifier/rules/sol.yaml:4:7: unknown key 'whn'"]}]},
      "alerts": [{"rule": "sol-above-200", "key": "SOL/USDC", "state": "firing",
                  "since": "2025-01-31T11:55:00Z", "due": null, "value": 201.3},
                 {"rule": "sol-below-150", "key": "SOL/USDC", "state": "pending",
                  "since": "2025-01-31T11:59:50Z", "due": "2025-01-31T12:00:20Z",
                  "value": 149.2}],                  # value: any JSON or null
      "alert_counts": {"firing": 1, "pending": 1},
      "outbox": {"pending": 0, "sent": 42, "dead": 0, "failed": 1},
      "intents": [{"id": "fe5601fb-…", "label": "rent", "status": "Deposited"}]  # optional
    }

Times are RFC 3339 UTC strings (``rfc3339()``). ``errors`` may be shortened; ``error_count`` is
the full number. A file with errors keeps its last good version running (``loaded``); a file
that never loaded cleanly runs nothing. ``GET /api/v1/alerts?state=pending`` (or ``firing``)
returns one kind of alert.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any, NotRequired, TypedDict

import orjson

from notifier.config import ConfigError
from notifier.events import validate_intent_id
from notifier.listen import base_url, parse_listen

__all__ = [
    "AlertDoc",
    "ControlError",
    "FeedDoc",
    "OutboxDoc",
    "RuleFileDoc",
    "RulesDoc",
    "StatusDoc",
    "client_url",
    "fetch_status",
    "request",
    "track",
    "untrack",
]

DEFAULT_TIMEOUT = 5.0


class FeedDoc(TypedDict):
    name: str
    up: bool
    detail: str
    connections: int
    reconnects: int
    last_event_at: str | None


class RuleFileDoc(TypedDict):
    path: str
    rules: list[str]  # ids of the rules running from this file (older daemons: a count)
    error_count: int
    errors: list[str]


class RulesDoc(TypedDict):
    loaded: int
    files: list[RuleFileDoc]


class AlertDoc(TypedDict):
    rule: str
    key: str
    state: str  # "pending" | "firing"
    since: str | None  # pending: when the condition began; firing: when it fired
    due: NotRequired[str | None]  # pending: when it fires unless the condition clears
    value: Any
    why: NotRequired[str | None]  # the values that decided it (SPEC §8)


class PairDoc(TypedDict):
    pair: str  # SOL/USDC
    key: str  # mint in|mint out|amount|exact-in (1/0)
    price: float | None
    history_since: str | None  # the first quote kept
    windows: list[str]  # the windows rules read, as durations


class OutboxDoc(TypedDict):
    pending: int
    sent: int
    dead: int
    failed: int


class IntentDoc(TypedDict):
    id: str
    label: str | None
    status: str | None


class StatusDoc(TypedDict):
    version: str
    uptime_s: float
    ready: bool
    feeds: list[FeedDoc]
    rules: RulesDoc
    alerts: list[AlertDoc]
    pairs: NotRequired[list[PairDoc]]
    outbox: OutboxDoc
    intents: NotRequired[list[IntentDoc]]


class ControlError(Exception):
    """The daemon could not be reached or refused the request; the message says which."""


def client_url(listen: str) -> str:
    """The base URL for the daemon configured with ``http.listen = listen``."""
    if not listen.strip():
        raise ControlError("the daemon's HTTP API is disabled (http.listen is empty)")
    try:
        return base_url(*parse_listen(listen))
    except ConfigError as exc:
        raise ControlError(str(exc)) from None


def fetch_status(
    base: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Any]:
    """``GET /api/v1/status`` of the daemon at ``base``."""
    body = _call("GET", base, "/api/v1/status", token=token, timeout=timeout)
    if not isinstance(body, dict):
        raise ControlError(f"{base} answered with something that is not a status document")
    return body


def track(
    base: str,
    intent_id: str,
    label: str | None = None,
    token: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Ask the daemon to poll ``intent_id``; return a one-line confirmation."""
    path = _intent_path(intent_id)
    payload = orjson.dumps({"label": label}) if label is not None else None
    body = _call("PUT", base, path, token=token, payload=payload, timeout=timeout)
    shown_label = f" ({body['label']})" if isinstance(body, dict) and body.get("label") else ""
    if isinstance(body, dict) and body.get("created") is False:
        return f"intent {intent_id}{shown_label} was already tracked"
    return f"now tracking intent {intent_id}{shown_label}"


def untrack(
    base: str, intent_id: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
) -> str:
    """Ask the daemon to stop polling ``intent_id``; return a one-line confirmation."""
    _call("DELETE", base, _intent_path(intent_id), token=token, timeout=timeout)
    return f"stopped tracking intent {intent_id}"


def request(
    method: str, base: str, path: str, token: str | None = None, body: object = None
) -> Any:
    """One JSON request to the daemon's API (``ControlError`` when refused or unreachable)."""
    payload = None if body is None else orjson.dumps(body)
    return _call(method, base, path, token=token, payload=payload, timeout=DEFAULT_TIMEOUT)


def _intent_path(intent_id: str) -> str:
    try:
        return f"/api/v1/intents/{validate_intent_id(intent_id)}"
    except ValueError as exc:
        raise ControlError(str(exc)) from None


# Proxies from the environment must not see requests meant for the local daemon (or its token).
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _call(
    method: str,
    base: str,
    path: str,
    *,
    token: str | None = None,
    payload: bytes | None = None,
    timeout: float,
) -> Any:
    base = base.rstrip("/")
    if urllib.parse.urlsplit(base).scheme not in {"http", "https"}:
        raise ControlError(f"{base!r} is not an http:// URL")
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if payload is not None:
        headers["Content-Type"] = "application/json"
    url = base + path  # http(s) only, checked above
    request = urllib.request.Request(url, payload, headers, method=method)  # noqa: S310
    try:
        with _opener.open(request, timeout=timeout) as response:
            raw: bytes = response.read()
    except urllib.error.HTTPError as exc:
        raise ControlError(_refusal(exc)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ControlError(
            f"cannot reach the daemon ({reason}); is notifier running? tried {base}"
        ) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ControlError(f"{base}{path} did not answer with JSON; is that notifier?") from None


def _refusal(exc: urllib.error.HTTPError) -> str:
    try:
        message = orjson.loads(exc.read()).get("error")
    except (orjson.JSONDecodeError, AttributeError, OSError):
        message = None
    return f"the daemon refused: {message or exc.reason} (HTTP {exc.code})"
