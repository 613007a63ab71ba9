"""Operations end to end: the real ``notifier run`` process under sd_notify and journald, its
exit codes, and ``status``/``track``/``untrack``/``/metrics`` against a running daemon."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifier.daemon import Daemon, running
from notifier.simulator import SIM_KEYS, Simulator
from tests.receivers import HttpReceiver, wait_until, write_apprise_yaml
from tests.support import ONE_SOL, SOL, SOL_ABOVE_200, USDC, daemon_settings, set_price

PYTHON = sys.executable
# Variables a developer's shell or a CI runner under systemd may carry into the child.
SYSTEMD_VARS = {
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "CREDENTIALS_DIRECTORY",
    "STATE_DIRECTORY",
    "TIMEOUT_STOP_USEC",
}
STOP_TIMEOUT = 30.0
HTTP_TOKEN = "tok-sekrit-0123456789"
APPRISE_PASSWORD = "apprise-sekrit-9876543210"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without systemd's or notifier's variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SYSTEMD_VARS and not k.startswith("NOTIFIER_")
    }
    env.update(extra)
    return env


def toml_str(value: object) -> str:
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(
    tmp_path: Path,
    sim: Simulator,
    apprise_url: str,
    *,
    rules: str = SOL_ABOVE_200,
    token: str = "",
) -> Path:
    """A notifier.toml for a subprocess daemon pointed at ``sim``, delivering to ``apprise_url``."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "rules.yaml").write_text(rules, encoding="utf-8")
    apprise = write_apprise_yaml(tmp_path / "apprise.yml", [(apprise_url, "admin, phone")])
    urls = sim.urls
    config = tmp_path / "notifier.toml"
    config.write_text(
        f"rules_dir = {toml_str(rules_dir)}\n"
        f"state_dir = {toml_str(tmp_path / 'state')}\n"
        f"apprise_config = {toml_str(apprise)}\n"
        "[http]\n"
        'listen = "127.0.0.1:0"\n'
        f"token = {toml_str(token)}\n"
        "[fusion]\n"
        f"url = {toml_str(urls.fusion_ws)}\n"
        f"rest_url = {toml_str(urls.fusion_rest)}\n"
        f"api_key = {toml_str(SIM_KEYS.fusion)}\n"
        'heartbeat = "2s"\n'
        "[quotes]\n"
        f"url = {toml_str(urls.quotes_ws)}\n"
        f"api_key = {toml_str(SIM_KEYS.quotes)}\n"
        'heartbeat = "2s"\n'
        "[intents]\n"
        f"url = {toml_str(urls.intents)}\n"
        f"api_key = {toml_str(SIM_KEYS.intents)}\n"
        "poll_interval = 0.2\n"
        "[delivery]\n"
        "backoff_cap = 0.5\n"
        "timeout = 5.0\n",
        encoding="utf-8",
    )
    return config


@contextlib.asynccontextmanager
async def daemon_process(
    config: Path, env: dict[str, str], stderr: IO[bytes] | int = subprocess.DEVNULL
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``notifier run -c config`` as a child process; killed if the test leaves it running."""
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "notifier", "run", "-c", str(config),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        env=env, cwd=config.parent,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def stop(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM, then the exit code once the daemon drained and exited."""
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``notifier ARGS`` as a child process; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "notifier", *args,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env if env is not None else clean_env(),
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), STOP_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class NotifySocket:
    """A bound AF_UNIX datagram socket standing in for systemd's, read on the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def close(self) -> None:
        self.sock.close()

    async def expect(
        self,
        wanted: str | Callable[[str], bool],
        timeout: float = 20.0,  # noqa: ASYNC109 - each wait names its own generous budget
    ) -> str:
        """Read datagrams until one equals (or satisfies) ``wanted``; return that one."""
        match = wanted if callable(wanted) else (lambda message: message == wanted)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = (await loop.sock_recv(self.sock, 65536)).decode()
                    self.messages.append(message)
                    if match(message):
                        return message
        except TimeoutError:
            raise AssertionError(
                f"no datagram {wanted!r} within {timeout}s; got {self.messages}"
            ) from None


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    # sun_path holds 108 bytes; fall back to a short directory when tmp_path is too long.
    with contextlib.ExitStack() as stack:
        directory = tmp_path
        if len(str(tmp_path)) > 90:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(dir="/tmp")))
        sock = NotifySocket(directory / "notify.sock")
        stack.callback(sock.close)
        yield sock


def api_url(daemon: Daemon) -> str:
    """Where the in-process daemon's HTTP API listens."""
    url = daemon.http.bound_url if daemon.http else None
    assert url is not None
    return url


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


