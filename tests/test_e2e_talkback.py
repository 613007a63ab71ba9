"""Talking back on the real daemon (SPEC §9): silences, snoozes, acknowledgements and quiet
hours decide what reaches a real apprise receiver; the API refuses changes without the token.
Delivery and talkback run on a ``FakeClock`` the tests move; the engine keeps real time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notifier.daemon import Daemon, running
from notifier.simulator import Simulator
from tests.receivers import FakeClock, HttpReceiver, wait_until
from tests.support import ONE_SOL, SOL, USDC, daemon_settings, set_price

FLAPPING = """\
rules:
  - id: sol-above-200
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 200
    resolved: true
    repeat: 1h
    severity: warning
    notify: [phone]
    title: "SOL at {{ price | round(2) }}"
"""

QUIET_RULES = """\
rules:
  - id: sol-warning
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 200
    severity: warning
    notify: [phone]
    title: "warning: SOL at {{ price | round(2) }}"
  - id: sol-failure
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 200
    severity: failure
    notify: [phone]
    title: "failure: SOL at {{ price | round(2) }}"
"""


def api(daemon: Daemon) -> str:
    url = daemon.http.bound_url if daemon.http else None
    assert url is not None
    return url


def bearer(daemon: Daemon) -> dict[str, str]:
    """The token a CLI on this machine reads from the state directory."""
    token = (daemon.settings.effective_state_dir / "api_token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def notifications(http: aiohttp.ClientSession, daemon: Daemon) -> list[dict[str, Any]]:
    status, rows = await call(http, "GET", f"{api(daemon)}/api/v1/notifications")
    assert status == 200
    return list(rows)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def daemon(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, clock: FakeClock
) -> AsyncIterator[Daemon]:
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    async with running(daemon_settings(tmp_path, sim, receiver, FLAPPING), clock=clock) as d:
        yield d


async def test_a_silence_that_ends_while_the_alert_fires_sends_exactly_one_message(
    daemon: Daemon,
    sim: Simulator,
    receiver: HttpReceiver,
    clock: FakeClock,
    http: aiohttp.ClientSession,
) -> None:
    """Fired inside a silence: recorded as silenced, not sent; at the silence's end, while it
    still fires, one firing message."""
    body = {"matchers": {"rule": "sol-*", "tag": "phone"}, "duration": "1h", "comment": "deploy"}
    status, created = await call(
        http, "POST", f"{api(daemon)}/api/v1/silences", body, bearer(daemon)
    )
    assert status == 201
    await set_price(sim, daemon, 201.5)
    await daemon.dispatcher_idle()
    await wait_until(lambda: daemon.dispatcher.pending_count() == 0)
    rows = await notifications(http, daemon)
    assert rows[0]["rule"] == "sol-above-200"
    assert rows[0]["withheld_by"] == created["id"]
    assert rows[0]["channels"] == [{"tag": "phone", "state": "silenced"}]
    _, alerts = await call(http, "GET", f"{api(daemon)}/api/v1/alerts")
    assert alerts[0]["silenced_by"] == [created["id"]]
    assert receiver.delivered == []

    clock.advance(3600 + 1)
    await receiver.wait_until(lambda: len(receiver.delivered) == 1)
    assert receiver.delivered_titles() == ["SOL at 201.5"]
    clock.advance(5)
    daemon.talkback.wake()
    await daemon.dispatcher_idle()
    assert len(receiver.delivered) == 1


async def test_a_snoozed_flapping_alert_sends_nothing_until_the_snooze_ends_then_one(
    daemon: Daemon,
    sim: Simulator,
    receiver: HttpReceiver,
    clock: FakeClock,
    http: aiohttp.ClientSession,
) -> None:
    """A snooze mutes every firing and resolve of the rule and key; at its end, still firing,
    one message."""
    await set_price(sim, daemon, 201.0)
    await receiver.wait_until(lambda: len(receiver.delivered) == 1)
    status, done = await call(
        http, "POST", f"{api(daemon)}/api/v1/alerts/sol-above-200/snooze",
        {"duration": "1h", "by": "alice"}, bearer(daemon),
    )  # fmt: skip
    assert status == 200, done
    assert done["key"] == "SOL/USDC:1000000000"
    for price in (195.0, 202.0, 196.0, 203.0, 197.0, 204.0):
        await set_price(sim, daemon, price)
    await daemon.dispatcher_idle()
    rows = await notifications(http, daemon)
    muted = [r for r in rows if r["withheld_by"] == "snooze"]
    assert [r["transition"] for r in reversed(muted)] == ["resolved", "firing"] * 3
    assert len(receiver.delivered) == 1

    clock.advance(3600)
    await receiver.wait_until(lambda: len(receiver.delivered) == 2)
    assert receiver.delivered_titles()[-1] == "SOL at 204.0"
    await daemon.dispatcher_idle()
    assert len(receiver.delivered) == 2


async def test_an_acknowledged_alert_repeats_nothing_but_still_resolves(
    daemon: Daemon,
    sim: Simulator,
    receiver: HttpReceiver,
    clock: FakeClock,
    http: aiohttp.ClientSession,
) -> None:
    """Acknowledged: its ``repeat`` is recorded as silenced; its resolve is sent; the next
    episode is not acknowledged."""
    await set_price(sim, daemon, 201.0)
    await receiver.wait_until(lambda: len(receiver.delivered) == 1)
    status, done = await call(
        http, "POST", f"{api(daemon)}/api/v1/alerts/sol-above-200/ack", {}, bearer(daemon)
    )
    assert status == 200, done
    _, alerts = await call(http, "GET", f"{api(daemon)}/api/v1/alerts")
    assert alerts[0]["acknowledged"] is True
    await set_price(sim, daemon, 195.0)
    await receiver.wait_until(lambda: len(receiver.delivered) == 2)
    assert receiver.delivered_titles()[-1].startswith("RESOLVED")
    await set_price(sim, daemon, 202.0)
    await receiver.wait_until(lambda: len(receiver.delivered) == 3)
    _, alerts = await call(http, "GET", f"{api(daemon)}/api/v1/alerts")
    assert alerts[0]["acknowledged"] is False


async def test_changes_without_the_token_are_refused_and_change_nothing(
    daemon: Daemon, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """No token, or a wrong one: 401 for every change, from loopback too; nothing stored."""
    await set_price(sim, daemon, 201.0)
    base = api(daemon)
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        body = {"matchers": {"rule": "*"}, "duration": "1h"}
        assert (await call(http, "POST", f"{base}/api/v1/silences", body, headers))[0] == 401
        ack = f"{base}/api/v1/alerts/sol-above-200/ack"
        assert (await call(http, "POST", ack, {}, headers))[0] == 401
        snooze = f"{base}/api/v1/alerts/sol-above-200/snooze"
        assert (await call(http, "POST", snooze, {"duration": "1h"}, headers))[0] == 401
    assert (await call(http, "GET", f"{base}/api/v1/silences"))[1] == []
    _, alerts = await call(http, "GET", f"{base}/api/v1/alerts")
    assert alerts[0]["acknowledged"] is False
    assert alerts[0]["snoozed_until"] is None


async def test_quiet_hours_hold_warnings_let_failures_through_and_end_in_one_digest(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, http: aiohttp.ClientSession
) -> None:
    """At 06:59 inside 23:00-07:00: the warning is held, the failure sent; at 07:00 one
    digest for the tag lists the warning."""
    clock = FakeClock(datetime(2025, 1, 15, 6, 59, tzinfo=UTC).timestamp())
    quiet = [{"tags": ["phone"], "from": "23:00", "to": "07:00", "timezone": "UTC",
              "except_severity": ["failure"]}]  # fmt: skip
    settings = daemon_settings(tmp_path, sim, receiver, QUIET_RULES, quiet_hours=quiet)
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    async with running(settings, clock=clock) as daemon:
        await set_price(sim, daemon, 201.0)
        await receiver.wait_until(lambda: len(receiver.delivered) == 1)
        await daemon.dispatcher_idle()
        assert receiver.delivered_titles() == ["failure: SOL at 201.0"]
        rows = await notifications(http, daemon)
        held = next(r for r in rows if r["rule"] == "sol-warning")
        assert held["channels"] == [{"tag": "phone", "state": "held"}]
        assert held["withheld_by"] == "quiet hours"
        assert daemon.status()["talkback"]["withheld"] == {"silenced": 0, "held": 1}

        clock.advance(60.0)
        daemon.dispatcher.wake()
        await receiver.wait_until(lambda: len(receiver.delivered) == 2)
        digest = receiver.delivered[-1]
        assert digest.title == "1 notification held during quiet hours for tag 'phone'"
        assert "- [warning] warning: SOL at 201.0 (sol-warning)" in digest.message
        await daemon.dispatcher_idle()
        assert len(receiver.delivered) == 2
