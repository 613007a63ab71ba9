"""The shipped unit under a real systemd: start, sandbox, reload, watchdog, stop, exit 78.

The host's systemd boots as PID 1 of fresh namespaces on a throw-away overlay of ``/``
(``tests/realsystemd.py``). Inside it the project is installed as docs/install.md says (a venv
in /opt/notifier, pip-installed from this checkout with wheels built on the host beforehand, so
the container needs no network), configured in /etc/notifier against ``notifier simulate``
running as a transient unit, and ``systemd/notifier.service`` is enabled and driven with
systemctl. Needs root, systemd, util-linux, overlayfs and cgroup2: without them the tests
skip, and under ``NOTIFIER_CI=1`` (set by .ci/run) that skip is a failure (conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realsystemd import Container, unmet_requirements, wait_until

ROOT = Path(__file__).resolve().parent.parent
UNIT = "notifier"
SIM_UNIT = "notifier-sim"
SIM_PORT = 9320
MAX_EXPOSURE = 2.0
WATCHDOG_SEC = 30  # the unit's WatchdogSec=
RESTART_SEC = 5  # the unit's RestartSec=
SRC = "/usr/src/notifier"
WHEELS = "/usr/src/notifier-wheels"
# A rule file outside the rules dir, linked into it: saving it raises no inotify event in the
# watched dir, so only a reload (or the 60 s rescan) can pick up a change to it.
PROBE = "/etc/notifier/reload-probe/probe.yaml"
PROBE_LINK = "/etc/notifier/rules/zz-reload-probe.yaml"
SKIP_IN_COPY = {".git", ".venv", "venv", "__pycache__", "build", "dist", ".mypy_cache",
                ".pytest_cache", ".ruff_cache", ".hypothesis", "state"}  # fmt: skip

pytestmark = [pytest.mark.system, pytest.mark.timeout(420)]


# -- the container, the install, the simulator, the configuration -----------------------------


@pytest.fixture(scope="module")
def machine() -> Iterator[Container]:
    """The booted container; powered off (SIGKILL as the fallback) whatever happens."""
    missing = unmet_requirements()
    if missing:
        pytest.skip(f"booting a real systemd needs: {', '.join(missing)}")
    base = Path(tempfile.gettempdir()) / "notifier-realsd"
    container = Container(Path(os.environ.get("NOTIFIER_REALSD_DIR", base)))
    try:
        container.boot()
        yield container
    finally:  # a failed boot or test is torn down too
        problems = container.shutdown()
    assert not problems, f"teardown left something behind: {problems}"


def _wheelhouse() -> Path:
    """Wheels of this checkout, its dependencies and its build backend, built on the host.

    Offline from the cached wheelhouse when it has everything, from the package index (and
    pip's cache) otherwise.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    wheels = Path(os.environ.get("NOTIFIER_WHEELHOUSE", cache / "notifier" / "realsystemd-wheels"))
    wheels.mkdir(parents=True, exist_ok=True)
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
             "--wheel-dir", str(wheels), str(ROOT), "hatchling"]  # fmt: skip
    offline = subprocess.run(  # noqa: S603 -- fixed argv
        [*build, "--no-index", "--find-links", str(wheels)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if offline.returncode != 0:
        online = subprocess.run(  # noqa: S603 -- fixed argv
            build, capture_output=True, text=True, check=False, timeout=600
        )
        assert online.returncode == 0, f"pip wheel failed:\n{online.stdout}{online.stderr}"
    return wheels


@pytest.fixture(scope="module")
def installed(machine: Container) -> str:
    """docs/install.md, section 1: a venv in /opt/notifier, pip install of the checkout."""
    machine.copy_tree(ROOT, SRC, skip=SKIP_IN_COPY)
    machine.copy_tree(_wheelhouse(), WHEELS)
    machine.run(
        "sh", "-ec",
        f"python3.11 -m venv /opt/notifier\n"
        f"/opt/notifier/bin/pip install --quiet --no-index --find-links {WHEELS} {SRC}",
        timeout=300,
    )  # fmt: skip
    return machine.run("/opt/notifier/bin/notifier", "--version").stdout.strip()


@pytest.fixture(scope="module")
def simulator(machine: Container, installed: str) -> dict[str, dict[str, str]]:
    """``notifier simulate`` as a transient unit; returns the config lines it prints."""
    machine.run(
        "systemd-run", "--quiet", f"--unit={SIM_UNIT}", "--property=DynamicUser=yes",
        "--setenv=PYTHONUNBUFFERED=1", "/opt/notifier/bin/notifier", "simulate",
        "--port", str(SIM_PORT),
    )  # fmt: skip

    def printed() -> dict[str, dict[str, str]] | None:
        out = machine.run("journalctl", "-q", "-o", "cat", f"_SYSTEMD_UNIT={SIM_UNIT}.service")
        lines = simulator_config(out.stdout)
        return lines if sum("api_key" in keys for keys in lines.values()) >= 3 else None

    return wait_until(printed, 60, "the simulator's config lines")


def simulator_config(text: str) -> dict[str, dict[str, str]]:
    """``{section: {key: raw TOML value}}`` from the lines ``notifier simulate`` prints."""
    config: dict[str, dict[str, str]] = {}
    section: dict[str, str] | None = None
    for line in text.splitlines():
        if header := re.fullmatch(r"\[(\w+)\]", line.strip()):
            section = config.setdefault(header[1], {})
        elif section is not None and (pair := re.fullmatch(r"(\w+) = (.+)", line.strip())):
            section[pair[1]] = pair[2]
    return config


def point_at(shipped: str, sim: dict[str, dict[str, str]]) -> str:
    """The shipped notifier.toml, comments kept, with the simulator's keys (not its API keys:
    those go in credential files, as the docs ask under systemd)."""
    out: list[str] = []
    pending: dict[str, str] = {}
    for line in shipped.splitlines():
        if header := re.match(r"\[([\w.]+)\]", line):
            out.extend(f"{key} = {value}" for key, value in pending.items())
            pending = {k: v for k, v in sim.get(header[1], {}).items() if k != "api_key"}
        elif (pair := re.match(r"(\w+)\s*=", line)) and pair[1] in pending:
            out.append(f"{pair[1]} = {pending.pop(pair[1])}")
            continue
        out.append(line)
    out.extend(f"{key} = {value}" for key, value in pending.items())
    text = "\n".join(out) + "\n"
    merged = tomllib.loads(text)
    for section, keys in sim.items():
        for key, value in keys.items():
            if key != "api_key":
                assert merged[section][key] == tomllib.loads(f"v = {value}")["v"], (section, key)
    return text


def probe_rules(count: int) -> str:
    rules = "".join(
        f"  - id: reload-probe-{n}\n    on: feed\n    feed: quote\n    down_for: 1h\n"
        "    notify: [admin]\n"
        for n in range(1, count + 1)
    )
    return f"rules:\n{rules}"


@pytest.fixture(scope="module")
def configured(machine: Container, simulator: dict[str, dict[str, str]]) -> Container:
    """docs/install.md, sections 2 and 3 up to the start: /etc/notifier and the unit file."""
    machine.sh(f"""
        cd {SRC}
        install -d -m 0755 /etc/notifier /etc/notifier/rules
        install -d -m 0700 /etc/notifier/credentials
        install -m 0644 systemd/notifier.toml /etc/notifier/notifier.toml
        install -m 0600 systemd/apprise.yml   /etc/notifier/apprise.yml
        cp rules/*.yaml /etc/notifier/rules/
    """)  # fmt: skip
    shipped = (ROOT / "systemd" / "notifier.toml").read_text(encoding="utf-8")
    machine.write("/etc/notifier/notifier.toml", point_at(shipped, simulator))
    for section, keys in simulator.items():
        key = tomllib.loads(f"v = {keys['api_key']}")["v"]
        machine.write(f"/etc/notifier/credentials/{section}_api_key", f"{key}\n", mode="0600")
    # The shipped channels are internet placeholders: deliver to stdout (the journal) instead.
    machine.write(
        "/etc/notifier/apprise.yml",
        "version: 1\nurls:\n  - console://:\n      - tag: phone, admin, email, team\n",
        mode="0600",
    )
    machine.write(PROBE, probe_rules(1))
    machine.run("ln", "-s", PROBE, PROBE_LINK)
    config = "/etc/notifier/notifier.toml"
    checked = machine.run("/opt/notifier/bin/notifier", "check", "-c", config)
    assert "ok" in checked.stdout + checked.stderr, checked
    machine.run("cp", f"{SRC}/systemd/{UNIT}.service", "/etc/systemd/system/")
    machine.systemctl("daemon-reload")
    verify = machine.run("systemd-analyze", "verify", f"/etc/systemd/system/{UNIT}.service")
    assert verify.stderr.strip() == "", verify.stderr
    return machine


@contextlib.contextmanager
def debug_log(machine: Container) -> Iterator[None]:
    """systemd logs each sd_notify message it gets only at debug level."""
    machine.run("systemd-analyze", "log-level", "debug")
    try:
        yield
    finally:
        machine.run("systemd-analyze", "log-level", "info")


def notifications(machine: Container, cursor: str, pid: str) -> list[str]:
    """sd_notify messages from ``pid`` that systemd accepted after ``cursor``."""
    pattern = re.compile(rf"Got notification message from PID {pid} \((.*)\)")
    lines = machine.journal(cursor, "-u", f"{UNIT}.service").splitlines()
    return [m[1] for line in lines if (m := pattern.search(line))]


@pytest.fixture
def active(configured: Container) -> str:
    """The unit running (started if it is not); returns its main PID."""
    if configured.prop(UNIT, "ActiveState") != "active":
        configured.systemctl("start", UNIT, timeout=120)
    return configured.prop(UNIT, "MainPID")


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000  # the container shares it


# -- the checks -------------------------------------------------------------------------------


def test_start_reports_ready_and_the_daemons_status_line(configured: Container) -> None:
    machine = configured
    cursor = machine.cursor()
    with debug_log(machine):
        machine.systemctl("enable", "--now", UNIT, timeout=120)  # returns once READY=1 came
    props = machine.show(UNIT, "ActiveState", "SubState", "MainPID", "UnitFileState")
    assert props == props | {"ActiveState": "active", "SubState": "running",
                             "UnitFileState": "enabled"}  # fmt: skip
    pid = props["MainPID"]
    assert "READY=1" in notifications(machine, cursor, pid)
    lines = machine.journal(cursor, "-u", f"{UNIT}.service").splitlines()
    ready = next(i for i, ln in enumerate(lines) if f"PID {pid} (READY=1" in ln)
    started = next(i for i, ln in enumerate(lines) if ln.startswith(f"Started {UNIT}.service"))
    assert ready < started, "systemd reported the start before the daemon's READY=1"
    machine.wait_journal(cursor, r"notifier \S+ started: \d+ rules", "-u", f"{UNIT}.service")

    def all_feeds_up() -> str | None:  # STATUS= is refreshed at least every 5 s
        text = machine.prop(UNIT, "StatusText")
        return text if text.startswith("feeds 3/3 up") else None

    status = wait_until(all_feeds_up, 60, "StatusText saying every feed is up")
    assert re.fullmatch(r"feeds 3/3 up, \d+ rules, \d+ firing.*", status), status


def test_sandbox_dynamic_uid_read_only_os_and_exposure(configured: Container, active: str) -> None:
    machine, pid = configured, active
    status = dict(
        line.split(":\t", 1)
        for line in machine.run("cat", f"/proc/{pid}/status").stdout.splitlines()
        if ":\t" in line
    )
    uid = int(status["Uid"].split()[0])
    assert 61184 <= uid <= 65519, f"UID {uid} is not a DynamicUser= UID"
    assert machine.run("stat", "-c", "%u", "/var/lib/private/notifier").stdout.strip() == str(uid)
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"
    assert int(status["CapEff"], 16) == 0
    assert int(status["CapBnd"], 16) == 0

    # In the service's own mount namespace (even for root): the OS is read-only, the state
    # directory is writable.
    usr = machine.run("nsenter", "-t", pid, "-m", "--", "touch", "/usr/.sandbox-probe", check=False)
    assert usr.returncode != 0
    assert "Read-only file system" in usr.stderr, usr.stderr
    machine.run("nsenter", "-t", pid, "-m", "--", "sh", "-ec",
                "touch /var/lib/notifier/.probe; rm /var/lib/notifier/.probe")  # fmt: skip
    assert machine.run("test", "-e", "/usr/.sandbox-probe", check=False).returncode != 0

    report = machine.run("systemd-analyze", "security", UNIT, "--no-pager").stdout
    exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", report)
    assert exposure is not None, report
    assert float(exposure[1]) <= MAX_EXPOSURE, report[-400:]

    # apprise works in there: an alert from the simulated feeds reached the console:// channel.
    machine.wait_journal("", r"Sent Console notification", "-u", f"{UNIT}.service", timeout=60)


def test_reload_cycles_reloading_ready_and_applies_a_rules_change(
    configured: Container, active: str
) -> None:
    machine, pid = configured, active
    rules_before = int(re.search(r"(\d+) rules", machine.prop(UNIT, "StatusText"))[1])  # type: ignore[index]
    for attempt in (2, 3):  # a second go only if the 60 s rescan came between save and reload
        saved = machine.cursor()
        machine.write(PROBE, probe_rules(attempt))
        cursor = machine.cursor()
        with debug_log(machine):
            machine.systemctl("reload", UNIT)
            machine.wait_journal(cursor, rf"PID {pid} \(READY=1", "-u", f"{UNIT}.service")
        loaded = machine.wait_journal(cursor, r"rules loaded \(", "-u", f"{UNIT}.service")
        if "rescan" not in machine.journal(saved, "-u", f"{UNIT}.service"):
            break
    assert "(signal)" in loaded, loaded
    expected = rules_before + attempt - 1
    assert f"rules loaded (signal): {expected} active" in loaded, loaded
    sent = notifications(machine, cursor, pid)
    assert sent[0].startswith("RELOADING=1"), sent
    assert sent.index("READY=1") > 0, sent
    props = machine.show(UNIT, "ActiveState", "MainPID", "NRestarts")
    assert props == {"ActiveState": "active", "MainPID": pid, "NRestarts": "0"}
    wait_until(lambda: f", {expected} rules," in machine.prop(UNIT, "StatusText"), 30, "StatusText")


def test_watchdog_pings_keep_the_daemon_running_past_watchdog_sec(
    configured: Container, active: str
) -> None:
    machine, pid = configured, active
    props = machine.show(UNIT, "WatchdogUSec", "ActiveEnterTimestampMonotonic", "NRestarts")
    assert props["WatchdogUSec"] == f"{WATCHDOG_SEC}s"
    since = int(props["ActiveEnterTimestampMonotonic"])
    wait = since + (WATCHDOG_SEC + 5) * 1_000_000 - monotonic_usec()
    if wait > 0:
        time.sleep(wait / 1_000_000)
    after = machine.show(UNIT, "ActiveState", "MainPID", "NRestarts", "WatchdogTimestampMonotonic")
    assert after["ActiveState"] == "active"
    assert after["MainPID"] == pid
    assert after["NRestarts"] == props["NRestarts"]
    last_ping = int(after["WatchdogTimestampMonotonic"])
    # WATCHDOG=1 kept arriving: the last one came well after the start, and recently.
    assert last_ping - since > (WATCHDOG_SEC - 10) * 1_000_000
    assert monotonic_usec() - last_ping < WATCHDOG_SEC * 1_000_000
    assert "Watchdog timeout" not in machine.journal("", "-u", f"{UNIT}.service")


def test_watchdog_kills_a_hung_daemon_and_restarts_it(configured: Container, active: str) -> None:
    machine, pid = configured, active
    restarts = int(machine.prop(UNIT, "NRestarts"))
    cursor = machine.cursor()
    machine.run("kill", "-STOP", pid)  # the event loop stops: no more WATCHDOG=1
    timeout = WATCHDOG_SEC + 30
    machine.wait_journal(cursor, r"Watchdog timeout", "-u", f"{UNIT}.service", timeout=timeout)
    machine.wait_journal(cursor, r"Failed with result 'watchdog'", "-u", f"{UNIT}.service")

    def restarted() -> dict[str, str] | None:
        props = machine.show(UNIT, "ActiveState", "MainPID", "NRestarts")
        return props if props["ActiveState"] == "active" and props["MainPID"] != pid else None

    props = wait_until(restarted, RESTART_SEC + 60, "the restart after the watchdog kill")
    assert int(props["NRestarts"]) == restarts + 1
    assert machine.run("kill", "-0", pid, check=False).returncode != 0  # the hung one is gone


def test_stop_sends_stopping_and_exits_cleanly(configured: Container, active: str) -> None:
    machine, pid = configured, active
    cursor = machine.cursor()
    with debug_log(machine):
        machine.systemctl("stop", UNIT, timeout=120)
    assert "STOPPING=1" in notifications(machine, cursor, pid)
    props = machine.show(UNIT, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    # Result=success: no SIGKILL after TimeoutStopSec=, no failure; exited (CLD_EXITED=1) 0.
    assert props == {"ActiveState": "inactive", "Result": "success",
                     "ExecMainCode": "1", "ExecMainStatus": "0"}  # fmt: skip
    machine.wait_journal(cursor, r"notifier stopped$", "-u", f"{UNIT}.service")


def test_config_error_exits_78_and_is_not_restarted(configured: Container) -> None:
    machine = configured
    machine.systemctl("stop", UNIT)
    config = "/etc/notifier/notifier.toml"
    good = machine.run("cat", config).stdout
    machine.write(config, "no_such_key = 1\n" + good)
    cursor = machine.cursor()
    try:
        started = machine.run("systemctl", "start", UNIT, check=False, timeout=120)
        assert started.returncode != 0
        time.sleep(RESTART_SEC + 2)  # a restart would have happened by now
        props = machine.show(UNIT, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
        assert props == {"ActiveState": "failed", "Result": "exit-code",
                         "ExecMainStatus": "78", "NRestarts": "0"}  # fmt: skip
        line = machine.wait_journal(cursor, r"invalid configuration", "-u", f"{UNIT}.service")
        assert "no_such_key" in line
        assert (
            len(re.findall(r"Starting notifier", machine.journal(cursor, "-u", f"{UNIT}.service")))
            == 1
        )
    finally:
        machine.write(config, good)
        machine.systemctl("reset-failed", UNIT, check=False)
