"""The daemon's local HTTP API: health, readiness, Prometheus metrics, status and control.

Routes::

    GET    /healthz                 200 "ok" while the event loop serves requests
    GET    /readyz                  200 / 503 {"ready": bool, "down": [feed or store problem, ...]}
    GET    /metrics                 Prometheus text exposition
    GET    /api/v1/status           the status document (see ``notifier.ctl``)
    GET    /api/v1/alerts           the "alerts" list of the status document; ?state=firing|pending
    PUT    /api/v1/intents/{id}     track an intent; optional body {"label": "..."}
    DELETE /api/v1/intents/{id}     stop tracking it

The control routes (PUT/DELETE) accept only loopback clients when ``http.token`` is empty;
when it is set, every control request must carry ``Authorization: Bearer <token>``, loopback
included. A reverse proxy on the same host makes every client look local: set a token then.
The daemon always passes one (``http.token``, else ``{state_dir}/api_token``; SPEC §9), and
``extensions`` (the talkback routes) add their own routes and access rules.

Against a web page in the user's browser (DNS rebinding), a request whose ``Host`` is not a
name of this server gets 421, and a control request from a foreign ``Origin`` gets 403 (see
``HostCheck``). Against exhaustion, at most ``MAX_CONNECTIONS`` connections are open: at the
limit the least recently active one is closed to make room; a connection idle for
``IDLE_TIMEOUT`` seconds, or that never completes a request, is closed.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import ipaddress
import logging
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import orjson
from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST

from notifier.config import HttpSettings
from notifier.events import validate_intent_id
from notifier.httpguard import ConnectionLimit, HostCheck
from notifier.listen import base_url, parse_listen
from notifier.metrics import Metrics

__all__ = [
    "IDLE_TIMEOUT",
    "LABEL_MAX_CHARS",
    "MAX_CONNECTIONS",
    "ControlAccess",
    "DaemonView",
    "HttpApi",
    "HttpError",
    "NotActiveError",
    "control_access",
    "is_loopback",
    "validate_label",
]

log = logging.getLogger(__name__)

LABEL_MAX_CHARS = 200
MAX_BODY_BYTES = 4096
MAX_CONNECTIONS = 128  # far above what status, scrapes and the CLI need; far below LimitNOFILE
IDLE_TIMEOUT = 15.0  # seconds a connection may sit without a request (also before its first)
BACKLOG = 128
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HttpError(Exception):
    """The HTTP API cannot listen (address in use, no permission, unknown host)."""


class NotActiveError(Exception):
    """This member of an HA group is a standby: it changes nothing (the active one does)."""


class DaemonView(Protocol):
    """What the HTTP API needs from the daemon. Called on the event loop: never block."""

    @property
    def metrics(self) -> Metrics: ...

    def status(self) -> dict[str, Any]:
        """The status document, JSON-ready (shape in ``notifier.ctl``)."""
        ...

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        """Firing and pending alerts (or only those in ``state``), as in the status
        document's ``alerts``."""
        ...

    def feeds_ready(self) -> tuple[bool, list[str]]:
        """(every enabled feed is up, names of the feeds that are down)."""
        ...

    def track_intent(self, intent_id: str, label: str | None) -> bool:
        """Start polling an intent; True when newly tracked, False when it already was."""
        ...

    def untrack_intent(self, intent_id: str) -> bool:
        """Stop polling an intent; False when it was not tracked."""
        ...


class ControlAccess(enum.Enum):
    """Outcome of the access check for a control request, valued as its HTTP status."""

    ALLOWED = 200
    UNAUTHORIZED = 401
    FORBIDDEN = 403


def is_loopback(remote: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for anything unparsable."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def control_access(remote: str | None, authorization: str | None, token: str) -> ControlAccess:
    """Decide a control request from its peer address, Authorization header and the token."""
    if token:
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            return ControlAccess.ALLOWED
        return ControlAccess.UNAUTHORIZED
    return ControlAccess.ALLOWED if is_loopback(remote) else ControlAccess.FORBIDDEN


def validate_label(label: object) -> str | None:
    """A label is a short single-line string; empty means none. Raise TypeError/ValueError."""
    if label is None:
        return None
    if not isinstance(label, str):
        raise TypeError("label must be a string")
    label = label.strip()
    if len(label) > LABEL_MAX_CHARS:
        raise ValueError(f"label is longer than {LABEL_MAX_CHARS} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp", "Cs"} for ch in label):
        raise ValueError("label must not contain control characters or line breaks")
    return label or None


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"error": message}, status=status, headers=headers)


