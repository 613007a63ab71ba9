"""Every ```sh block of the README runs as written on a fresh clone.

Each block runs with ``bash -eu`` in a copy of the repository's files (``git ls-files``: no
``state/``, no ``sim.toml`` left from a run), whose ``.venv`` links to the venv running this
test (the one the first two blocks create). A block is matched to its runner by its first
line, and each runner changes the block only through ``bounded``, which fails when the text
it expects is gone; so a block that changes, stops working or has no runner fails here.

What is not run as written, and why:

- ``python3 -m venv .venv && .venv/bin/pip install -q -e …`` (the two one-liners of the first
  screen): they need PyPI and a minute. ``.ci/run`` runs them on every CI run, and
  tests/test_packaging.py builds the wheel of this tree and installs it into a fresh venv.
  The rest of each line runs: ``notifier demo`` (for 9 s instead of 30: its story has sent
  its notifications by then) and ``pytest`` (``--collect-only``: the full run is this one).
- ``simulate … &`` / ``run``: run whole, on a free port instead of 9320 and with the daemon's
  HTTP API on a free port (``NOTIFIER_HTTP__LISTEN``), so parallel runs do not collide. The
  daemon runs until it printed a notification, then gets SIGTERM, as Ctrl-C would stop it;
  the block's last line then stops the simulator.
- ``bash .ci/run`` is CI itself (and runs this suite): only checked to parse (``bash -n``).
- ``notifier bench`` takes minutes (``--quick`` is run by tests/test_bench_smoke.py): each
  command line must parse with the CLI's own parser, and the ``bench`` extra it installs
  must exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from notifier.cli import _parser
from tests.receivers import wait_until
from tests.test_e2e_ops import clean_env

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)
VENV = Path(sys.prefix)
SOL = "So11111111111111111111111111111111111111112"
USDC = "uSd2czE61Evaf76RNbq4KPpXnkiL3irdzgLFUMe3NoG"
CONSOLE_BLOCK = re.compile(r"^── [A-Z]+ ─+$", re.MULTILINE)


def sh_blocks() -> list[tuple[int, str]]:
    """(line, text) of every ```sh block in the README."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in SH_BLOCK.finditer(text)]


def bounded(block: str, expected: str, replacement: str) -> str:
    """``block`` with ``expected`` replaced; the test fails if the README no longer has it."""
    assert expected in block, f"the README block changed: {expected!r} is gone"
    return block.replace(expected, replacement)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The repository's files as a fresh clone has them, with ``.venv`` linked to this venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    target = tmp_path / "clone"
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():  # a deleted but still listed file is not in a clone
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    (target / ".venv").symlink_to(VENV)
    return target


def bash(script: str, cwd: Path, timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the README's own commands
        ["bash", "-eu", "-c", script],  # noqa: S607
        cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
        env=clean_env(**env),
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the runners -------------------------------------------------------------------------------


def demo_line(block: str, clone: Path) -> None:
    script = bounded(block, "python3 -m venv .venv && .venv/bin/pip install -q -e . && ", "")
    script = bounded(script, "--duration 30", "--duration 9")
    result = bash(script, clone, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules from rules/" in result.stdout
    assert len(CONSOLE_BLOCK.findall(result.stdout)) >= 3, result.stdout
    assert re.search(r"done — [1-9]\d* notification\(s\) sent", result.stderr), result.stderr


def pytest_line(block: str, clone: Path) -> None:
    script = bounded(
        block, "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && ", ""
    )
    script = bounded(
        script, ".venv/bin/pytest", ".venv/bin/pytest --collect-only -q -p no:cacheprovider"
    )
    result = bash(script, clone, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests/test_readme.py::" in result.stdout
    assert re.search(r"^\d+ tests collected", result.stdout, re.MULTILINE), result.stdout


def simulate_and_run(block: str, clone: Path) -> None:
    port = free_port()
    script = bounded(block, "--port 9320", f"--port {port}")
    asyncio.run(_simulate_and_run(script, clone, port))


async def _simulate_and_run(script: str, clone: Path, port: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-eu", "-c", script, cwd=clone, env=clean_env(NOTIFIER_HTTP__LISTEN="127.0.0.1:0"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # the whole block can be killed if the test fails
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    stderr = asyncio.create_task(proc.stderr.read())
    try:
        async with asyncio.timeout(60):
            await _wait_for_daemon(proc)
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"http://127.0.0.1:{port}/_sim/quotes/set",
                    json={"in_mint": SOL, "out_mint": USDC, "amount": "1000000000",
                          "amount_out": 201_500_000},
                ) as response,
            ):  # fmt: skip
                assert response.status == 200  # SOL at 201.5: sol-above-200 fires, if not yet
            out = ""
            while not CONSOLE_BLOCK.search(out):
                line = await proc.stdout.readline()
                assert line, f"the block ended before a notification: {out}"
                out += line.decode()
            os.kill(await _wait_for_daemon(proc), signal.SIGTERM)
            out += (await proc.stdout.read()).decode()
            code = await proc.wait()
        errors = (await stderr).decode()
        assert code == 0, out + errors
        assert "notifier stopped" in errors
        assert "Traceback" not in errors
        assert (clone / "state").is_dir()  # state_dir = "state", from the repository's root
    finally:
        with contextlib.suppress(ProcessLookupError):  # the block's background jobs too, even
            os.killpg(proc.pid, signal.SIGKILL)  # when bash itself failed and left them behind
        await proc.wait()
        stderr.cancel()


async def _wait_for_daemon(shell: asyncio.subprocess.Process) -> int:
    """The pid of the shell's ``notifier run`` child once its HTTP API is up."""
    await wait_until(
        lambda: shell.returncode is not None or _started_daemon(shell.pid) is not None,
        timeout=60,
        interval=0.1,
    )
    daemon = _started_daemon(shell.pid)
    assert daemon is not None, f"the block ended with exit code {shell.returncode}"
    return daemon


def _started_daemon(shell: int) -> int | None:
    for child in [shell, *_children(shell)]:  # bash may exec a last command itself
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"run" in cmdline and _listening(child):
            return child
    return None


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _listening(pid: int) -> bool:
    """Whether the process holds a listening TCP socket (its HTTP API: it started)."""
    try:
        sockets = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    except OSError:
        return False
    inodes = {s[len("socket:[") : -1] for s in sockets if s.startswith("socket:[")}
    table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(row.split()[3] == "0A" and row.split()[9] in inodes for row in table)


def ci(block: str, clone: Path) -> None:
    assert block.strip().startswith("bash .ci/run")
    result = bash("bash -n .ci/run", clone, timeout=10)
    assert result.returncode == 0, result.stderr


def bench(block: str, clone: Path) -> None:
    extras = tomllib.loads((clone / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for line in block.splitlines():
        command = shlex.split(line, comments=True)
        if command[:2] == [".venv/bin/notifier", "bench"]:
            _parser().parse_args(command[1:])  # exits 2 (fails the test) on an unknown option
        elif command[:3] == [".venv/bin/pip", "install", "-e"]:
            extra = re.fullmatch(r"\.\[(\w+)\]", command[3])
            assert extra is not None, line
            assert {"py-spy", "pyinstrument"} <= {
                re.split(r"[<>=]", d)[0] for d in extras[extra.group(1)]
            }
        else:
            pytest.fail(f"no bounded form for README line {line!r}")


RUNNERS: dict[str, Callable[[str, Path], None]] = {
    "python3 -m venv .venv && .venv/bin/pip install -q -e . &&": demo_line,
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' &&": pytest_line,
    ".venv/bin/notifier simulate": simulate_and_run,
    "bash .ci/run": ci,
    ".venv/bin/notifier bench": bench,
}


def runner_for(block: str) -> Callable[[str, Path], None] | None:
    return next((run for start, run in RUNNERS.items() if block.startswith(start)), None)


def test_the_readme_has_a_runner_for_every_sh_block() -> None:
    """A new ```sh block must be given a runner here (and each runner still has its block)."""
    blocks = sh_blocks()
    assert [line for line, text in blocks if runner_for(text) is None] == []
    assert sorted(runner_for(text).__name__ for _, text in blocks) == sorted(  # type: ignore[union-attr]
        run.__name__ for run in RUNNERS.values()
    )


@pytest.mark.parametrize(
    ("line", "block"),
    [pytest.param(line, text, id=f"README.md:{line}") for line, text in sh_blocks()],
)
def test_every_sh_block_of_the_readme_runs(line: int, block: str, clone: Path) -> None:
    """The block runs in a fresh clone as written, or in the bounded form documented above."""
    run = runner_for(block)
    assert run is not None, f"README.md:{line}: no runner for this block"
    run(block, clone)
