"""``Dashboard``: the live page of SPEC §10 on the daemon's HTTP API.

Routes::

    GET /                                   the page (server-rendered; its script keeps it live)
    GET /dashboard/stream?since=V&boot=B    server-sent events: what changed after version V
    GET /dashboard/static/{name}            the stylesheet, the script, the icon (package data)
    GET /dashboard/pairs/{key}/chart.svg    a pair's chart (?window=1h|auto&w=PX&tz=ZONE)
    GET /api/v1/pairs/{key}/history         the same as JSON (?window=…&points=N)

``key`` is the pair as the status document's ``pairs[].key`` writes it (``in|out|amount|1``).
Reading is open while ``open_reads`` (a loopback listen address); otherwise these routes need
the bearer token too, and the page asks for it before it shows anything. Actions are the
talkback routes of SPEC §9, called by the page with ``Authorization: Bearer``: no cookie, so
no cross-site request can make them.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from importlib import resources
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from prometheus_client import Gauge, Histogram

from notifier import __version__
from notifier.dashboard.chartdata import (
    DEFAULT_POINTS,
    MAX_POINTS,
    MIN_WINDOW,
    PairChart,
    parse_pair_key,
)
from notifier.dashboard.episodes import EpisodeLog
from notifier.dashboard.live import LiveHub
from notifier.dashboard.sections import DashboardView, Sections
from notifier.dashboard.svg import MAX_WIDTH, MIN_WIDTH, draw_chart
from notifier.durations import format_duration, parse_duration
from notifier.timestamps import rfc3339

__all__ = ["Dashboard"]

STATIC = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
TALKBACK = {  # SPEC §9 routes the page uses when the daemon has them
    "silences": "/api/v1/silences",
    "notifications": "/api/v1/notifications",
    "actions": "/api/v1/alerts/{rule}/ack",
}
PING_INTERVAL = 15.0  # a comment line keeps proxies and the connection limit content
SEND_GAP = 0.25  # at most four messages a second to one page, whatever changes
_ZONE = re.compile(r"[A-Za-z0-9_+\-/]{1,64}")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Dashboard:
    """The page, its live stream and the chart routes, over one ``DashboardView``."""

    def __init__(self, view: DashboardView, *, token: str = "", open_reads: bool = True) -> None:
        self._token = token
        self.open_reads = open_reads
        self.episodes = EpisodeLog()
        view.engine.observe_transitions(self.episodes.record)
        self.sections = Sections(view, self.episodes)
        self.env = Environment(
            loader=PackageLoader("notifier.dashboard", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["iso"] = rfc3339
        self.env.filters["duration"] = format_duration
        self.hub = LiveHub(self.sections, self.env, self.episodes)
        self._view = view
        self._task: asyncio.Task[None] | None = None
        registry = view.metrics.registry
        refresh = Histogram(
            "notifier_dashboard_refresh_seconds",
            "Time to look at the daemon once for open dashboard pages",
            registry=registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
        )
        self.hub.observe = refresh.observe
        pages = Gauge(
            "notifier_dashboard_pages", "Dashboard pages open (streams)", registry=registry
        )
        pages.set_function(lambda: self.hub.subscribers)

    def install(self, app: web.Application) -> None:
        """The routes, and the hub's task for as long as the application serves."""
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._stop)  # before aiohttp waits for open streams to end
        app.router.add_get("/", self._page)
        app.router.add_get("/dashboard/stream", self._stream)
        app.router.add_get("/dashboard/static/{name}", self._static)
        app.router.add_get("/dashboard/pairs/{key}/chart.svg", self._chart_svg)
        app.router.add_get("/api/v1/pairs/{key}/history", self._history)

    async def _start(self, _app: web.Application) -> None:
        self._task = asyncio.create_task(self.hub.run(), name="dashboard")

    async def _stop(self, _app: web.Application) -> None:
        self.hub.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _reads_allowed(self, request: web.Request) -> bool:
        if self.open_reads:
            return True
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        return (
            bool(self._token)
            and scheme.lower() == "bearer"
            and hmac.compare_digest(presented.strip().encode(), self._token.encode())
        )

    # -- handlers --------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        hub = self.hub
        routes = {resource.canonical for resource in request.app.router.resources()}
        if self.open_reads:
            hub.refresh()
        body = self.env.get_template("page.html").render(
            open_reads=self.open_reads,
            sections=hub.page_sections() if self.open_reads else {},
            initial=_script_json(
                {"prices": hub.values("prices"), "states": hub.values("states"), "meta": hub.meta()}
                if self.open_reads
                else {}
            ),
            version=hub.version if self.open_reads else -1,
            boot=hub.boot,
            asset=__version__,
            max_window=self._view.history.max_window,
            features={name: path in routes for name, path in TALKBACK.items()},
        )
        return web.Response(
            text=body, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS
        )

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = STATIC.get(name)
        if kind is None:
            raise web.HTTPNotFound()
        data = resources.files("notifier.dashboard").joinpath("static", name).read_bytes()
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return web.Response(body=data, content_type=kind, headers=headers)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if not self._reads_allowed(request):
            return _refused()
        try:
            since = int(request.query.get("since", "-1"))
        except ValueError:
            since = -1
        boot = request.query.get("boot")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            }
        )
        await response.prepare(request)
        hub = self.hub
        hub.subscribers += 1
        try:
            if hub.refreshed_at < time.time() - 1.0:
                hub.refresh()  # the first page after a quiet spell: no wait for the tick
            await response.write(b"retry: 2000\n\n")
            while not hub.closed:
                if hub.version > since or boot != hub.boot:
                    message = hub.delta(since, boot)
                    await response.write(hub.encode(message))
                    since, boot = message["v"], hub.boot
                    await asyncio.sleep(SEND_GAP)
                    continue
                try:
                    await asyncio.wait_for(hub.changes(since), PING_INTERVAL)
                except TimeoutError:
                    await response.write(b": ping\n\n")
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away
        finally:
            hub.subscribers -= 1
        return response

    async def _chart_svg(self, request: web.Request) -> web.Response:
        chart = self._chart(request, svg=True)
        if isinstance(chart, web.Response):
            return chart
        try:
            width = int(request.query.get("w", "600"))
        except ValueError:
            width = 600
        svg = draw_chart(chart, max(MIN_WIDTH, min(MAX_WIDTH, width)), _zone(request))
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        return web.Response(text=svg, content_type="image/svg+xml", headers=headers)

    async def _history(self, request: web.Request) -> web.Response:
        chart = self._chart(request, svg=False)
        if isinstance(chart, web.Response):
            return chart
        return _json(chart.as_json())

    def _chart(self, request: web.Request, *, svg: bool) -> PairChart | web.Response:
        """The chart a request asks for, or the answer that refuses it."""
        if not self._reads_allowed(request):
            return _refused()
        pair = parse_pair_key(request.match_info["key"])
        if pair is None:
            return _bad("pair key must be IN|OUT|AMOUNT|1 (or 0), as in status pairs[].key")
        try:
            window, points = _window_and_points(request, svg=svg)
        except ValueError as exc:
            return _bad(str(exc))
        chart = self.sections.chart(pair, window, points)
        if chart is None:
            return _json({"error": "no rule watches or reads this pair"}, 404)
        return chart


