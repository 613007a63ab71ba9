"""sd_notify datagrams on a real socket, and the shipped unit, config and apprise examples."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import apprise
import pytest

from notifier.config import SECRET_FILES, Settings, load_settings
from notifier.systemd import STATUS_MAX_CHARS, SystemdNotifier, sanitize_status

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "notifier.service"
MAX_EXPOSURE = 2.0


class NotifySocket:
    """A bound AF_UNIX datagram socket standing in for systemd's notification socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(2.0)

    def receive(self) -> bytes:
        return self.sock.recv(65536)

    def nothing_pending(self) -> bool:
        self.sock.settimeout(0.05)
        try:
            self.sock.recv(65536)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(2.0)
        return False


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    # sun_path holds 108 bytes; a long pytest tmp_path would not fit.
    if len(str(tmp_path)) < 80:
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(prefix="sd", dir="/tmp") as short:
        yield Path(short)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def notify_socket(short_dir: Path, clean_env: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    path = short_dir / "notify.sock"
    server = NotifySocket(str(path))
    clean_env.setenv("NOTIFY_SOCKET", str(path))
    yield server
    server.sock.close()


@pytest.fixture
def notifier(notify_socket: NotifySocket) -> Iterator[SystemdNotifier]:
    sd = SystemdNotifier()
    yield sd
    sd.close()


def test_ready_watchdog_stopping_send_exact_datagrams(
    notify_socket: NotifySocket, notifier: SystemdNotifier
) -> None:
    """Each lifecycle call sends exactly its assignment."""
    notifier.ready()
    notifier.watchdog()
    notifier.stopping()
    assert notify_socket.receive() == b"READY=1"
    assert notify_socket.receive() == b"WATCHDOG=1"
    assert notify_socket.receive() == b"STOPPING=1"
    assert notify_socket.nothing_pending()


def test_status_sends_one_sanitised_line(
    notify_socket: NotifySocket, notifier: SystemdNotifier
) -> None:
    """STATUS= carries the text on one line, control characters turned into spaces."""
    notifier.status("3/3 feeds up\n12 rules\r\x00loaded\t 0 firing")
    assert notify_socket.receive() == b"STATUS=3/3 feeds up 12 rules loaded 0 firing"


def test_status_non_latin1_text_arrives_as_utf8(
    notify_socket: NotifySocket, notifier: SystemdNotifier
) -> None:
    """Text sdnotify could not encode itself reaches systemd as UTF-8."""
    notifier.status("SOL → USDC ≥ 200 ✓")
    assert notify_socket.receive() == "STATUS=SOL → USDC ≥ 200 ✓".encode()


def test_reloading_sends_monotonic_timestamp_in_same_datagram(
    notify_socket: NotifySocket, notifier: SystemdNotifier
) -> None:
    """RELOADING=1 and MONOTONIC_USEC= of CLOCK_MONOTONIC travel together."""
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    match = re.fullmatch(rb"RELOADING=1\nMONOTONIC_USEC=(\d+)", notify_socket.receive())
    assert match is not None
    assert before <= int(match.group(1)) <= after


def test_abstract_socket_address_is_supported(clean_env: pytest.MonkeyPatch) -> None:
    """``@name`` in NOTIFY_SOCKET means the abstract namespace."""
    name = f"notifier-test-{uuid.uuid4().hex}"
    server = NotifySocket("\0" + name)
    clean_env.setenv("NOTIFY_SOCKET", "@" + name)
    sd = SystemdNotifier()
    try:
        sd.ready()
        assert server.receive() == b"READY=1"
    finally:
        sd.close()
        server.sock.close()


def test_without_notify_socket_every_call_is_a_silent_no_op(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside systemd nothing is sent, raised or logged."""
    sd = SystemdNotifier()
    assert not sd.enabled
    sd.ready()
    sd.status("x")
    sd.reloading()
    sd.watchdog()
    sd.stopping()
    assert sd.watchdog_interval() is None
    assert caplog.records == []


# sdnotify drops (without closing) its socket when connect() fails; CPython closes it at once,
# but the ResourceWarning reaches pytest as an unraisable exception.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_send_failures_are_logged_once_then_recovery_is_logged(
    short_dir: Path, clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A vanished socket gives one warning, not one per call; it works again once back."""
    path = short_dir / "gone.sock"
    clean_env.setenv("NOTIFY_SOCKET", str(path))
    sd = SystemdNotifier()
    caplog.set_level(logging.INFO, logger="notifier.systemd")
    for _ in range(5):
        sd.watchdog()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(path) in warnings[0].getMessage()

    server = NotifySocket(str(path))
    try:
        sd.ready()
        assert server.receive() == b"READY=1"
        assert any("works again" in r.getMessage() for r in caplog.records)
    finally:
        sd.close()
        server.sock.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ok", "ok"),
        ("  a\n\nb  ", "a b"),
        ("a\u2028b\u2029c\x1bd", "a b c d"),
        ("bad \udcff surrogate", "bad surrogate"),
        ("x" * 500, "x" * (STATUS_MAX_CHARS - 1) + "…"),
    ],
)
def test_sanitize_status(text: str, expected: str) -> None:
    """Status text becomes one printable, capped, UTF-8-encodable line."""
    line = sanitize_status(text)
    assert line == expected
    assert len(line) <= STATUS_MAX_CHARS
    line.encode("utf-8")


