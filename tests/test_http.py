"""The HTTP API on a real loopback port, its access rules, and the ctl client against it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from notifier import ctl, timestamps
from notifier.config import ConfigError, HttpSettings
from notifier.http import (
    ControlAccess,
    HttpApi,
    HttpError,
    control_access,
    is_loopback,
)
from notifier.listen import base_url, parse_listen
from notifier.metrics import Metrics
from notifier.statusreport import render_status

TOKEN = "t0ken-for-tests-only"
INTENT = "fe5601fb-60f2-4cb0-8a67-c55bd3640411"

STATUS: dict[str, Any] = {
    "version": "0.1.0",
    "uptime_s": 3600.0,
    "ready": False,
    "feeds": [
        {
            "name": "order",
            "up": True,
            "detail": "connected, chains 1",
            "connections": 1,
            "reconnects": 0,
            "last_event_at": "2025-01-31T11:59:48Z",
        },
        {
            "name": "quote",
            "up": False,
            "detail": "connection refused\n(retrying)",
            "connections": 0,
            "reconnects": 3,
            "last_event_at": None,
        },
    ],
    "rules": {
        "loaded": 4,
        "files": [
            {"path": "rules/sol.yaml", "rules": 4, "error_count": 0, "errors": []},
            {
                "path": "rules/broken.yaml",
                "rules": 0,
                "error_count": 3,
                "errors": [
                    "rules/broken.yaml:3:5: unknown key 'whn'",
                    "rules/broken.yaml:9:7: invalid duration '5x'",
                ],
            },
        ],
    },
    "alerts": [
        {
            "rule": "sol-above-200",
            "key": "SOL/USDC",
            "state": "firing",
            "since": "2025-01-31T11:55:00Z",
            "value": 201.345678,
            "why": "price 201.346 > 200",
        },
        {
            "rule": "sol-below-150",
            "key": "SOL/USDC",
            "state": "pending",
            "since": "2025-01-31T11:59:50Z",
            "due": "2025-01-31T12:00:20Z",
            "value": {"price": 149.2},
        },
    ],
    "pairs": [
        {
            "pair": "SOL/USDC",
            "key": "So11|uSd2|1000000000|1",
            "price": 201.345678,
            "history_since": "2025-01-31T10:00:00Z",
            "windows": ["15m", "1h"],
        }
    ],
    "outbox": {"pending": 2, "sent": 42, "dead": 1, "failed": 5},
    "intents": [{"id": INTENT, "label": "rent", "status": "Deposited"}],
}
NOW = 1738324800.0  # 2025-01-31T12:00:00Z


class Daemon:
    """A small DaemonView: the daemon's side of the HTTP boundary."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.metrics.feed_up.labels(feed="order").set(1)
        self.metrics.rules_loaded.set(4)
        self.down: list[str] = []
        self.tracked: dict[str, str | None] = {}

    def status(self) -> dict[str, Any]:
        return STATUS

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = STATUS["alerts"]
        return [a for a in alerts if state is None or a["state"] == state]

    def feeds_ready(self) -> tuple[bool, list[str]]:
        return not self.down, list(self.down)

    def track_intent(self, intent_id: str, label: str | None) -> bool:
        created = intent_id not in self.tracked
        self.tracked[intent_id] = label
        return created

    def untrack_intent(self, intent_id: str) -> bool:
        return self.tracked.pop(intent_id, "missing") != "missing"


@pytest.fixture
def daemon() -> Daemon:
    return Daemon()


async def running(daemon: Daemon, token: str = "") -> HttpApi:
    api = HttpApi(daemon, HttpSettings(listen="127.0.0.1:0", token=SecretStr(token)))
    await api.start()
    return api


@pytest.fixture
async def api(daemon: Daemon) -> AsyncIterator[HttpApi]:
    api = await running(daemon)
    yield api
    await api.stop()


@pytest.fixture
async def token_api(daemon: Daemon) -> AsyncIterator[HttpApi]:
    api = await running(daemon, TOKEN)
    yield api
    await api.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def url(api: HttpApi, path: str) -> str:
    assert api.bound_url is not None
    return api.bound_url + path


async def test_healthz_answers_ok(api: HttpApi, http: aiohttp.ClientSession) -> None:
    """Liveness needs nothing but a running event loop."""
    async with http.get(url(api, "/healthz")) as response:
        assert response.status == 200
        assert await response.text() == "ok\n"