def _window_and_points(request: web.Request, *, svg: bool) -> tuple[float | None, int]:
    """``window`` (None: the whole history) and how many points; ValueError says what is
    wrong. The SVG gets about one point per two pixels of ``w``."""
    raw_window = request.query.get("window", "auto")
    window: float | None = None
    if raw_window != "auto":
        try:
            window = max(MIN_WINDOW, parse_duration(raw_window))
        except (TypeError, ValueError):
            raise ValueError(
                f"window {raw_window!r} is not a duration like 15m, 1h, 1d or auto"
            ) from None
    wanted = request.query.get("w", "600") if svg else request.query.get("points", "")
    if wanted and not wanted.isdigit():
        raise ValueError("points and w must be whole numbers")
    if svg:
        return window, max(20, min(MAX_POINTS, int(wanted) // 2))
    points = int(wanted or DEFAULT_POINTS)
    if not 2 <= points <= MAX_POINTS:
        raise ValueError(f"points must be from 2 to {MAX_POINTS}")
    return window, points


def _zone(request: web.Request) -> ZoneInfo:
    name = request.query.get("tz", "UTC")
    if _ZONE.fullmatch(name) and ".." not in name:
        try:
            return ZoneInfo(name)
        except (ValueError, OSError, KeyError):
            pass
    return ZoneInfo("UTC")


def _script_json(data: object) -> Markup:
    """JSON to put inside a ``<script type="application/json">``: no ``</script>`` can end it."""
    return Markup(orjson.dumps(data).decode().replace("<", "\\u003c"))  # noqa: S704 - escaped


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _bad(message: str) -> web.Response:
    return _json({"error": message}, 400)


def _refused() -> web.Response:
    return web.Response(
        body=orjson.dumps({"error": "a valid bearer token is required on this listen address"}),
        status=401,
        content_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="notifier"'},
    )
