"""Two real ``notifier run`` members sharing a real PostgreSQL, against the simulator: the
active is killed, frozen and thawed, the store restarts, a send is in flight at the kill.
Every notification is counted at a local receiver: none lost, none sent twice (beyond the
documented repeat of a send in flight)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import psycopg
import pytest

from notifier.simulator import Simulator
from tests.pgserver import PgServer, unmet
from tests.receivers import HttpReceiver, wait_until
from tests.support import ONE_SOL, SOL, SOL_ABOVE_200, USDC
from tests.test_e2e_ops import clean_env, daemon_process, toml_str, write_config

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.timeout(300)]

# [ha] takeover of the members under test; docs/ha.md's figures come from runs with "10" and
# NOTIFIER_HA_TIMES=file, where each takeover's time, losses and repeats are appended.
TAKEOVER = float(os.environ.get("NOTIFIER_HA_TAKEOVER", "6"))


@pytest.fixture
def pg() -> Iterator[PgServer]:
    """A PostgreSQL of the test's own: it may be restarted."""
    if (problem := unmet()) is not None:
        pytest.skip(problem)
    server = PgServer()
    server.init()
    server.start()
    yield server
    server.destroy()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Members:
    """Starts members (``notifier run`` processes) sharing one config but their own port."""

    def __init__(self, tmp_path: Path, sim: Simulator, receiver: HttpReceiver, url: str) -> None:
        self.tmp_path = tmp_path
        self.config = write_config(tmp_path, sim, receiver.url("alerts"), rules=SOL_ABOVE_200)
        self.base = self.config.read_text(encoding="utf-8")
        self.url = url
        self.stack = AsyncExitStack()
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.ports: dict[str, int] = {}
        self.frozen: set[str] = set()  # SIGSTOPped: not asked (the request would hang)

    async def start(self, name: str) -> asyncio.subprocess.Process:
        port = free_port()
        text = f"store = {toml_str(self.url)}\n" + self.base.replace(
            'listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"'
        )
        text += f'[ha]\ntakeover = "{TAKEOVER}s"\n'
        config = self.tmp_path / f"{name}.toml"
        config.write_text(text, encoding="utf-8")
        log = (self.tmp_path / f"{name}.log").open("ab")
        self.stack.callback(log.close)
        proc = await self.stack.enter_async_context(daemon_process(config, clean_env(), log))
        self.procs[name], self.ports[name] = proc, port
        return proc

    def ready(self, name: str) -> tuple[int, dict[str, object]] | None:
        """(status, body) of the member's /readyz, None while it does not answer."""
        url = f"http://127.0.0.1:{self.ports[name]}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            return None

    def role(self, name: str) -> str | None:
        if name in self.frozen:
            return None
        found = self.ready(name)
        if found is None:
            return None
        status, body = found
        return "active" if status == 200 else str(body.get("role"))

    def status(self, name: str) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.ports[name]}/api/v1/status"
        with urllib.request.urlopen(url, timeout=5) as response:
            return dict(json.loads(response.read()))

    async def wait_role(self, name: str, role: str, timeout: float = 60) -> float:  # noqa: ASYNC109
        """Wait until ``name`` reports ``role``; return how long that took."""
        begun = time.monotonic()
        await wait_until(lambda: self.role(name) == role, timeout=timeout, interval=0.05)
        return time.monotonic() - begun

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.tmp_path.glob("*.log"))
        )


@pytest.fixture
async def members(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, pg: PgServer
) -> AsyncIterator[Members]:
    group = Members(tmp_path, sim, receiver, pg.create_database())
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 150_000_000)
    async with group.stack:
        await group.start("a")
        await group.wait_role("a", "active")
        await group.start("b")
        await group.wait_role("b", "standby")
        try:
            yield group
        except BaseException:
            print(group.logs())
            raise


