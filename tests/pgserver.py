"""A throw-away PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` in a temporary directory,
on a free loopback port, its unix socket in that directory too.

PostgreSQL refuses to run as root; as root the server runs as the ``postgres`` user the
Debian package creates (``runuser``). ``unmet()`` says why it cannot run here, for a skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import psycopg

__all__ = ["PgServer", "unmet"]

SUPERUSER = "notifier"


def _bin_dir() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def _run_as() -> str | None:
    """The user to run the server as: None for ourselves; ``postgres`` when we are root."""
    return "postgres" if os.geteuid() == 0 else None


def unmet() -> str | None:
    """Why a server cannot be started here, or None."""
    if _bin_dir() is None:
        return (
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; "
            "apt-get install postgresql)"
        )
    user = _run_as()
    if user is not None:
        try:
            pwd.getpwnam(user)
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser (util-linux) is missing"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster: ``start``, ``stop``, ``restart``, a fresh database per test."""

    def __init__(self, *, fsync: bool = False) -> None:
        bin_dir = _bin_dir()
        assert bin_dir is not None, unmet()
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="notifier-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.fsync = fsync
        self._databases = 0
        user = _run_as()
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._user = user

    def _cmd(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv: Sequence[str] = [str(a) for a in args]
        if self._user is not None:
            argv = ["runuser", "-u", self._user, "--", *argv]
        return subprocess.run(  # noqa: S603 - fixed argv of PostgreSQL's own tools
            argv, check=check, capture_output=True, text=True, cwd=self.root, timeout=120
        )

    def init(self) -> None:
        self._cmd(
            self.bin / "initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust",
            "--no-sync", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=100"
        )
        self._cmd(
            self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "server.log",
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._cmd(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast`` closes every connection; ``immediate`` is a crash) and start."""
        self.stop(mode)
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "server.log").read_text(errors="replace")[-4000:]
        return ""

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
