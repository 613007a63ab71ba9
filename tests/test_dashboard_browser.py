"""The dashboard in a real browser: Debian's Chromium driven by Playwright against the real
daemon and simulator. Every section shows, an alert appears live after a crossing, the chart
draws thresholds and the firing episode, the page asks nothing of any host but the daemon, has
no horizontal scroll at 390 px and no console error, and the token unlocks the actions of
SPEC §9 (acknowledge, silences).

The first test also writes ``docs/dashboard.png``, the README's screenshot.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from notifier.config import Settings
from notifier.daemon import Daemon, running
from notifier.history.book import HistoryBook
from notifier.history.persist import HistoryStore
from notifier.rules.compiled import QuoteRule
from notifier.simulator import Simulator
from notifier.store import Store
from tests.receivers import HttpReceiver
from tests.support import (
    ONE_SOL,
    SOL,
    SOL_ABOVE_200,
    SOL_USDC,
    USDC,
    compile_text,
    daemon_settings,
    set_price,
)

try:
    from playwright.async_api import (
        Browser,
        ConsoleMessage,
        FloatRect,
        Page,
        Route,
        async_playwright,
    )
except ImportError:  # pragma: no cover - the test extra has it
    async_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.system

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "dashboard.png"
TOKEN = "browser-test-token-abcdefghijkl"
TIMEOUT = 20_000  # ms: generous, the machine is shared
RULES = (
    SOL_ABOVE_200
    + """\
  - id: sol-above-195-for-1h
    description: SOL above 195 for an hour
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 195
    for: 1h
    severity: warning
  - id: sol-drop-5pct-1h
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    when: pct_change('1h') < -5
"""
)
BROKEN = """\
rules:
  - id: typo
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    whn: x
"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if async_playwright is None:
        pytest.skip("playwright is not installed (pip install playwright; no browser download)")
    if not _chromium_present():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


def _chromium_present() -> bool:
    return CHROMIUM.exists()


