"""Talking back from the command line and from a message's action link, on the real daemon:
``notifier silence|ack|snooze`` reach it with the token from the state directory; an action
link acknowledges from a phone, and a tampered, foreign or replayed one is refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp

from notifier.daemon import Daemon, running
from notifier.simulator import Simulator
from tests.receivers import HttpReceiver
from tests.support import ONE_SOL, SOL, SOL_ABOVE_200, USDC, daemon_settings, set_price
from tests.test_e2e_ops import api_url, clean_env, run_cli

PUBLIC = "https://alerts.example.org/notifier"


async def test_silence_ack_and_snooze_commands_go_through_the_running_daemon(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """``silence add`` prints the id, ``list`` shows it, ``status`` too, ``expire`` ends it;
    ``ack`` and ``snooze`` find the rule's only firing key."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    env = clean_env(NOTIFIER_STATE_DIR=str(tmp_path / "state"))
    async with running(daemon_settings(tmp_path, sim, receiver, SOL_ABOVE_200)) as daemon:
        url = api_url(daemon)
        code, out, err = await run_cli(
            "silence", "add", "--rule", "sol-*", "--for", "2h", "--comment", "maintenance",
            "--url", url, env=env,
        )  # fmt: skip
        assert code == 0, err
        silence_id = out.strip()
        assert re.fullmatch(r"[0-9a-f]{12}", silence_id)
        code, out, err = await run_cli("silence", "list", "--json", "--url", url, env=env)
        assert code == 0, err
        [listed] = json.loads(out)
        assert listed["matchers"] == {"rule": "sol-*"}
        assert listed["comment"] == "maintenance"
        code, out, err = await run_cli("status", "--url", url, env=env)
        assert code == 0, err
        assert f"SILENCES: 1\n  {silence_id}  rule=sol-*" in out

        code, out, err = await run_cli("ack", "sol-above-200", "--url", url, env=env)
        assert code == 1
        assert "has no firing alert" in err
        await set_price(sim, daemon, 201.0)
        code, out, err = await run_cli("ack", "sol-above-200", "--url", url, env=env)
        assert code == 0, err
        assert out.startswith("acknowledged sol-above-200 SOL/USDC:1000000000 (by ")
        code, out, err = await run_cli(
            "snooze", "sol-above-200", "--for", "30m", "--url", url, env=env
        )
        assert code == 0, err
        assert out.startswith("snoozed sol-above-200 SOL/USDC:1000000000 for 30m")
        [alert] = daemon.alerts()
        assert alert["acknowledged"] is True
        assert alert["snoozed_until"] is not None
        assert alert["silenced_by"] == [silence_id]

        code, out, err = await run_cli("silence", "expire", silence_id, "--url", url, env=env)
        assert (code, out) == (0, f"expired silence {silence_id}\n"), err
        code, out, err = await run_cli("silence", "list", "--url", url, env=env)
        assert (code, out) == (0, "no silences\n"), err
        code, out, err = await run_cli("silence", "add", "--rule", "x", "--for", "1h",
                                       "--url", url)  # fmt: skip
        assert code == 1
        assert "401" in err


def _link(body: str) -> str:
    found = re.search(rf"{re.escape(PUBLIC)}/a/(\S+)$", body)
    assert found is not None, body
    return found.group(1)


async def _page(http: aiohttp.ClientSession, url: str) -> tuple[int, str, str]:
    """GET an action page: (status, html, the CSRF cookie's value)."""
    async with http.get(url) as response:
        cookie = response.cookies.get("notifier_csrf")
        return response.status, await response.text(), cookie.value if cookie else ""


async def _press(
    http: aiohttp.ClientSession, url: str, action: str, csrf: str, cookie: str
) -> tuple[int, str]:
    form = {"action": action, "csrf": csrf}
    headers = {"Cookie": f"notifier_csrf={cookie}", "Origin": "https://alerts.example.org"}
    async with http.post(url, data=form, headers=headers) as response:
        return response.status, await response.text()


async def test_an_action_link_acknowledges_and_a_tampered_or_replayed_one_is_refused(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """The message ends with its link; the page shows the alert and three buttons; a tampered
    token gets 403 and changes nothing; the real one acknowledges; after the alert resolves
    the same link gets 403."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    settings = daemon_settings(
        tmp_path, sim, receiver, SOL_ABOVE_200,
        http={"listen": "127.0.0.1:0", "public_url": PUBLIC},
    )  # fmt: skip
    async with running(settings) as daemon, aiohttp.ClientSession() as http:
        await set_price(sim, daemon, 201.0)
        await receiver.wait_until(lambda: len(receiver.delivered) == 1)
        token = _link(receiver.delivered[0].message)
        base = f"{api_url(daemon)}/a"

        status, page, cookie = await _page(http, f"{base}/{token}")
        assert status == 200
        assert "sol-above-200" in page
        assert 'name="viewport"' in page
        for label in ("Acknowledge", "Snooze 1 h", "Silence this rule 24 h"):
            assert f"<button>{label}</button>" in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None

        head, _, mac = token.partition(".")
        tampered = f"{head[:-2]}{'A' if head[-2] != 'A' else 'B'}{head[-1]}.{mac}"
        status, page, _ = await _page(http, f"{base}/{tampered}")
        assert status == 403
        assert "not issued by this notifier" in page
        status, page = await _press(http, f"{base}/{tampered}", "ack", csrf.group(1), cookie)
        assert status == 403
        assert "Nothing was changed" in page
        status, page = await _press(http, f"{base}/{token}", "ack", "forged", cookie)
        assert status == 403
        assert _acknowledged(daemon) is False

        status, page = await _press(http, f"{base}/{token}", "ack", csrf.group(1), cookie)
        assert status == 200, page
        assert "acknowledged sol-above-200" in page
        assert _acknowledged(daemon) is True

        await set_price(sim, daemon, 197.0)  # resolves: the episode the link names is over
        status, page, _ = await _page(http, f"{base}/{token}")
        assert status == 403
        assert "is over" in page
        status, page = await _press(http, f"{base}/{token}", "snooze", csrf.group(1), cookie)
        assert status == 403
        assert daemon.talkback.talkback.snoozes() == []


def _acknowledged(daemon: Daemon) -> bool:
    return any(a["acknowledged"] for a in daemon.alerts())


async def test_on_a_public_listen_address_reads_need_the_token_too(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """Listening on every interface: only /healthz and /readyz answer without the token."""
    settings = daemon_settings(tmp_path, sim, receiver, SOL_ABOVE_200,
                               http={"listen": "0.0.0.0:0"})  # fmt: skip
    async with running(settings) as daemon, aiohttp.ClientSession() as http:
        url = api_url(daemon)
        for path in ("/healthz", "/readyz"):
            async with http.get(url + path) as response:
                assert response.status == 200, path
        for path in ("/api/v1/status", "/api/v1/alerts", "/api/v1/silences", "/metrics"):
            async with http.get(url + path) as response:
                assert response.status == 401, path
        auth = {"Authorization": f"Bearer {daemon.talkback.token}"}
        async with http.get(url + "/api/v1/status", headers=auth) as response:
            assert response.status == 200
            assert "talkback" in await response.json()