# -- the process under systemd -------------------------------------------------------------------


async def test_sd_notify_lifecycle_of_the_real_process(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, notify_socket: NotifySocket
) -> None:
    """READY, STATUS, WATCHDOG; RELOADING+MONOTONIC_USEC then READY on SIGHUP; STOPPING, exit 0."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 150_000_000)
    config = write_config(tmp_path, sim, receiver.url("alerts"))
    env = clean_env(NOTIFY_SOCKET=str(notify_socket.path), WATCHDOG_USEC="2000000")
    async with daemon_process(config, env) as proc:
        await notify_socket.expect("READY=1", timeout=30)
        assert notify_socket.messages == ["READY=1"]  # no status before the daemon is up
        status = await notify_socket.expect(lambda m: m.startswith("STATUS="))
        assert re.fullmatch(r"STATUS=feeds [0-3]/3 up, 1 rules, 0 firing", status), status
        await notify_socket.expect("WATCHDOG=1", timeout=10)
        assert not any(m.startswith(("RELOADING", "STOPPING")) for m in notify_socket.messages)

        before = monotonic_usec()
        proc.send_signal(signal.SIGHUP)
        reloading = await notify_socket.expect(lambda m: m.startswith("RELOADING=1"))
        after = monotonic_usec()
        lines = reloading.split("\n")
        assert lines[0] == "RELOADING=1"
        assert len(lines) == 2
        assert lines[1].startswith("MONOTONIC_USEC=")
        assert before <= int(lines[1].removeprefix("MONOTONIC_USEC=")) <= after
        await notify_socket.expect("READY=1")

        assert await stop(proc) == 0
        await notify_socket.expect("STOPPING=1")


async def test_journal_format_and_no_secret_in_any_log_line(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """Under JOURNAL_STREAM every line is ``<N>LEVEL logger: …``; no key or token ever shows."""
    apprise_url = receiver.url("alerts", user="bot", password=APPRISE_PASSWORD)
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 150_000_000)  # below: nothing fires yet
    config = write_config(tmp_path, sim, apprise_url, token=HTTP_TOKEN)
    log_path = tmp_path / "stderr.log"

    def log_text() -> str:
        return log_path.read_text(encoding="utf-8")

    with log_path.open("wb") as log_file:
        st = os.fstat(log_file.fileno())
        env = clean_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        async with daemon_process(config, env, stderr=log_file) as proc:
            # A reconnect of the quote feed (the one whose key travels in the URL) …
            await wait_until(lambda: sim.quotes.subscription_count() == 1, timeout=30)
            assert sim.quotes.drop_connections() == 1
            await wait_until(lambda: "reconnect" in log_text(), timeout=30)
            await wait_until(lambda: sim.quotes.subscription_count() == 1, timeout=30)
            # … and a delivery that fails once, then succeeds.
            receiver.fail_status = 500
            sim.quotes.set_quote(SOL, USDC, ONE_SOL, 201_500_000)
            await receiver.wait_until(lambda: len(receiver.posts) >= 1, timeout=30)
            receiver.fail_status = None
            await receiver.wait_until(lambda: len(receiver.delivered) == 1, timeout=30)
            assert receiver.delivered_titles() == ["SOL at 201.5"]
            assert await stop(proc) == 0

    lines = log_text().splitlines()
    assert lines, "the daemon logged nothing"
    journal_line = re.compile(r"<([2-7])>(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: .*")
    bad = [line for line in lines if not journal_line.fullmatch(line)]
    assert not bad, bad
    assert not [line for line in lines if re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", line)]
    assert any(line.startswith("<4>WARNING notifier.sources.quotes:") for line in lines)
    assert any(line.startswith("<4>WARNING notifier.dispatch: not delivered") for line in lines)
    assert any(line.startswith("<6>INFO") for line in lines)
    secrets = (SIM_KEYS.fusion, SIM_KEYS.quotes, SIM_KEYS.intents, HTTP_TOKEN, APPRISE_PASSWORD)
    leaks = [line for line in lines if any(secret in line for secret in secrets)]
    assert not leaks, leaks


# -- exit code 78 -----------------------------------------------------------------------------

SEEDED = "sekrit-0123456789abcdef"


def refused_config(
    tmp_path: Path, *, apprise: Path | None = None, top: str = "", http: str = "", quotes: str = ""
) -> Path:
    """A config whose feeds are off and whose secrets are seeded with ``SEEDED``."""
    if apprise is None:
        apprise = tmp_path / "apprise.yml"
        if not apprise.exists():
            write_apprise_yaml(apprise, [("json://127.0.0.1:9/x", "admin")])
    (tmp_path / "rules").mkdir(exist_ok=True)
    config = tmp_path / "notifier.toml"
    config.write_text(
        f"rules_dir = {toml_str(tmp_path / 'rules')}\n"
        f"state_dir = {toml_str(tmp_path / 'state')}\n"
        f"apprise_config = {toml_str(apprise)}\n"
        f"{top}\n"
        f'[http]\ntoken = "{SEEDED}-http"\n{http}\n'
        f'[fusion]\nenabled = false\napi_key = "{SEEDED}-fusion"\n'
        f'[quotes]\nenabled = false\napi_key = "{SEEDED}-quotes"\n{quotes}\n'
        f'[intents]\nenabled = false\napi_key = "{SEEDED}-intents"\n',
        encoding="utf-8",
    )
    return config


def run_refused(config: Path) -> str:
    """``notifier run`` must exit 78; answer its output, which must hold no secret."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [PYTHON, "-m", "notifier", "run", "-c", str(config)],
        capture_output=True, text=True, env=clean_env(), timeout=STOP_TIMEOUT, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 78, output
    assert SEEDED not in output
    assert "Traceback" not in output
    return output


