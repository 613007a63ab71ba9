"""The HTTP API under attack, on the real daemon: an idle-connection flood against the real
``notifier run`` process with systemd's default file limit, and a DNS-rebinding page's
requests (foreign ``Host``, foreign ``Origin``) against the in-process daemon."""

from __future__ import annotations

import asyncio
import re
import resource
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from notifier.daemon import running
from notifier.simulator import Simulator
from tests.receivers import HttpReceiver, wait_until
from tests.support import SOL_ABOVE_200, daemon_settings
from tests.test_e2e_ops import PYTHON, api_url, clean_env, refused_config, stop

FLOOD = 1100  # idle connections: more than systemd's default soft limit of 1024 descriptors
SYSTEMD_SOFT_NOFILE = 1024
LISTENING = re.compile(r"HTTP API listening on (http://\S+)")


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Let this test process hold the flood's sockets (raise its soft RLIMIT_NOFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FLOOD + 512
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def systemd_default_nofile() -> None:
    """In the child: the soft file limit a unit without ``LimitNOFILE=`` gets."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (SYSTEMD_SOFT_NOFILE, hard))


def open_idle(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` connected sockets that never send a byte (blocking: run in a thread)."""
    opened: list[socket.socket] = []
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=60)
        opened.append(sock)
    return opened


async def test_idle_connection_flood_neither_starves_healthz_nor_floods_the_log(
    tmp_path: Path, many_descriptors: None
) -> None:
    """1,100 idle connections against ``notifier run`` at 1,024 descriptors: a new client still
    gets ``/healthz``, the log stays quiet, and the daemon stops cleanly."""
    config = refused_config(tmp_path, http='listen = "127.0.0.1:0"')
    (tmp_path / "rules").mkdir(exist_ok=True)  # refused_config makes it too
    (tmp_path / "rules" / "rules.yaml").write_text(SOL_ABOVE_200, encoding="utf-8")
    log_path = tmp_path / "stderr.log"
    sockets: list[socket.socket] = []
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            PYTHON, "-m", "notifier", "run", "-c", str(config),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
            env=clean_env(), cwd=tmp_path, preexec_fn=systemd_default_nofile,
        )  # fmt: skip
        try:
            await wait_until(lambda: LISTENING.search(log_path.read_text()), timeout=60)
            match = LISTENING.search(log_path.read_text())
            assert match is not None
            url = match.group(1)
            host, port = url.removeprefix("http://").rsplit(":", 1)
            lines_before = len(log_path.read_text().splitlines())

            sockets = await asyncio.to_thread(open_idle, host, int(port), FLOOD)
            assert len(sockets) == FLOOD
            started = time.monotonic()
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
                http.get(f"{url}/healthz") as response,
            ):
                assert response.status == 200
                assert await response.text() == "ok\n"
            print(f"healthz during a {FLOOD}-connection flood: {time.monotonic() - started:.3f}s")

            await asyncio.sleep(2)  # a flood of accept() errors would show by now
            flood_lines = log_path.read_text().splitlines()[lines_before:]
            assert len(flood_lines) <= 5, flood_lines[:10]
            assert proc.returncode is None
            assert await stop(proc) == 0
        finally:
            for sock in sockets:
                sock.close()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_foreign_host_or_origin_is_refused_and_changes_nothing(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """A page reaching the API through a rebound name gets 421; a control request from another
    origin gets 403; neither tracks the intent, which the same request from the CLI does."""
    intent = sim.intents.add_intent("intent-rebound")
    async with (
        running(daemon_settings(tmp_path, sim, receiver, SOL_ABOVE_200)) as daemon,
        aiohttp.ClientSession() as http,
    ):
        url = api_url(daemon)
        port = url.rsplit(":", 1)[1]
        path = f"{url}/api/v1/intents/{intent}"
        rebound = {"Host": f"attacker.example:{port}"}
        async with http.get(f"{url}/api/v1/status", headers=rebound) as response:
            assert response.status == 421
        async with http.put(path, headers={**rebound, "Origin": "http://attacker.example"}) as r:
            assert r.status == 421
        async with http.put(path, headers={"Origin": "http://attacker.example"}) as response:
            assert response.status == 403
        async with http.delete(path, headers={"Origin": "null"}) as response:
            assert response.status == 403
        await asyncio.sleep(0.5)  # several poll intervals: a tracked intent would be polled
        assert sim.intents.request_count(intent) == 0
        assert daemon.untrack_intent(intent) is False

        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "LOCALHOST"):
            async with http.get(f"{url}/healthz", headers={"Host": host}) as response:
                assert response.status == 200, host
        token = daemon.talkback.token  # every change needs it, loopback too (SPEC §9)
        local = {"Origin": f"http://localhost:{port}", "Authorization": f"Bearer {token}"}
        async with http.put(path, headers=local) as response:
            assert response.status == 201
        await wait_until(lambda: sim.intents.request_count(intent) >= 1, timeout=20)