class Watched:
    """A page whose requests are checked (loopback only) and whose console is kept."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.host = urlsplit(base).netloc
        self.requests: list[str] = []
        self.foreign: list[str] = []
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    async def start(self) -> None:
        await self.page.route("**/*", self._route)

    async def _route(self, route: Route) -> None:
        url = route.request.url
        self.requests.append(url)
        if urlsplit(url).netloc == self.host or url.startswith("data:"):
            await route.continue_()
        else:
            self.foreign.append(url)
            await route.abort()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in {"error", "warning"}:
            self.problems.append(f"console {message.type}: {message.text}")


async def _open(browser: Browser, daemon: Daemon, **context: Any) -> Watched:
    assert daemon.http is not None
    base = daemon.http.bound_url
    assert base is not None
    page = await (await browser.new_context(**context)).new_page()
    watched = Watched(page, base)
    await watched.start()
    await page.goto(base + "/")
    await page.wait_for_selector("#live.ok", timeout=TIMEOUT)
    return watched


async def test_the_page_shows_every_section_live_on_loopback_only(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, browser: Browser
) -> None:
    """Feeds, rules with the file error located, a pending alert with when it fires, the
    chart with its threshold lines; a crossing makes the firing alert and its why appear
    without a reload, and the chart shades the episode. Read-only without a token."""
    settings = daemon_settings(tmp_path, sim, receiver, RULES)
    (settings.rules_dir / "typo.yaml").write_text(BROKEN, encoding="utf-8")
    _seed_history(settings, minutes=45)
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 193_000_000)
    async with running(settings) as daemon:
        await set_price(sim, daemon, 196)  # pending above 195 (for 1h)
        watched = await _open(browser, daemon, viewport={"width": 1280, "height": 1000})
        page = watched.page

        feeds = page.locator('[data-section="feeds"]')
        for name in ("quote", "order", "intent"):
            await feeds.locator(f'[data-feed="{name}"]').wait_for(timeout=TIMEOUT)
        assert "up" in await feeds.locator('[data-feed="quote"]').inner_text()
        rules = page.locator('[data-section="rules"]')
        assert "typo.yaml:5:5: unknown key 'whn'" in await rules.inner_text()
        assert "sol-above-200" in await rules.inner_text()
        pending = page.locator('.alert.pending[data-alert-rule="sol-above-195-for-1h"]')
        await pending.wait_for(timeout=TIMEOUT)
        assert "fires at" in await pending.inner_text()
        assert "Read-only" in await page.locator("#mode").inner_text()
        assert await page.locator('[data-action="snooze"]').first.is_disabled()

        chart = page.locator("[data-chart] svg.chart").first
        await page.locator("#pairs").scroll_into_view_if_needed()
        await chart.wait_for(timeout=TIMEOUT)
        assert await chart.locator("line.when").count() >= 1
        assert await chart.locator("line.until").count() >= 1

        await set_price(sim, daemon, 201)
        firing = page.locator('.alert.firing[data-alert-rule="sol-above-200"]')
        await firing.wait_for(timeout=TIMEOUT)  # live: no reload
        assert "price 201 > 200" in await firing.locator(".why").inner_text()
        state = page.locator('[data-rule-state="sol-above-200"]')
        await state.get_by_text("firing").wait_for(timeout=TIMEOUT)
        await page.locator("[data-chart] rect.episode").first.wait_for(timeout=TIMEOUT)
        price = page.locator("[data-price]").first
        assert (await price.inner_text()).startswith("201")
        sent = page.locator('[data-client="notifications"] .note', has_text="sol-above-200")
        await sent.first.wait_for(timeout=TIMEOUT)  # the list follows what the daemon sends

        assert await pending.count() == 1  # still pending at 201
        await page.evaluate("window.scrollTo(0, 0)")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        top: FloatRect = {"x": 0, "y": 0, "width": 1280, "height": 1500}
        await page.screenshot(path=str(SCREENSHOT), full_page=True, clip=top)

        await page.set_viewport_size({"width": 390, "height": 844})
        await page.wait_for_timeout(300)
        widths = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1] == 390, f"horizontal scroll at 390 px: {widths}"

        assert watched.foreign == [], f"requests beyond the daemon: {watched.foreign}"
        assert any("/dashboard/stream" in url for url in watched.requests)
        assert watched.problems == [], watched.problems


async def test_the_token_unlocks_the_actions(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, browser: Browser
) -> None:
    """Entered once, the token is kept by the browser and enables the buttons; with the
    talkback API (SPEC §9) a silence is added from the form and expired again, sent with the
    bearer header, the firing alert is acknowledged from the keyboard and shows it, and the
    notification sent lists its channel's state."""
    http = {"listen": "127.0.0.1:0", "token": TOKEN}
    settings = daemon_settings(tmp_path, sim, receiver, SOL_ABOVE_200, http=http)
    async with running(settings) as daemon:
        await set_price(sim, daemon, 201)
        watched = await _open(browser, daemon, viewport={"width": 390, "height": 844})
        page = watched.page
        await page.locator("#token").focus()
        await page.keyboard.type(TOKEN)
        await page.keyboard.press("Enter")
        assert await page.evaluate("localStorage.getItem('notifier.token')") == TOKEN
        assert "Actions are on" in await page.locator("#mode").inner_text()
        form = page.locator("#silence-form")
        await form.locator('input[name="rule"]').fill("sol-*")
        await form.locator('input[name="comment"]').fill("from the browser test")
        bearer: list[str | None] = []
        page.on(
            "request",
            lambda request: (
                bearer.append(request.headers.get("authorization"))
                if request.method == "POST"
                else None
            ),
        )
        await form.locator('button[type="submit"]').click()
        listed = page.locator('[data-client="silences"] .silence')
        await listed.first.wait_for(timeout=TIMEOUT)
        assert "rule=sol-*" in await listed.first.inner_text()
        assert bearer == [f"Bearer {TOKEN}"]
        await listed.first.locator('[data-action="expire"]').click()
        await page.get_by_text("No silence is active or planned.").wait_for(timeout=TIMEOUT)
        firing = page.locator('.alert.firing[data-alert-rule="sol-above-200"]')
        await firing.locator('[data-action="ack"]').focus()
        await page.keyboard.press("Enter")
        await firing.get_by_text("acknowledged").wait_for(timeout=TIMEOUT)  # live, by the stream
        sent = page.locator('[data-client="notifications"] .note')
        await sent.first.wait_for(timeout=TIMEOUT)
        assert "phone: " in await sent.first.inner_text()
        assert watched.problems == [], watched.problems


def _seed_history(settings: Settings, minutes: int) -> None:
    """Give SOL/USDC ``minutes`` of past quotes through the store, as an earlier run of the
    daemon would have left them (the daemon restores its history at start)."""
    (rule,), errors = compile_text(SOL_ABOVE_200, "seed.yaml")
    assert not errors
    assert isinstance(rule, QuoteRule)
    book = HistoryBook()
    book.watch({SOL_USDC: rule.pricing})
    now = time.time()
    start = now - minutes * 60
    for step in range(minutes * 12):  # a quote every five seconds
        wave = 3.0 * math.sin(step / 45) + 1.2 * math.sin(step / 7) + step / (minutes * 12)
        book.series[SOL_USDC].record(start + step * 5, 192.5 + wave)
    book.advance(now - 1)
    store = Store.open(settings.effective_state_dir)
    try:
        HistoryStore(store).save(book)
    finally:
        store.close()