async def test_readyz_reports_feeds_down(
    api: HttpApi, daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    """Ready only when every enabled feed is up; otherwise 503 names the feeds down."""
    async with http.get(url(api, "/readyz")) as response:
        assert response.status == 200
        assert await response.json() == {"ready": True, "down": []}
    daemon.down = ["quote", "intent"]
    async with http.get(url(api, "/readyz")) as response:
        assert response.status == 503
        assert await response.json() == {"ready": False, "down": ["quote", "intent"]}


async def test_metrics_are_prometheus_text(api: HttpApi, http: aiohttp.ClientSession) -> None:
    """/metrics parses with the Prometheus parser and has the exposition content type."""
    async with http.get(url(api, "/metrics")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await response.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["notifier_rules_loaded"].samples[0].value == 4
    [feed_up] = families["notifier_feed_up"].samples
    assert (feed_up.labels, feed_up.value) == ({"feed": "order"}, 1)


async def test_status_and_alerts_are_the_daemons_json(
    api: HttpApi, http: aiohttp.ClientSession
) -> None:
    """The status document and the alerts list pass through unchanged."""
    async with http.get(url(api, "/api/v1/status")) as response:
        assert response.content_type == "application/json"
        assert await response.json() == STATUS
    async with http.get(url(api, "/api/v1/alerts")) as response:
        assert await response.json() == STATUS["alerts"]
    async with http.get(url(api, "/api/v1/alerts?state=pending")) as response:
        assert [a["rule"] for a in await response.json()] == ["sol-below-150"]


async def test_track_then_untrack_an_intent(
    api: HttpApi, daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    """PUT creates (201) or updates (200); DELETE removes (200), then 404."""
    path = url(api, f"/api/v1/intents/{INTENT}")
    async with http.put(path) as response:
        assert response.status == 201
        assert await response.json() == {
            "id": INTENT,
            "tracked": True,
            "created": True,
            "label": None,
        }
    async with http.put(path, json={"label": "  rent  "}) as response:
        assert response.status == 200
        assert (await response.json())["label"] == "rent"
    assert daemon.tracked == {INTENT: "rent"}
    async with http.delete(path) as response:
        assert response.status == 200
        assert await response.json() == {"id": INTENT, "tracked": False}
    async with http.delete(path) as response:
        assert response.status == 404
        assert await response.json() == {"error": f"intent {INTENT} is not tracked"}


@pytest.mark.parametrize(
    ("intent_id", "body", "message"),
    [
        ("bad%20id", None, "invalid intent id 'bad id'"),
        ("-leading", None, "starting with a letter or digit"),
        ("x" * 129, None, "1 to 128 characters"),
        (INTENT, b"{not json", "body is not JSON"),
        (INTENT, b'["rent"]', "body must be a JSON object"),
        (INTENT, b'{"label": "a", "colour": "red"}', "unknown key(s) in body: colour"),
        (INTENT, b'{"label": 7}', "label must be a string"),
        (INTENT, b'{"label": "two\\nlines"}', "must not contain control characters"),
        (INTENT, b'{"label": "' + b"x" * 201 + b'"}', "longer than 200 characters"),
    ],
)
async def test_bad_track_requests_get_400_with_the_reason(
    api: HttpApi,
    daemon: Daemon,
    http: aiohttp.ClientSession,
    *,
    intent_id: str,
    body: bytes | None,
    message: str,
) -> None:
    """Invalid ids and bodies are refused with a message that says what is wrong."""
    async with http.put(url(api, f"/api/v1/intents/{intent_id}"), data=body) as response:
        assert response.status == 400
        assert message in (await response.json())["error"]
    assert daemon.tracked == {}


async def test_token_is_required_from_every_client_once_set(
    token_api: HttpApi, daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    """With http.token set, loopback too needs the bearer token; the token is never echoed."""
    path = url(token_api, f"/api/v1/intents/{INTENT}")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        async with http.put(path, headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert TOKEN not in await response.text()
    assert daemon.tracked == {}
    async with http.put(path, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 201
        assert TOKEN not in await response.text()
    async with http.get(url(token_api, "/api/v1/status")) as response:
        assert response.status == 200  # reads stay open


@pytest.mark.parametrize(
    ("remote", "authorization", "token", "expected"),
    [
        ("127.0.0.1", None, "", ControlAccess.ALLOWED),
        ("::1", None, "", ControlAccess.ALLOWED),
        ("::ffff:127.0.0.1", None, "", ControlAccess.ALLOWED),
        ("192.0.2.10", None, "", ControlAccess.FORBIDDEN),
        ("2001:db8::1", None, "", ControlAccess.FORBIDDEN),
        ("::ffff:192.0.2.10", None, "", ControlAccess.FORBIDDEN),
        (None, None, "", ControlAccess.FORBIDDEN),
        ("192.0.2.10", f"Bearer {TOKEN}", TOKEN, ControlAccess.ALLOWED),
        ("192.0.2.10", f"bearer  {TOKEN} ", TOKEN, ControlAccess.ALLOWED),
        ("192.0.2.10", "Bearer nope", TOKEN, ControlAccess.UNAUTHORIZED),
        ("192.0.2.10", None, TOKEN, ControlAccess.UNAUTHORIZED),
        ("127.0.0.1", None, TOKEN, ControlAccess.UNAUTHORIZED),
    ],
)
def test_control_access_decision(
    remote: str | None, authorization: str | None, token: str, expected: ControlAccess
) -> None:
    """Loopback only without a token; with one, the token decides for everyone."""
    assert control_access(remote, authorization, token) is expected


def test_is_loopback_rejects_garbage() -> None:
    """Anything that is not an IP address is not loopback."""
    assert not is_loopback("localhost")
    assert not is_loopback("")
    assert is_loopback("127.8.9.10")


@pytest.mark.parametrize(
    ("listen", "parsed", "client"),
    [
        ("127.0.0.1:9310", ("127.0.0.1", 9310), "http://127.0.0.1:9310"),
        ("[::1]:9310", ("::1", 9310), "http://[::1]:9310"),
        (":9310", (None, 9310), "http://127.0.0.1:9310"),
        ("0.0.0.0:80", ("0.0.0.0", 80), "http://127.0.0.1:80"),
        ("[::]:9310", ("::", 9310), "http://[::1]:9310"),
        ("localhost:0", ("localhost", 0), "http://localhost:0"),
    ],
)
def test_listen_addresses(listen: str, parsed: tuple[str | None, int], client: str) -> None:
    """http.listen parses to a bind address; the client URL maps wildcards to loopback."""
    assert parse_listen(listen) == parsed
    assert base_url(*parsed) == client
    assert ctl.client_url(listen) == client


@pytest.mark.parametrize("listen", ["9310", "127.0.0.1", "::1:9310", "host:99999", "h:x"])
def test_bad_listen_address_is_a_config_error(listen: str) -> None:
    """A malformed http.listen fails at construction, naming the key."""
    with pytest.raises(ConfigError, match=r"http\.listen"):
        HttpApi(Daemon(), HttpSettings(listen=listen))


async def test_empty_listen_disables_the_api(daemon: Daemon) -> None:
    """``listen = ""`` starts nothing and has no URL."""
    api = HttpApi(daemon, HttpSettings(listen=""))
    await api.start()
    assert api.bound_url is None
    await api.stop()
    with pytest.raises(ctl.ControlError, match="disabled"):
        ctl.client_url("")


async def test_port_in_use_raises_http_error(api: HttpApi, daemon: Daemon) -> None:
    """A second server on the same port fails with a typed error naming the address."""
    assert api.bound_url is not None
    port = api.bound_url.rsplit(":", 1)[1]
    other = HttpApi(daemon, HttpSettings(listen=f"127.0.0.1:{port}"))
    with pytest.raises(HttpError, match=f"127.0.0.1:{port}: cannot listen"):
        await other.start()


# The ctl client (sync urllib) runs in a thread so the server keeps serving on the loop.


async def test_ctl_fetch_status(api: HttpApi) -> None:
    """fetch_status returns the daemon's status document."""
    assert api.bound_url is not None
    assert await asyncio.to_thread(ctl.fetch_status, api.bound_url) == STATUS


async def test_ctl_track_and_untrack(token_api: HttpApi, daemon: Daemon) -> None:
    """track/untrack send the token and report what happened in one line."""
    base = token_api.bound_url
    assert base is not None
    first = await asyncio.to_thread(ctl.track, base, INTENT, "rent", TOKEN)
    assert first == f"now tracking intent {INTENT} (rent)"
    again = await asyncio.to_thread(ctl.track, base, INTENT, None, TOKEN)
    assert again == f"intent {INTENT} was already tracked"
    assert daemon.tracked == {INTENT: None}
    gone = await asyncio.to_thread(ctl.untrack, base, INTENT, TOKEN)
    assert gone == f"stopped tracking intent {INTENT}"
    with pytest.raises(ctl.ControlError, match=r"is not tracked \(HTTP 404\)"):
        await asyncio.to_thread(ctl.untrack, base, INTENT, TOKEN)
    with pytest.raises(ctl.ControlError, match=r"HTTP 401") as refused:
        await asyncio.to_thread(ctl.track, base, INTENT, None, "wrong-token")
    assert "wrong-token" not in str(refused.value)


def test_ctl_rejects_bad_intent_id_before_calling() -> None:
    """An invalid id fails locally with the same message the daemon would give."""
    with pytest.raises(ctl.ControlError, match="invalid intent id"):
        ctl.track("http://127.0.0.1:1", "no/slashes")


def test_ctl_unreachable_daemon_says_where_it_tried() -> None:
    """Nothing listening: a clear ControlError naming the URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with pytest.raises(ctl.ControlError) as error:
        ctl.fetch_status(base, timeout=2)
    assert f"is notifier running? tried {base}" in str(error.value)


def test_render_status() -> None:
    """The status report shows feeds, rule errors with locations, alerts and the outbox."""
    assert render_status(STATUS, now=NOW) == (
        "notifier 0.1.0, up 1h00m, NOT READY (down: quote)\n"
        "\n"
        "FEEDS\n"
        "  NAME   STATE  CONN  RECONNECTS  LAST EVENT  DETAIL\n"
        "  order  up     1     0           12s ago     connected, chains 1\n"
        "  quote  DOWN   0     3           never       connection refused (retrying)\n"
        "\n"
        "RULES: 4 loaded from 2 file(s), 1 failing\n"
        "  rules/sol.yaml: 4 rule(s), ok\n"
        "  rules/broken.yaml: 0 rule(s), 3 error(s), last good version kept\n"
        "    rules/broken.yaml:3:5: unknown key 'whn'\n"
        "    rules/broken.yaml:9:7: invalid duration '5x'\n"
        "    … and 1 more\n"
        "\n"
        "FIRING: 1\n"
        "  RULE           KEY       SINCE      VALUE    WHY\n"
        "  sol-above-200  SOL/USDC  5m00s ago  201.346  price 201.346 > 200\n"
        "\n"
        "PENDING: 1\n"
        "  RULE           KEY       SINCE    FIRES   VALUE\n"
        "  sol-below-150  SOL/USDC  10s ago  in 20s  price=149.2\n"
        "\n"
        "PAIRS: 1 watched\n"
        "  PAIR      PRICE    HISTORY    WINDOWS\n"
        "  SOL/USDC  201.346  2h00m ago  15m, 1h\n"
        "\n"
        f"INTENTS: 1 tracked\n"
        "  ID                                    STATUS     LABEL\n"
        f"  {INTENT}  Deposited  rent\n"
        "\n"
        "OUTBOX: 2 pending, 42 sent, 5 failed, 1 dead\n"
    )


def test_render_status_tolerates_an_empty_document() -> None:
    """A partial document (older daemon) still renders instead of raising."""
    text = render_status({}, now=NOW)
    assert text.startswith("notifier ?, up ?, NOT READY\n")
    assert "FIRING: none\n\nPENDING: none\n" in text
    assert text.endswith("OUTBOX: 0 pending, 0 sent, 0 failed, 0 dead\n")


def test_rfc3339() -> None:
    """The status document's timestamps are UTC with a Z."""
    assert timestamps.rfc3339(NOW) == "2025-01-31T12:00:00Z"
    assert timestamps.rfc3339(None) is None


def test_render_status_says_a_file_never_loaded_is_not_loaded() -> None:
    """A broken file without a last good version is "not loaded", not "last good version kept"."""
    files = [{**f, "loaded": f["path"] != "rules/broken.yaml"} for f in STATUS["rules"]["files"]]
    text = render_status({**STATUS, "rules": {**STATUS["rules"], "files": files}}, now=NOW)
    assert "  rules/broken.yaml: 0 rule(s), 3 error(s), not loaded\n" in text
    assert "last good version kept" not in text


def test_render_status_says_the_rules_dir_is_gone() -> None:
    """A rules dir gone at runtime is shown under RULES, with what still runs."""
    rules = {**STATUS["rules"], "dir_error": "/etc/notifier/rules: rules_dir: no such directory"}
    text = render_status({**STATUS, "rules": rules}, now=NOW)
    assert (
        "  /etc/notifier/rules: rules_dir: no such directory: the rules loaded last keep running\n"
        in text
    )


async def test_a_standby_refuses_intent_changes_with_503_naming_its_role(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """An HA standby changes nothing: track and untrack answer 503 with its role, not 500."""
    from notifier.config import Settings
    from notifier.ha.standby import StandbyView

    (tmp_path / "rules").mkdir()
    settings = Settings(rules_dir=tmp_path / "rules", state_dir=tmp_path / "state")
    view = StandbyView(settings, Metrics(), lambda: {"holder": "other"})
    api = HttpApi(view, HttpSettings(listen="127.0.0.1:0", token=SecretStr(TOKEN)))
    await api.start()
    try:
        url = f"{api.bound_url}/api/v1/intents/{INTENT}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for method in ("PUT", "DELETE"):
            async with http.request(method, url, headers=headers) as response:
                assert response.status == 503
                body = await response.json()
                assert body["role"] == "standby"
                assert "active member" in body["error"]
    finally:
        await api.stop()
