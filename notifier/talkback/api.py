"""The talkback routes of the HTTP API (SPEC §9), registered on the daemon's application:

    GET    /api/v1/silences               current and future silences
    POST   /api/v1/silences               {"matchers": {...}, "duration": "1h" | "ends_at": TIME,
                                           "starts_at"?, "comment"?, "created_by"?} -> 201 {"id"}
    DELETE /api/v1/silences/{id}          expire it now
    POST   /api/v1/alerts/{rule}/ack      {"key"?, "by"?}
    POST   /api/v1/alerts/{rule}/snooze   {"key"?, "duration", "by"?}
    GET    /api/v1/notifications          recent ones with each channel's state (?limit=N)

Every request that changes something needs ``Authorization: Bearer TOKEN``; on a listen
address that is not loopback every request but ``/healthz``, ``/readyz`` and the action-link
pages (which carry their own token) needs it too. The token is compared in constant time and
never logged or echoed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from notifier.durations import parse_duration
from notifier.http import ControlAccess, control_access
from notifier.talkback.model import Invalid, Matchers, Silence, TalkbackError, clean_text
from notifier.talkback.notifications import DEFAULT_LIMIT, MAX_LIMIT, recent_notifications
from notifier.timestamps import parse_iso, rfc3339

if TYPE_CHECKING:
    from notifier.talkback.service import TalkbackService

__all__ = ["OPEN_PATHS", "TalkbackApi", "bearer_ok", "silence_json"]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})  # "/": the dashboard's page, no data
OPEN_PREFIXES = ("/a/", "/dashboard/static/")  # action links carry their own token
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_ok(authorization: str | None, token: str) -> bool:
    """``Authorization: Bearer TOKEN`` with the right token (constant-time)."""
    return bool(token) and control_access(None, authorization, token) is ControlAccess.ALLOWED


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="notifier"'} if status == 401 else None
    return web.Response(
        body=orjson.dumps({"error": message}),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def silence_json(silence: Silence) -> dict[str, Any]:
    doc = silence.as_json()
    for name in ("starts_at", "ends_at", "created_at"):
        doc[name] = rfc3339(doc[name])
    return doc


class TalkbackApi:
    """Registers the routes and the access middleware on an aiohttp application."""

    def __init__(self, service: TalkbackService, token: str, *, open_reads: bool) -> None:
        self._service = service
        self._token = token
        self._open_reads = open_reads  # loopback listen: reading needs no token

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self._access)
        app.router.add_get("/api/v1/silences", self._silences)
        app.router.add_post("/api/v1/silences", self._add_silence)
        app.router.add_delete("/api/v1/silences/{id}", self._expire)
        app.router.add_post("/api/v1/alerts/{rule}/ack", self._ack)
        app.router.add_post("/api/v1/alerts/{rule}/snooze", self._snooze)
        app.router.add_get("/api/v1/notifications", self._notifications)
        self._service.pages.install(app)

    @property
    def open_reads(self) -> bool:
        """Reading needs no token (a loopback listen address)."""
        return self._open_reads

    @web.middleware
    async def _access(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._open_reads or request.path in OPEN_PATHS or request.path.startswith(OPEN_PREFIXES):
            return await handler(request)
        if bearer_ok(request.headers.get("Authorization"), self._token):
            return await handler(request)
        return _error(
            401,
            "a valid bearer token is required on this listen address (http.token, or the "
            "api_token file in the state directory)",
        )

    def _refused(self, request: web.Request) -> web.Response | None:
        if bearer_ok(request.headers.get("Authorization"), self._token):
            return None
        return _error(
            401,
            "a valid bearer token is required to change anything (http.token, or the "
            "api_token file in the state directory)",
        )

    async def _silences(self, _request: web.Request) -> web.Response:
        return _json([silence_json(s) for s in self._service.talkback.silences()])

    async def _add_silence(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            body = await _body(request, {"matchers", "duration", "ends_at", "starts_at",
                                         "comment", "created_by"})  # fmt: skip
            talkback = self._service.talkback
            starts = _moment(body.get("starts_at"), "starts_at")
            begin = talkback.clock() if starts is None else starts
            ends = _moment(body.get("ends_at"), "ends_at")
            if "duration" in body:
                if ends is not None:
                    raise Invalid("give duration or ends_at, not both")
                ends = begin + _duration(body["duration"])
            if ends is None:
                raise Invalid('a silence needs duration (e.g. "1h") or ends_at (RFC 3339)')
            silence_id = talkback.add_silence(
                Matchers.parse(body.get("matchers")), starts_at=starts, ends_at=ends,
                comment=clean_text(body.get("comment"), "comment"),
                created_by=clean_text(body.get("created_by"), "created_by", "api"),
            )  # fmt: skip
        except TalkbackError as exc:
            return _error(exc.status, str(exc))
        return _json({"id": silence_id}, status=201)

    async def _expire(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            done = self._service.talkback.expire_silence(request.match_info["id"], "api")
        except TalkbackError as exc:
            return _error(exc.status, str(exc))
        return _json({"id": done.silence_id, "expired": True})

    async def _ack(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            body = await _body(request, {"key", "by"})
            done = self._service.talkback.ack(
                request.match_info["rule"], _key(body), clean_text(body.get("by"), "by", "api")
            )
        except TalkbackError as exc:
            return _error(exc.status, str(exc))
        return _json(done.as_json())

    async def _snooze(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            body = await _body(request, {"key", "duration", "by"})
            if "duration" not in body:
                raise Invalid('a snooze needs a duration, e.g. {"duration": "1h"}')
            done = self._service.talkback.snooze(
                request.match_info["rule"], _key(body), _duration(body["duration"]),
                clean_text(body.get("by"), "by", "api"),
            )  # fmt: skip
        except TalkbackError as exc:
            return _error(exc.status, str(exc))
        return _json({**done.as_json(), "until": rfc3339(done.until)})

    async def _notifications(self, request: web.Request) -> web.Response:
        raw = request.query.get("limit", str(DEFAULT_LIMIT))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            return _error(400, f"limit must be a number from 1 to {MAX_LIMIT}")
        rows = recent_notifications(self._service.store, self._service.channels(), int(raw))
        return _json(rows)


async def _body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid(f"unknown key(s) in body: {', '.join(unknown)}; allowed: "
                      + ", ".join(sorted(allowed)))  # fmt: skip
    return body


def _key(body: dict[str, Any]) -> str | None:
    key = body.get("key")
    if key is None:
        return None
    if not isinstance(key, str) or not key:
        raise Invalid("key must be a non-empty string")
    return key


def _duration(value: object) -> float:
    wrong = Invalid(f"duration {value!r} is not a duration like 30m, 1h, 1h30m, 2d")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise wrong
    try:
        return parse_duration(value)
    except (TypeError, ValueError):
        raise wrong from None


def _moment(value: object, what: str) -> float | None:
    if value is None:
        return None
    moment = parse_iso(value)
    if moment is None:
        raise Invalid(f"{what} must be an RFC 3339 time like 2025-01-31T23:00:00Z")
    return moment