def outbox(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT title, state FROM outbox ORDER BY id").fetchall()
    return [(str(t), str(s)) for t, s in rows]


def firing(members: Members) -> bool | None:
    """Whether the active member has sol-above-200 firing (None: no member is active)."""
    for name in members.procs:
        if members.role(name) == "active":
            try:
                alerts = members.status(name)["alerts"]
            except OSError:  # the store is restarting: status cannot read it
                return None
            assert isinstance(alerts, list)
            return any(a["rule"] == "sol-above-200" and a["state"] == "firing" for a in alerts)
    return None


async def resolve(sim: Simulator, members: Members) -> None:
    """Quote 150: the active member resolves the alert."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 150_000_000)
    await wait_until(lambda: firing(members) is False, timeout=60, interval=0.1)


async def cross(sim: Simulator, receiver: HttpReceiver, members: Members, price: float) -> None:
    """Resolve below 198, then cross above 200 at ``price``; wait for its notification and
    for the outbox to record it sent."""
    await resolve(sim, members)
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, round(price * 1e6))
    title = f"SOL at {price}"
    await receiver.wait_until(lambda: title in receiver.delivered_titles(), timeout=60)
    await wait_until(lambda: (title, "sent") in outbox(members.url), timeout=60)


def record(what: str, took: float, receiver: HttpReceiver, prices: list[float]) -> None:
    """Append one measured takeover to $NOTIFIER_HA_TIMES (when set)."""
    path = os.environ.get("NOTIFIER_HA_TIMES")
    if not path:
        return
    titles = receiver.delivered_titles()
    expected = [f"SOL at {p}" for p in prices]
    lost = sum(1 for t in expected if t not in titles)
    repeated = len(titles) - len(set(titles))
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"{what} {took:.2f} lost={lost} repeated={repeated}\n")


def assert_each_once(receiver: HttpReceiver, prices: list[float]) -> None:
    titles = receiver.delivered_titles()
    assert sorted(titles) == sorted(f"SOL at {p}" for p in prices), titles


async def test_the_standby_takes_over_when_the_active_is_killed(
    sim: Simulator, receiver: HttpReceiver, members: Members
) -> None:
    """SIGKILL of the active: the standby is active within ``ha.takeover``; the crossing in
    the gap is sent by it, once; nothing before or after is lost or repeated."""
    await cross(sim, receiver, members, 201.0)
    await resolve(sim, members)
    members.procs["a"].kill()
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 202_000_000)  # in the gap: nobody is active
    took = await members.wait_role("b", "active", timeout=TAKEOVER * 4)
    assert took < TAKEOVER + 2.0  # + the polling of this test on a loaded machine
    await receiver.wait_until(lambda: "SOL at 202.0" in receiver.delivered_titles(), timeout=60)
    await cross(sim, receiver, members, 203.0)
    record("kill", took, receiver, [201.0, 202.0, 203.0])
    assert_each_once(receiver, [201.0, 202.0, 203.0])
    ha = members.status("b")["ha"]
    assert isinstance(ha, dict)
    assert (ha["role"], ha["takeovers"]) == ("active", 1)
    roles = {m["member"]: m["role"] for m in ha["members"]}
    assert roles[ha["member"]] == "active"


async def test_a_frozen_active_is_fenced_and_steps_down_when_it_wakes(
    sim: Simulator, receiver: HttpReceiver, members: Members
) -> None:
    """SIGSTOP of the active: the standby takes over; after SIGCONT the former active finds
    its lease gone, sends nothing and stands by."""
    await cross(sim, receiver, members, 201.0)
    a = members.procs["a"]
    a.send_signal(signal.SIGSTOP)
    members.frozen.add("a")
    try:
        took = await members.wait_role("b", "active", timeout=TAKEOVER * 4)
        await cross(sim, receiver, members, 202.0)
    finally:
        a.send_signal(signal.SIGCONT)
        members.frozen.discard("a")
    await members.wait_role("a", "standby", timeout=TAKEOVER * 4)
    await cross(sim, receiver, members, 203.0)
    record("freeze", took, receiver, [201.0, 202.0, 203.0])
    assert_each_once(receiver, [201.0, 202.0, 203.0])
    assert "stepping down to standby" in (members.tmp_path / "a.log").read_text()


async def test_the_store_restarting_loses_and_repeats_nothing(
    sim: Simulator, receiver: HttpReceiver, members: Members, pg: PgServer
) -> None:
    """PostgreSQL restarts under the group: an active member afterwards, every crossing sent
    once."""
    await cross(sim, receiver, members, 201.0)
    await asyncio.to_thread(pg.restart, "fast")
    await wait_until(
        lambda: "active" in (members.role("a"), members.role("b")), timeout=TAKEOVER * 4
    )
    await cross(sim, receiver, members, 202.0)
    await cross(sim, receiver, members, 203.0)
    assert_each_once(receiver, [201.0, 202.0, 203.0])


async def test_a_send_in_flight_at_the_kill_is_sent_by_the_new_active(
    sim: Simulator, receiver: HttpReceiver, members: Members
) -> None:
    """A crossing right before the kill: its send reached the channel unconfirmed when the
    active died; the new active sends it again (the documented at-least-once of a send in
    flight), and confirms it once."""
    receiver.hang_next(1)
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 201_000_000)
    await receiver.wait_until(lambda: receiver.hanging == 1, timeout=60)
    members.procs["a"].kill()
    await members.wait_role("b", "active", timeout=TAKEOVER * 4)
    await receiver.wait_until(lambda: "SOL at 201.0" in receiver.delivered_titles(), timeout=60)
    await wait_until(lambda: outbox(members.url) == [("SOL at 201.0", "sent")], timeout=60)
    await cross(sim, receiver, members, 202.0)
    assert_each_once(receiver, [201.0, 202.0])