def test_unknown_config_key_exits_78_naming_the_key(tmp_path: Path) -> None:
    """A misspelt key is refused with EX_CONFIG and named; no secret is echoed."""
    output = run_refused(refused_config(tmp_path, quotes="poll = 3"))
    assert "quotes.poll" in output
    assert str(tmp_path / "notifier.toml") in output


def test_unknown_log_level_exits_78_naming_the_key(tmp_path: Path) -> None:
    """A log level logging does not know is a config error, not a traceback."""
    output = run_refused(refused_config(tmp_path, top='log_level = "LOUD"'))
    assert "log_level" in output
    assert "LOUD" in output


def test_missing_apprise_config_exits_78_naming_the_file(tmp_path: Path) -> None:
    """An apprise config that does not exist is refused with EX_CONFIG, naming the file."""
    missing = tmp_path / "nowhere" / "apprise.yml"
    output = run_refused(refused_config(tmp_path, apprise=missing))
    assert str(missing) in output


def test_invalid_apprise_config_exits_78_without_its_secrets(tmp_path: Path) -> None:
    """A broken apprise line is refused with EX_CONFIG; the credential in it is not shown."""
    apprise = tmp_path / "apprise.yml"
    apprise.write_text(f"urls:\n  - bogus://bot:{SEEDED}@example.com/x\n", encoding="utf-8")
    output = run_refused(refused_config(tmp_path, apprise=apprise))
    assert str(apprise) in output