def test_watchdog_interval_is_half_of_watchdog_usec(
    notify_socket: NotifySocket, clean_env: pytest.MonkeyPatch
) -> None:
    """systemd's WatchdogSec=30 means a keep-alive every 15 s."""
    clean_env.setenv("WATCHDOG_USEC", "30000000")
    assert SystemdNotifier().watchdog_interval() == 15.0
    clean_env.setenv("WATCHDOG_PID", str(os.getpid()))
    assert SystemdNotifier().watchdog_interval() == 15.0


@pytest.mark.parametrize(
    ("usec", "pid"), [("30000000", "1"), ("0", None), ("soon", None), (None, None)]
)
def test_watchdog_interval_none_when_not_for_us(
    notify_socket: NotifySocket, clean_env: pytest.MonkeyPatch, usec: str | None, pid: str | None
) -> None:
    """Another process's watchdog, a zero or unparsable value, or none: no keep-alives."""
    if usec is not None:
        clean_env.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        clean_env.setenv("WATCHDOG_PID", pid)
    assert SystemdNotifier().watchdog_interval() is None


# The shipped unit and examples.


def _systemd_analyze(min_version: int) -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    out = subprocess.run(  # noqa: S603 -- fixed argv
        [tool, "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.match(r"systemd (\d+)", out)
    if match is None or int(match.group(1)) < min_version:
        pytest.skip(f"systemd-analyze {min_version} or newer needed, found {out[:40]!r}")
    return tool


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit parses without warnings (ExecStart pointed at a binary that exists here)."""
    tool = _systemd_analyze(250)
    copy = tmp_path / "notifier.service"
    copy.write_text(
        UNIT.read_text().replace("/opt/notifier/bin/notifier", "/bin/true"), encoding="utf-8"
    )
    result = subprocess.run(  # noqa: S603 -- fixed argv
        [tool, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_unit_security_exposure_is_at_most_two(tmp_path: Path) -> None:
    """``systemd-analyze security --offline`` rates the unit 2.0 or better."""
    tool = _systemd_analyze(250)
    result = subprocess.run(  # noqa: S603 -- fixed argv
        [tool, "security", "--offline=yes", f"--threshold={int(MAX_EXPOSURE * 10)}", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE
    assert result.returncode == 0, result.stderr


def test_unit_loads_every_credential_the_config_reads() -> None:
    """Each secret file config.py reads is loaded, with a fallback so a missing one is fine."""
    unit = UNIT.read_text(encoding="utf-8")
    for filename in SECRET_FILES.values():
        assert f"LoadCredential={filename}:/etc/notifier/credentials/{filename}" in unit
        assert f"SetCredential={filename}:" in unit
    assert "RestartPreventExitStatus=78" in unit
    assert "Type=notify" in unit


def test_example_config_loads_and_documents_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd/notifier.toml is valid; apart from paths and examples it equals the defaults."""
    for name in list(os.environ):
        if name.startswith("NOTIFIER_") or name in {"CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"}:
            monkeypatch.delenv(name)
    example = load_settings(ROOT / "systemd" / "notifier.toml")
    defaults = Settings()
    for section in ("http", "fusion", "quotes", "intents", "delivery"):
        assert getattr(example, section) == getattr(defaults, section), section
    assert (example.errors_to, example.log_level) == (defaults.errors_to, defaults.log_level)
    assert example.rules_dir.is_absolute()
    assert example.apprise_config.is_absolute()
    assert example.tokens["SOL"].decimals == 9


def test_example_config_names_the_built_in_default_of_every_key_it_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A top-level key of systemd/notifier.toml that differs from the built-in default says
    what that default is in the comment above it (the file claims to show the defaults)."""
    for name in list(os.environ):
        if name.startswith("NOTIFIER_"):
            monkeypatch.delenv(name)
    path = ROOT / "systemd" / "notifier.toml"
    example, defaults = load_settings(path), Settings()
    lines = path.read_text(encoding="utf-8").splitlines()
    changed = [k for k in tomllib.loads("\n".join(lines)) if k in Settings.model_fields
               and getattr(example, k) != getattr(defaults, k)
               and k != "tokens"]  # [tokens.SOL] is marked "example"  # fmt: skip
    assert changed == ["rules_dir", "state_dir", "apprise_config"]
    for key in changed:
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{key} ="))
        above = []
        while at > 0 and lines[at - 1].startswith("#"):
            at -= 1
            above.append(lines[at])
        default = json.dumps(str(getattr(defaults, key)))
        assert f"# Built-in default: {default}." in above, key


def test_example_apprise_config_loads_with_tags() -> None:
    """systemd/apprise.yml parses with apprise and tags channels admin, phone, email."""
    config = apprise.AppriseConfig()
    assert config.add(str(ROOT / "systemd" / "apprise.yml"))
    services = apprise.Apprise()
    services.add(config)
    assert len(services) == 4
    tags = set().union(*(set(map(str, service.tags)) for service in services))
    assert {"admin", "phone", "email"} <= tags


def test_unit_file_limit_leaves_room_for_the_http_connection_cap() -> None:
    """``LimitNOFILE=`` is well above the HTTP API's connection cap and systemd's soft 1024."""
    from notifier.http import MAX_CONNECTIONS

    match = re.search(r"^LimitNOFILE=(\d+)$", UNIT.read_text(encoding="utf-8"), re.MULTILINE)
    assert match is not None
    assert int(match.group(1)) >= max(1024, 8 * MAX_CONNECTIONS)
