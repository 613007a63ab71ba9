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
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import logging
import re
import unicodedata
from typing import Any, Protocol

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from notifier.config import ConfigError, HttpSettings
from notifier.metrics import Metrics

__all__ = [
    "LABEL_MAX_CHARS",
    "ControlAccess",
    "DaemonView",
    "HttpApi",
    "HttpError",
    "base_url",
    "control_access",
    "is_loopback",
    "parse_listen",
    "validate_intent_id",
    "validate_label",
]

log = logging.getLogger(__name__)

INTENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
LABEL_MAX_CHARS = 200
MAX_BODY_BYTES = 4096


class HttpError(Exception):
    """The HTTP API cannot listen (address in use, no permission, unknown host)."""


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


def validate_intent_id(intent_id: str) -> str:
    """Return ``intent_id`` or raise ValueError naming the allowed form."""
    if INTENT_ID_RE.fullmatch(intent_id):
        return intent_id
    shown = intent_id if len(intent_id) <= 64 else intent_id[:64] + "…"
    raise ValueError(
        f"invalid intent id {shown!r}: use 1 to 128 characters from A-Z a-z 0-9 _ -, "
        "starting with a letter or digit"
    )


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


def parse_listen(listen: str) -> tuple[str | None, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (every interface) → (host or None, port)."""
    host, sep, port_text = listen.strip().rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(
            f"http.listen: {listen!r} is not host:port (e.g. 127.0.0.1:9310, [::1]:9310)"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"http.listen: write an IPv6 address in brackets, e.g. [{host}]:9310")
    return host or None, int(port_text)


def base_url(host: str | None, port: int) -> str:
    """The URL a local client uses to reach a server bound to ``host:port``."""
    if host in {None, "", "0.0.0.0"}:
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    assert host is not None
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"error": message}, status=status, headers=headers)


class HttpApi:
    """Serves the routes above on ``http.listen``; an empty address disables it."""

    def __init__(self, view: DaemonView, settings: HttpSettings) -> None:
        self._view = view
        self._listen = settings.listen.strip()
        self._token = settings.token.get_secret_value()
        self._address = parse_listen(self._listen) if self._listen else None
        self._runner: web.AppRunner | None = None
        self._bound_url: str | None = None

    @property
    def bound_url(self) -> str | None:
        """Where clients reach the running API (a wildcard bind maps to loopback), else None."""
        return self._bound_url

    def application(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/v1/status", self._status)
        app.router.add_get("/api/v1/alerts", self._alerts)
        app.router.add_put("/api/v1/intents/{id}", self._track)
        app.router.add_delete("/api/v1/intents/{id}", self._untrack)
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
        runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise HttpError(f"http.listen {self._listen}: cannot listen: {exc}") from exc
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self._bound_url = base_url(bound_host, bound_port)
        log.info("HTTP API listening on %s", self._bound_url)

    async def stop(self) -> None:
        """Stop serving; requests in flight get two seconds to finish."""
        runner, self._runner, self._bound_url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, down = self._view.feeds_ready()
        return _json({"ready": ready, "down": down}, status=200 if ready else 503)

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
        created = self._view.track_intent(intent_id, label)
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
        if not self._view.untrack_intent(intent_id):
            return _error(404, f"intent {intent_id} is not tracked")
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