@pytest.mark.parametrize("listen", ["not-an-address", "127.0.0.1:{busy}"])
def test_unusable_http_listen_exits_78_naming_the_key(tmp_path: Path, listen: str) -> None:
    """A malformed or taken ``http.listen`` is refused with EX_CONFIG, naming the key."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = listen.format(busy=busy.getsockname()[1])
        output = run_refused(refused_config(tmp_path, http=f"listen = {toml_str(address)}"))
    assert "http.listen" in output
    assert address in output


# -- the CLI and HTTP API against a running daemon ----------------------------------------------


async def test_status_shows_firing_and_pending_apart_and_no_secret(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """``notifier status`` lists firing and pending alerts apart, a pending one with when it
    fires; ``--json`` and ``/api/v1/alerts?state=`` say the same; no API key or channel
    password shows anywhere."""
    rules = SOL_ABOVE_200 + SOL_ABOVE_150_FOR_AN_HOUR
    settings = daemon_settings(tmp_path, sim, receiver, rules)
    apprise_url = receiver.url("alerts", user="bot", password=APPRISE_PASSWORD)
    write_apprise_yaml(settings.apprise_config, [(apprise_url, "admin, phone")])
    secrets = (SIM_KEYS.fusion, SIM_KEYS.quotes, SIM_KEYS.intents, APPRISE_PASSWORD)
    async with running(settings) as daemon:
        await set_price(sim, daemon, 201.5)
        await wait_until(
            lambda: sorted(a["state"] for a in daemon.alerts()) == ["firing", "pending"]
        )
        key = str(daemon.alerts()[0]["key"])
        url = api_url(daemon)

        code, out, err = await run_cli("status", "--url", url)
        assert code == 0, err
        firing_table = out.split("FIRING: 1\n", 1)[1].split("\n\n", 1)[0]
        row = next(line for line in firing_table.splitlines() if "sol-above-200" in line)
        assert row.split()[:2] == ["sol-above-200", key]
        assert row.endswith(" ago  price=201.5  price 201.5 > 200")  # VALUE, then WHY
        assert "sol-above-150" not in firing_table
        pending_table = out.split("PENDING: 1\n", 1)[1].split("\n\n", 1)[0]
        row = next(line for line in pending_table.splitlines() if "sol-above-150" in line)
        assert row.split()[:2] == ["sol-above-150", key]
        assert " in 59m" in row  # fires an hour after the condition began
        assert out.endswith(" dead\n")  # the report's last line, and no blank line after it
        assert not any(secret in out for secret in secrets)

        code, out, err = await run_cli("status", "--url", url, "--json")
        assert code == 0, err
        doc = json.loads(out)
        assert sorted((a["rule"], a["key"], a["state"]) for a in doc["alerts"]) == [
            ("sol-above-150", key, "pending"),
            ("sol-above-200", key, "firing"),
        ]
        assert doc["alert_counts"] == {"firing": 1, "pending": 1}
        pending = next(a for a in doc["alerts"] if a["state"] == "pending")
        assert pending["due"] is not None
        assert pending["due"] > pending["since"]
        assert {f["name"] for f in doc["feeds"]} == {"order", "quote", "intent"}
        assert not any(secret in out for secret in secrets)

        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/api/v1/alerts", params={"state": "pending"}) as resp:
                assert [a["rule"] for a in await resp.json()] == ["sol-above-150"]
            async with http.get(f"{url}/api/v1/alerts", params={"state": "firing"}) as resp:
                assert [a["rule"] for a in await resp.json()] == ["sol-above-200"]
            async with http.get(f"{url}/api/v1/alerts", params={"state": "bogus"}) as resp:
                assert resp.status == 400


SOL_ABOVE_150_FOR_AN_HOUR = """\
  - id: sol-above-150
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 150
    for: 1h
