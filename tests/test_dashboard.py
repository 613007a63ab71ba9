"""The dashboard without a browser: chart data from the history tiers, thresholds read from
conditions, the episode log, the SVG, and the real daemon's page, stream and chart routes."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from notifier.daemon import running
from notifier.dashboard.chartdata import (
    ChartRule,
    PairChart,
    Point,
    Threshold,
    downsample,
    pair_key,
    parse_pair_key,
    thresholds,
)
from notifier.dashboard.episodes import EpisodeLog
from notifier.dashboard.svg import draw_chart
from notifier.history.series import PairSeries
from notifier.simulator import SIM_KEYS, Simulator
from tests.receivers import HttpReceiver, wait_until
from tests.support import SOL_ABOVE_200, SOL_USDC, daemon_settings, set_price

SOL_KEY = quote(pair_key(SOL_USDC), safe="")
TOKEN = "dashboard-test-token-0123456789"
SOL_STATE_KEY = "SOL/USDC:1000000000"


# -- chart data --------------------------------------------------------------------------------


def test_downsample_keeps_lows_highs_and_the_last_price_of_each_bin() -> None:
    """An hour of quotes, one a second, drawn in 60 bins: each bin's low, high and last are
    those of its minute (give or take a coarse bucket at its edge), and the last point is the
    price in force now."""
    series = PairSeries(7 * 86400)
    start = 1_700_000_000.0
    for second in range(3600):
        series.record(start + second, 100.0 + math.sin(second / 100) * 10 + (second % 7))
    end = start + 3600
    series.advance(end)
    points = downsample(series, start, end, 60)
    assert 55 <= len(points) <= 61
    for point in points[:-1]:
        minute = [
            100.0 + math.sin(s / 100) * 10 + (s % 7)
            for s in range(round(point.t - start) - 35, round(point.t - start) + 34)  # coarse edges
            if 0 <= s < 3600
        ]
        assert min(minute) - 1e-9 <= point.low <= point.last <= point.high <= max(minute) + 1e-9
    assert points[-1] == Point(end, series.price, series.price, series.price)  # type: ignore[arg-type]


def test_downsample_reaches_back_through_the_coarse_tiers() -> None:
    """A week-old pair drawn over seven days: points cover the whole week, oldest first."""
    series = PairSeries(7 * 86400)
    start = 1_700_000_000.0
    for hour in range(7 * 24):
        series.record(start + hour * 3600, float(hour))
    end = start + 7 * 86400
    series.advance(end)
    points = downsample(series, start, end, 300)
    assert len(points) > 100
    assert points[0].t < start + 86400
    assert [p.t for p in points] == sorted(p.t for p in points)
    assert points[0].low == pytest.approx(0.0, abs=2.0)
    assert max(p.high for p in points) == 167.0


def test_downsample_of_an_empty_series_is_empty() -> None:
    assert downsample(PairSeries(3600), 0.0, 100.0, 50) == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("price > 200", [Threshold(">", 200.0)]),
        ("price < 198", [Threshold("<", 198.0)]),
        ("200 <= price", [Threshold(">=", 200.0)]),
        ("price > -1.5 and pct_change('1h') < -5", [Threshold(">", -1.5)]),
        ("190 < price < 210", [Threshold(">", 190.0), Threshold("<", 210.0)]),
        ("pct_change('1h') < -5", []),
        ("price > avg_price('1h')", []),
        (None, []),
    ],
)
def test_thresholds_are_the_price_comparisons_with_numbers(
    source: str | None, found: list[Threshold]
) -> None:
    assert thresholds(source) == found


def test_pair_keys_round_trip_and_refuse_garbage() -> None:
    assert parse_pair_key(pair_key(SOL_USDC)) == SOL_USDC
    for bad in ("", "a|b|c", "a|b|c|2", "a||1|1", "a|b|c|1|x"):
        assert parse_pair_key(bad) is None


def test_episode_log_opens_closes_and_reconciles() -> None:
    """Transitions open and close episodes; a firing alert without one (restored at start)
    gets one from its since; an alert gone without a resolve ends at the reconcile."""
    log = EpisodeLog(limit=3)
    log.record("r", "k", "firing", 10.0)
    log.record("r", "k", "firing", 11.0)  # already open: no second episode
    log.record("r", "k", "resolved", 20.0)
    assert [(e.start, e.end) for e in log.of("r", "k", 0.0)] == [(10.0, 20.0)]
    log.reconcile([{"rule": "r", "key": "k", "state": "firing", "since": 30.0}], now=31.0)
    log.reconcile([], now=40.0)
    assert [(e.start, e.end) for e in log.of("r", "k", 15.0)] == [(10.0, 20.0), (30.0, 40.0)]
    for at in (50.0, 60.0, 70.0):
        log.record("r", "k", "firing", at)
        log.record("r", "k", "resolved", at + 1)
    assert len(log.of("r", "k", 0.0)) == 3  # bounded
    log.forget(["other"])
    assert log.of("r", "k", 0.0) == []


def test_the_svg_draws_thresholds_the_until_band_episodes_and_escapes_names() -> None:
    """Lines for when and until, a band between them, shaded episodes, and a rule id that
    looks like markup comes out as text."""
    points = [Point(100.0 + i, 195.0 + i, 196.0 + i, 195.5 + i) for i in range(10)]
    rule = ChartRule(
        "<b>evil</b>", "firing", [Threshold(">", 200.0)], [Threshold("<", 198.0)], [(104.0, None)]
    )
    far = ChartRule("far-away", "inactive", [Threshold(">", 1e6)], [])
    chart = PairChart("SOL/USDC", "k", 100.0, 110.0, points, [rule, far])
    from zoneinfo import ZoneInfo

    svg = draw_chart(chart, 600, ZoneInfo("Asia/Kolkata"))
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert 'class="when r0"' in svg
    assert 'class="until r0"' in svg
    assert 'class="band r0"' in svg
    assert 'class="episode r0"' in svg
    assert "<b>" not in svg
    assert "&lt;b&gt;evil&lt;/b&gt;" in svg
    assert (
        "↑ far-away &gt; 1e+06" in svg or "↑ far-away &gt; 1000000" in svg
    )  # labelled at the edge
    assert 'class="price"' in svg


# -- the real daemon ---------------------------------------------------------------------------

BROKEN = (
    "rules:\n  - id: broken\n    on: quote\n    pair: {in: SOL, out: USDC, amount: 1}\n    whn: x\n"
)


async def _sse(response: aiohttp.ClientResponse) -> Any:
    """The next data message of a server-sent event stream."""
    buffer = b""
    while b"\n\n" not in buffer or b"data:" not in buffer.split(b"\n\n")[0]:
        if b"\n\n" in buffer and b"data:" not in buffer.split(b"\n\n")[0]:
            buffer = buffer.split(b"\n\n", 1)[1]
            continue
        chunk = await response.content.readany()
        assert chunk, "the stream ended"
        buffer += chunk
    block = buffer.split(b"\n\n")[0]
    data = b"".join(line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:"))
    return orjson.loads(data)


async def test_the_page_renders_every_section_and_hides_secrets(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, http: aiohttp.ClientSession
) -> None:
    """GET / answers one HTML page with every section, the rule file errors located, a
    viewport tag and a strict content policy; no token or API key appears anywhere in it."""
    settings = daemon_settings(
        tmp_path, sim, receiver, SOL_ABOVE_200, http={"listen": "127.0.0.1:0", "token": TOKEN}
    )
    (settings.rules_dir / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    async with running(settings) as daemon:
        await set_price(sim, daemon, 195)
        assert daemon.http is not None
        assert daemon.http.bound_url is not None
        async with http.get(daemon.http.bound_url + "/") as response:
            assert response.status == 200
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            page = await response.text()
        for section in ("feeds", "alerts", "pairs", "notifications", "silences", "rules"):
            assert f'<section id="{section}"' in page
        assert '<meta name="viewport"' in page
        assert "broken.yaml:5:5: unknown key &#39;whn&#39;" in page
        assert "sol-above-200" in page
        assert 'data-pair="' in page
        for secret in (TOKEN, SIM_KEYS.fusion, SIM_KEYS.quotes, SIM_KEYS.intents):
            assert secret not in page
        for asset in ("dashboard.js", "dashboard.css", "favicon.svg"):
            async with http.get(f"{daemon.http.bound_url}/dashboard/static/{asset}") as response:
                assert response.status == 200
        async with http.get(f"{daemon.http.bound_url}/dashboard/static/../routes.py") as response:
            assert response.status == 404


async def test_the_stream_sends_what_changed_and_the_chart_routes_answer(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, http: aiohttp.ClientSession
) -> None:
    """A stream opened at the page's version gets the crossing as a delta: the alerts
    section with the rule and its why, the new price and the rule's state; the history route
    returns points, the rule's thresholds and its episode; the SVG route draws them."""
    settings = daemon_settings(tmp_path, sim, receiver, SOL_ABOVE_200)
    async with running(settings) as daemon:
        await set_price(sim, daemon, 195)
        assert daemon.http is not None
        assert daemon.http.bound_url is not None
        base = daemon.http.bound_url
        hub = daemon.dashboard.hub
        hub.refresh()
        since, boot = hub.version, hub.boot
        async with http.get(f"{base}/dashboard/stream?since={since}&boot={boot}") as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            await set_price(sim, daemon, 201)
            message = await asyncio.wait_for(_sse(stream), 20)
            while "sol-above-200" not in message["html"].get("alerts", ""):
                message = await asyncio.wait_for(_sse(stream), 20)
            async with http.get(f"{base}/metrics") as response:
                metrics = await response.text()
            assert "notifier_dashboard_pages 1.0" in metrics
            assert "notifier_dashboard_refresh_seconds_count" in metrics
        assert message["full"] is False
        assert "price 201 &gt; 200" in message["html"]["alerts"]
        assert hub.values("states")["sol-above-200"] == [[SOL_STATE_KEY, "firing"]]
        assert hub.values("prices") == {"0": 201.0}  # keyed by the pair's place on the page

        async with http.get(f"{base}/api/v1/pairs/{SOL_KEY}/history?window=5m") as response:
            assert response.status == 200
            history = await response.json()
        assert history["pair"] == "SOL/USDC"
        assert history["window"] == "5m"
        assert history["points"][-1][3] == 201.0
        (rule,) = history["rules"]
        assert rule["id"] == "sol-above-200"
        assert rule["state"] == "firing"
        assert rule["when"] == [[">", 200.0]]
        assert rule["until"] == [["<", 198.0]]
        assert len(rule["episodes"]) == 1
        assert rule["episodes"][0][1] is None

        chart = f"{base}/dashboard/pairs/{SOL_KEY}/chart.svg?w=500&tz=Europe/Berlin"
        async with http.get(chart) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("image/svg+xml")
            svg = await response.text()
        assert 'class="episode r0"' in svg
        assert 'class="when r0"' in svg

        await set_price(sim, daemon, 197)  # resolves: the episode ends
        episodes = daemon.dashboard.episodes
        await wait_until(lambda: episodes.of("sol-above-200", SOL_STATE_KEY, 0)[-1].end is not None)

        for url, status in (
            (f"{base}/api/v1/pairs/nonsense/history", 400),
            (f"{base}/api/v1/pairs/{SOL_KEY}/history?window=soon", 400),
            (f"{base}/api/v1/pairs/{SOL_KEY}/history?points=1", 400),
            (f"{base}/api/v1/pairs/{quote('a|b|1|1', safe='')}/history", 404),
        ):
            async with http.get(url) as response:
                assert response.status == status, url
                assert "error" in await response.json()


async def test_beyond_loopback_the_page_loads_but_shows_nothing_without_the_token(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, http: aiohttp.ClientSession
) -> None:
    """On a listen address beyond loopback the page and its assets load (a browser cannot
    send a bearer header when it navigates) but carry no data; the stream and chart routes
    answer 401 without the token and 200 with it."""
    settings = daemon_settings(
        tmp_path, sim, receiver, SOL_ABOVE_200, http={"listen": "0.0.0.0:0", "token": TOKEN}
    )
    async with running(settings) as daemon:
        assert daemon.http is not None
        assert daemon.http.bound_url is not None
        base = daemon.http.bound_url
        assert daemon.dashboard.open_reads is False
        async with http.get(base + "/") as response:
            assert response.status == 200
            page = await response.text()
        assert "sol-above-200" not in page
        assert "enter the API token to see" in page
        async with http.get(base + "/dashboard/static/dashboard.js") as response:
            assert response.status == 200
        for path in (f"/api/v1/pairs/{SOL_KEY}/history", "/dashboard/stream", "/api/v1/status"):
            async with http.get(base + path) as response:
                assert response.status == 401, path
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(f"{base}/api/v1/pairs/{SOL_KEY}/history", headers=bearer) as response:
            assert response.status == 200