class HttpApi:
    """Serves the routes above on ``http.listen``; an empty address disables it."""

    def __init__(
        self,
        view: DaemonView,
        settings: HttpSettings,
        extensions: Sequence[Callable[[web.Application], None]] = (),
    ) -> None:
        self._view = view
        self._extensions = list(extensions)  # more routes and middlewares (talkback)
        self._listen = settings.listen.strip()
        self._token = settings.token.get_secret_value()
        self._address = parse_listen(self._listen) if self._listen else None
        self.hosts = HostCheck.from_settings(settings, self._address[0] if self._address else None)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self.connections: ConnectionLimit | None = None
        self._bound_url: str | None = None

    @property
    def bound_url(self) -> str | None:
        """Where clients reach the running API (a wildcard bind maps to loopback), else None."""
        return self._bound_url

    def application(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._guard])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/v1/status", self._status)
        app.router.add_get("/api/v1/alerts", self._alerts)
        app.router.add_put("/api/v1/intents/{id}", self._track)
        app.router.add_delete("/api/v1/intents/{id}", self._untrack)
        for extend in self._extensions:
            extend(app)
        return app

    async def start(self) -> None:
        """Bind and serve; raise ``HttpError`` when the address cannot be bound."""
        if self._address is None:
            log.info("HTTP API disabled (http.listen is empty)")
            return
        if self._runner is not None:
            raise RuntimeError("HttpApi already started")
        host, port = self._address
        # No access log: a Prometheus scrape every few seconds would drown the journal.
        runner = web.AppRunner(
            self.application(),
            access_log=None,
            shutdown_timeout=2.0,
            keepalive_timeout=IDLE_TIMEOUT,  # aiohttp applies it from the connection's start
        )
        await runner.setup()
        assert runner.server is not None
        limit = ConnectionLimit(runner.server, MAX_CONNECTIONS)
        try:
            server = await asyncio.get_running_loop().create_server(
                limit, host, port, backlog=BACKLOG, reuse_address=True
            )
        except OSError as exc:
            await runner.cleanup()
            raise HttpError(f"http.listen {self._listen}: cannot listen: {exc}") from exc
        self._runner, self._server, self.connections = runner, server, limit
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        self._bound_url = base_url(bound_host, bound_port)
        log.info("HTTP API listening on %s", self._bound_url)

    async def stop(self) -> None:
        """Stop serving; requests in flight get two seconds to finish."""
        runner, self._runner, self._bound_url = self._runner, None, None
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Refuse a foreign ``Host`` (421) and a control request from a foreign ``Origin``
        (403) before any route runs."""
        if not self.hosts.allows_host(request.headers.get(hdrs.HOST)):
            return _error(
                421, "unknown Host; add it to http.allowed_hosts if this server is reached so"
            )
        if request.method not in SAFE_METHODS and not self.hosts.allows_origin(
            request.headers.get(hdrs.ORIGIN)
        ):
            return _error(403, "requests from web pages of other origins are refused")
        return await handler(request)

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, down = self._view.feeds_ready()
        body: dict[str, Any] = {"ready": ready, "down": down}
        if (role := getattr(self._view, "ha_role", None)) is not None:  # an HA member (§11)
            body["role"] = role
        return _json(body, status=200 if ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self._view.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _status(self, _request: web.Request) -> web.Response:
        return _json(self._view.status())

    async def _alerts(self, request: web.Request) -> web.Response:
        state = request.query.get("state")
        if state not in (None, "firing", "pending"):
            return _error(400, "state must be 'firing' or 'pending'")
        return _json(self._view.alerts(state))

    def _refuse(self, request: web.Request) -> web.Response | None:
        access = control_access(request.remote, request.headers.get("Authorization"), self._token)
        if access is ControlAccess.UNAUTHORIZED:
            return _error(
                401,
                "a valid bearer token is required (http.token)",
                headers={"WWW-Authenticate": 'Bearer realm="notifier"'},
            )
        if access is ControlAccess.FORBIDDEN:
            return _error(
                403,
                "control requests are accepted from loopback only; "
                "set http.token to allow remote clients",
            )
        return None

    async def _track(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        try:
            intent_id = validate_intent_id(request.match_info["id"])
            label = validate_label(await self._body_label(request))
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        try:
            created = self._view.track_intent(intent_id, label)
        except NotActiveError as exc:
            return _json({"error": str(exc), "role": "standby"}, status=503)
        body = {"id": intent_id, "tracked": True, "created": created, "label": label}
        return _json(body, status=201 if created else 200)

    async def _untrack(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        try:
            intent_id = validate_intent_id(request.match_info["id"])
        except ValueError as exc:
            return _error(400, str(exc))
        try:
            if not self._view.untrack_intent(intent_id):
                return _error(404, f"intent {intent_id} is not tracked")
        except NotActiveError as exc:
            return _json({"error": str(exc), "role": "standby"}, status=503)
        return _json({"id": intent_id, "tracked": False})

    @staticmethod
    async def _body_label(request: web.Request) -> object:
        raw = await request.read()
        if not raw.strip():
            return None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise TypeError('body must be a JSON object like {"label": "..."}')
        unknown = sorted(set(body) - {"label"})
        if unknown:
            raise ValueError(f"unknown key(s) in body: {', '.join(unknown)}; only label is allowed")
        return body.get("label")