"""


async def test_metrics_parse_and_cover_the_pipeline(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """/metrics parses as Prometheus text and has events, evaluations, notifications, reloads,
    feed state and loop lag."""
    async with (
        running(daemon_settings(tmp_path, sim, receiver, SOL_ABOVE_200)) as daemon,
        aiohttp.ClientSession() as http,
    ):
        await set_price(sim, daemon, 202.0)
        await receiver.wait_until(lambda: len(receiver.delivered) == 1)
        await daemon.dispatcher_idle()
        daemon.reload("test")
        async with http.get(f"{api_url(daemon)}/metrics") as response:
            assert response.status == 200
            text = await response.text()

    families = {f.name: f for f in text_string_to_metric_families(text)}

    def samples(family: str, **labels: str) -> list[float]:
        return [
            s.value
            for s in families[family].samples
            if all(s.labels.get(k) == v for k, v in labels.items())
            and not s.name.endswith("_created")
        ]

    assert samples("notifier_events", source="quote")[0] >= 1
    assert samples("notifier_rule_evaluations", kind="quote")[0] >= 1
    assert samples("notifier_notifications", outcome="sent")[0] >= 1
    assert samples("notifier_reloads", outcome="ok")[0] >= 2
    assert families["notifier_reload_seconds"].type == "histogram"
    assert samples("notifier_feed_up", feed="quote") == [1.0]
    assert {"order", "intent"} <= {s.labels["feed"] for s in families["notifier_feed_up"].samples}
    assert families["notifier_event_loop_lag_seconds"].type == "gauge"
    assert samples("notifier_event_loop_lag_seconds")[0] >= 0


async def test_track_and_untrack_change_what_is_polled(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """``notifier track`` starts polling an intent, ``untrack`` stops it; status lists it. The
    CLI reads the API token the daemon created in the state directory."""
    first = sim.intents.add_intent("intent-first")
    second = sim.intents.add_intent("intent-second")
    env = clean_env(NOTIFIER_STATE_DIR=str(tmp_path / "state"))
    async with running(daemon_settings(tmp_path, sim, receiver, SOL_ABOVE_200)) as daemon:
        url = api_url(daemon)
        assert sim.intents.request_count(first) == 0

        code, out, err = await run_cli("track", first, "--label", "rent", "--url", url, env=env)
        assert (code, out) == (0, f"now tracking intent {first} (rent)\n"), err
        await wait_until(lambda: sim.intents.request_count(first) >= 2, timeout=20)

        code, out, err = await run_cli("status", "--url", url, "--json")
        assert code == 0, err
        intents = json.loads(out).get("intents", [])
        assert [(i["id"], i["label"]) for i in intents] == [(first, "rent")]

        code, out, err = await run_cli("untrack", first, "--url", url, env=env)
        assert (code, out) == (0, f"stopped tracking intent {first}\n"), err
        polled_at_untrack = sim.intents.request_count(first)
        # The poller keeps running (it polls the second intent several times) without
        # asking for the first again, bar one request that may have been in flight.
        code, _, err = await run_cli("track", second, "--url", url, env=env)
        assert code == 0, err
        await wait_until(lambda: sim.intents.request_count(second) >= 3, timeout=20)
        assert sim.intents.request_count(first) <= polled_at_untrack + 1

        code, _, err = await run_cli("untrack", first, "--url", url, env=env)
        assert code == 1
        assert "not tracked" in err


async def test_control_commands_honour_http_token(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """With ``http.token`` set, a missing or wrong token is refused with a clear message."""
    intent = sim.intents.add_intent("intent-guarded")
    settings = daemon_settings(
        tmp_path, sim, receiver, SOL_ABOVE_200, http={"listen": "127.0.0.1:0", "token": HTTP_TOKEN}
    )
    client_config = tmp_path / "client.toml"
    client_config.write_text(f"[http]\ntoken = {toml_str(HTTP_TOKEN)}\n", encoding="utf-8")
    async with running(settings) as daemon:
        url = api_url(daemon)

        code, out, err = await run_cli("track", intent, "--url", url)
        assert (code, out) == (1, "")
        assert "refused" in err
        assert "token" in err
        assert "401" in err
        wrong = clean_env(NOTIFIER_HTTP__TOKEN="tok-wrong-0000")
        code, out, err = await run_cli("untrack", intent, "--url", url, env=wrong)
        assert (code, out) == (1, "")
        assert "token" in err
        assert HTTP_TOKEN not in err
        assert daemon.untrack_intent(intent) is False  # nothing was tracked by the refusals

        code, out, err = await run_cli("track", intent, "--url", url, "-c", str(client_config))
        assert code == 0, err
        await wait_until(lambda: sim.intents.request_count(intent) >= 1, timeout=20)
        code, out, err = await run_cli("untrack", intent, "--url", url, "-c", str(client_config))
        assert code == 0, err
