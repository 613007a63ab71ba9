"""A real systemd for tests: PID 1 of fresh namespaces on a throw-away overlay of ``/``.

``Container.boot()`` starts the host's own ``/lib/systemd/systemd`` as PID 1 of new pid, mount,
cgroup, uts, ipc and net namespaces. Its root is an overlay of the host's ``/`` whose upper
layer is a tmpfs, so nothing a test installs or writes there reaches the host's disk, and all
of it is gone after ``Container.shutdown()``. Commands run inside with ``nsenter``
(``Container.run``); the container's network is its own loopback.

Three processes, one stage each:

* the test, in the host's namespaces, starts stage 1 in a private mount namespace and later
  talks to the container through nsenter;
* stage 1 mounts the overlay and its own view of the cgroup2 hierarchy, starts stage 2 in a
  fresh child cgroup with ``unshare``, waits for it, then removes that cgroup;
* stage 2 is PID 1 of the new namespaces: it mounts the API file systems, pivots into the
  overlay, drops the capabilities systemd-nspawn drops, and execs systemd.

Standard library only: the stages run as ``python realsystemd.py __stage1|__stage2``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

__all__ = ["Container", "ContainerError", "alive", "unmet_requirements"]

SYSTEMD = Path("/lib/systemd/systemd")
TOOLS = {"unshare": "util-linux", "nsenter": "util-linux", "setpriv": "util-linux",
         "pivot_root": "util-linux", "mount": "mount", "umount": "mount", "tar": "tar"}  # fmt: skip
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENV = ("LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", f"PATH={PATH}")
# systemd-nspawn's default capability set, plus NET_ADMIN (the network namespace is ours).
KEEP_CAPS = frozenset({
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "ipc_owner", "kill",
    "lease", "linux_immutable", "mknod", "net_bind_service", "net_broadcast", "net_raw",
    "net_admin", "setfcap", "setgid", "setpcap", "setuid", "sys_admin", "sys_boot",
    "sys_chroot", "sys_nice", "sys_ptrace", "sys_resource", "sys_tty_config", "audit_control",
    "audit_write",
})  # fmt: skip
# Host services that make no sense in a container without devices, clock or network.
MASKED_UNITS = (
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "systemd-sysctl.service",
    "systemd-modules-load.service",
    "systemd-timesyncd.service",
    "systemd-networkd.service",
    "systemd-resolved.service",
    "getty-static.service",
    "console-getty.service",
)
GENERATOR_DIRS = (
    "/lib/systemd/system-generators",
    "/usr/lib/systemd/system-generators",
    "/etc/systemd/system-generators",
)
KEEP_RUNS = 3

T = TypeVar("T")


class ContainerError(RuntimeError):
    """The container could not be set up, or a command in it failed."""


def unmet_requirements() -> list[str]:
    """What this host lacks to boot the container; empty when it has everything."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if not os.access(SYSTEMD, os.X_OK):
        missing.append(f"{SYSTEMD} (package systemd)")
    missing += [f"{tool} (package {pkg})" for tool, pkg in TOOLS.items() if not shutil.which(tool)]
    if shutil.which("unshare") is not None:
        usage = subprocess.run(["unshare", "--help"], capture_output=True, text=True, check=False)
        if "--cgroup" not in usage.stdout:
            missing.append("unshare --cgroup (util-linux 2.27+)")
    filesystems = Path("/proc/filesystems").read_text(encoding="utf-8").split()
    missing += [f"{fs} in the kernel" for fs in ("overlay", "cgroup2") if fs not in filesystems]
    if not Path("/usr/bin/python3.11").exists():
        missing.append("/usr/bin/python3.11 (packages python3.11, python3.11-venv)")
    else:
        probe = ["/usr/bin/python3.11", "-c", "import ensurepip, venv"]
        if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            missing.append("venv + ensurepip for /usr/bin/python3.11 (package python3.11-venv)")
    return missing


def start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks (it tells a PID reused later apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def alive(pid: int, started: str) -> bool:
    """True while the very process that had ``started`` as its start time exists."""
    return start_time(pid) == started


def wait_until(check: Callable[[], T | None], timeout: float, what: str, step: float = 0.2) -> T:
    """Poll ``check`` until it returns something other than None or False."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(step)


def _sh(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True)


# -- stage 1: a private mount namespace with the overlay; the parent of PID 1 -------------------


def _stage1(run_dir: Path) -> int:
    root, rw, cgmount = run_dir / "root", run_dir / "rw", run_dir / "cg"
    _sh("mount", "--make-rprivate", "/")
    for directory in (root, rw, cgmount):
        directory.mkdir()
    _sh("mount", "-t", "tmpfs", "-o", "mode=755,size=4g", "notifier-realsd-rw", rw)
    (rw / "upper").mkdir()
    (rw / "work").mkdir()
    layers = f"lowerdir=/,upperdir={rw}/upper,workdir={rw}/work"
    _sh("mount", "-t", "overlay", "-o", layers, "notifier-realsd", root)
    _prepare_root(root)

    # A private view of the cgroup2 hierarchy, whatever the host mounted (hybrid or unified).
    _sh("mount", "-t", "cgroup2", "cgroup2", cgmount)
    own = next(
        line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line[:3] == "0::"
    )
    home = cgmount / own.strip("/")
    group = home / f"notifier-realsd.{run_dir.name}"
    group.mkdir()
    # PID 1 is forked in `group`, the root of its cgroup namespace; this process steps back.
    (group / "cgroup.procs").write_text(str(os.getpid()))
    unshare = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--cgroup", "--uts", "--ipc",
         "--net", "--", sys.executable, __file__, "__stage2", str(root),
         str(run_dir / "console.log")],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    (home / "cgroup.procs").write_text(str(os.getpid()))
    children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children")
    pid1 = 0
    for _ in range(300):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid1 = int(children.read_text().split()[0])
            break
        if unshare.poll() is not None:
            break
        time.sleep(0.05)
    # unshare itself leaves the container's cgroup: that tree belongs to systemd now.
    with contextlib.suppress(OSError):
        (home / "cgroup.procs").write_text(str(unshare.pid))
    if pid1:
        (run_dir / "pid1.tmp").write_text(f"{pid1} {start_time(pid1)}\n")
        (run_dir / "pid1.tmp").rename(run_dir / "pid1")
    rc = unshare.wait()
    # PID 1 is gone, and every process of its namespace with it: remove the emptied cgroups.
    for _ in range(100):
        for directory in sorted(group.rglob("*"), key=lambda p: -len(p.parts)):
            if directory.is_dir():
                with contextlib.suppress(OSError):
                    directory.rmdir()
        with contextlib.suppress(OSError):
            group.rmdir()
        if not group.exists():
            break
        time.sleep(0.1)
    print(f"stage1: the container's PID 1 ended, unshare exited {rc}", file=sys.stderr)
    _sh("umount", cgmount)
    if group.exists():
        print(f"stage1: cgroup {group} still populated", file=sys.stderr)
        return 1
    return 0


def _prepare_root(root: Path) -> None:
    """In the overlay only: nothing the host enabled or generates starts in the container."""
    units = root / "etc/systemd/system"
    for wants in [*units.glob("*.wants"), *units.glob("*.requires")]:
        shutil.rmtree(wants)
    generators = root / "etc/systemd/system-generators"
    generators.mkdir(parents=True, exist_ok=True)
    for directory in GENERATOR_DIRS:
        for generator in Path(directory).glob("*"):
            mask = generators / generator.name
            if not mask.is_symlink():
                mask.unlink(missing_ok=True)
                mask.symlink_to("/dev/null")
    for unit in MASKED_UNITS:
        (units / unit).unlink(missing_ok=True)
        (units / unit).symlink_to("/dev/null")
    journald = root / "etc/systemd/journald.conf.d"
    journald.mkdir(parents=True, exist_ok=True)
    (journald / "notifier-realsd.conf").write_text("[Journal]\nStorage=volatile\n")


# -- stage 2: PID 1 of the new namespaces -------------------------------------------------------


def _stage2(root: Path, console: Path) -> None:
    if os.getpid() != 1:
        raise SystemExit("stage2: not PID 1")
    _sh("mount", "--make-rprivate", "/")
    _sh("mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", root / "proc")
    for path in (root / "proc/sys", root / "proc/sysrq-trigger"):  # like nspawn: no sysctl
        if path.exists():
            _sh("mount", "--bind", path, path)
            _sh("mount", "-o", "remount,bind,ro", path)
    _sh("mount", "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", root / "sys")
    _sh("mount", "-t", "cgroup2", "-o", "nosuid,nodev,noexec", "cgroup2", root / "sys/fs/cgroup")
    dev = root / "dev"
    _sh("mount", "-t", "tmpfs", "-o", "mode=755,nosuid,size=64m", "notifier-realsd-dev", dev)
    for name, major, minor in [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7),
                               ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]:  # fmt: skip
        os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(dev / name, 0o666)
    for sub in ("pts", "shm", "mqueue"):
        (dev / sub).mkdir()
    _sh("mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620,gid=5", "devpts",
        dev / "pts")  # fmt: skip
    _sh("mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "shm", dev / "shm")
    for link, target in [("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"),
                         ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")]:  # fmt: skip
        (dev / link).symlink_to(target)
    (dev / "console").touch()
    _sh("mount", "--bind", console, dev / "console")
    _sh("mount", "-t", "tmpfs", "-o", "mode=755,nosuid,nodev,size=256m", "run", root / "run")
    _sh("mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmp", root / "tmp")
    socket.sethostname("notifier-realsd")
    os.chdir(root)
    Path(".oldroot").mkdir(exist_ok=True)
    _sh("pivot_root", ".", ".oldroot")
    os.chdir("/")
    _sh("umount", "-l", "/.oldroot")
    Path("/.oldroot").rmdir()
    # Shared propagation, as nspawn sets up: systemd hands a service its credentials (and
    # sees a service's mounts) through it; without it $CREDENTIALS_DIRECTORY is not readable.
    _sh("mount", "--make-rshared", "/")
    caps = subprocess.run(
        ["setpriv", "--list-caps"], capture_output=True, text=True, check=True
    ).stdout.split()
    drop = ",".join(f"-{cap}" for cap in caps if cap not in KEEP_CAPS)
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    os.execve(
        setpriv,
        [setpriv, "--bounding-set", drop, "--inh-caps", drop, "--",
         str(SYSTEMD), "--system", "--unit=multi-user.target"],
        {"container": "notifier-realsd", "TERM": "dumb"},
    )  # fmt: skip


# -- the test's side ------------------------------------------------------------------------


class Container:
    """One booted container: run commands in it, then ``shutdown()`` (always, in a finaliser)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.run_dir = base / f"{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}"
        self.pid1 = 0
        self._pid1_started = ""
        self._stage1: subprocess.Popen[bytes] | None = None

    # lifecycle ---------------------------------------------------------------------------

    def boot(self, timeout: float = 120.0) -> str:
        """Start systemd and wait until it runs; returns ``is-system-running``'s answer."""
        self.base.mkdir(parents=True, exist_ok=True)
        reap_leftovers(self.base)
        self.run_dir.mkdir()
        (self.run_dir / "owner").write_text(f"{os.getpid()} {start_time(os.getpid())}\n")
        (self.run_dir / "console.log").touch()
        with (self.run_dir / "stage.log").open("wb") as log:
            self._stage1 = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--",
                 sys.executable, __file__, "__stage1", str(self.run_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        stage1 = self._stage1
        pid1_file = self.run_dir / "pid1"

        def pid1_known() -> bool:
            if stage1.poll() is not None:
                raise ContainerError(f"the namespaces could not be set up:\n{self.stage_log()}")
            return pid1_file.exists()

        wait_until(pid1_known, 60, "PID 1 of the container")
        pid, started = pid1_file.read_text().split()
        self.pid1, self._pid1_started = int(pid), started

        def systemd_running() -> str | None:
            if not self.alive():
                raise ContainerError(f"PID 1 died during boot:\n{self.stage_log()}")
            if Path(f"/proc/{self.pid1}/comm").read_text().strip() != "systemd":
                return None
            state = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=60)
            answer = state.stdout.strip()
            return answer if answer in {"running", "degraded"} else None

        return wait_until(systemd_running, timeout, "systemd reaching multi-user.target")

    def alive(self) -> bool:
        return bool(self.pid1) and alive(self.pid1, self._pid1_started)

    def stage_log(self) -> str:
        return (self.run_dir / "stage.log").read_text(errors="replace")[-4000:]

    def shutdown(self) -> list[str]:
        """Power the container off (SIGKILL to its PID 1 as the fallback) and clean up.

        Saves the journal as ``journal.txt`` in the run directory first. Returns what could not
        be cleaned up, empty when nothing is left.
        """
        problems = []
        if self.alive():
            with contextlib.suppress(Exception):
                journal = self.run("journalctl", "-b", "-o", "short-monotonic", check=False)
                (self.run_dir / "journal.txt").write_text(journal.stdout)
            os.kill(self.pid1, signal.SIGRTMIN + 4)  # systemd's "poweroff"
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: not self.alive(), 30, "poweroff")
            if self.alive():
                problems.append(f"poweroff took over 30 s: SIGKILL to PID 1 ({self.pid1})")
                os.kill(self.pid1, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    wait_until(lambda: not self.alive(), 10, "PID 1 killed")
        if self._stage1 is not None:
            try:
                rc = self._stage1.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append("stage 1 did not finish: killed")
                os.killpg(self._stage1.pid, signal.SIGKILL)
                rc = self._stage1.wait()
            if rc != 0:
                problems.append(f"stage 1 exited {rc}: {self.stage_log()[-500:]}")
            # A stage 1 that died early may have left its unshare (and so PID 1) behind: they
            # are in its process group, which holds nothing but what this run started.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._stage1.pid, signal.SIGKILL)
                problems.append("processes of stage 1's group were left: killed")
            self._stage1 = None
        if self.alive():
            problems.append(f"PID 1 ({self.pid1}) is still alive")
        for name in ("root", "rw", "cg"):
            with contextlib.suppress(OSError):
                (self.run_dir / name).rmdir()  # empty mount points: the mounts went with stage 1
        return problems

    # commands ----------------------------------------------------------------------------

    def run(
        self, *argv: str, input: str | None = None, check: bool = True, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` in every namespace of the container, with a clean environment."""
        command = ["nsenter", "-t", str(self.pid1), "-a", "--", "env", "-i", *ENV, *argv]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise ContainerError(
                f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def sh(self, script: str, *, input: str | None = None, check: bool = True) -> str:
        return self.run("sh", "-ec", script, input=input, check=check).stdout

    def systemctl(self, *args: str, check: bool = True, timeout: float = 90) -> str:
        return self.run("systemctl", "--no-pager", *args, check=check, timeout=timeout).stdout

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def prop(self, unit: str, name: str) -> str:
        return self.show(unit, name).get(name, "")

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        self.run("install", "-D", "-m", mode, "/dev/stdin", path, input=text)

    def copy_tree(self, source: Path, dest: str, skip: Iterable[str] = ()) -> None:
        """Copy a host directory into the container (the overlay need not show the source)."""
        skipped = set(skip)
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            tar.add(source, arcname=".", filter=lambda m: None if _skipped(m, skipped) else m)
        subprocess.run(
            ["nsenter", "-t", str(self.pid1), "-m", "--", "sh", "-ec",
             f'mkdir -p "{dest}" && tar -C "{dest}" -xf -'],
            input=data.getvalue(), check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def cursor(self) -> str:
        out = self.run("journalctl", "-q", "-n", "0", "--show-cursor").stdout
        return out.split("-- cursor: ", 1)[1].strip()

    def journal(self, cursor: str, *match: str) -> str:
        """Journal messages after ``cursor`` ("": since boot), one a line, with journalctl matches.

        ``--after-cursor=`` is not used: with matches, journalctl 252 seeks to the first match
        after the cursor and then skips it. ``--cursor=`` includes the cursor's own entry,
        which is dropped here by its ``__CURSOR``.
        """
        start = [f"--cursor={cursor}"] if cursor else []
        out = self.run("journalctl", "--no-pager", "-q", "-o", "json", "--output-fields=MESSAGE",
                       *start, *match).stdout  # fmt: skip
        messages = []
        for line in out.splitlines():
            entry = json.loads(line)
            if entry.get("__CURSOR") == cursor:
                continue
            message = entry.get("MESSAGE") or ""
            if isinstance(message, list):  # journalctl's form for a message that is not UTF-8
                message = bytes(message).decode("utf-8", "replace")
            messages.append(message)
        return "\n".join(messages) + "\n" if messages else ""

    def wait_journal(self, cursor: str, pattern: str, *match: str, timeout: float = 30) -> str:
        """The first line after ``cursor`` matching the ``pattern`` regex, once it is there."""
        regex = re.compile(pattern)

        def found() -> str | None:
            return next((ln for ln in self.journal(cursor, *match).splitlines()
                         if regex.search(ln)), None)  # fmt: skip

        return wait_until(found, timeout, f"journal line {pattern!r}", step=0.3)


def _skipped(member: tarfile.TarInfo, skip: set[str]) -> bool:
    return any(part in skip for part in Path(member.name).parts)


def _power_off(pid: int, started: str) -> None:
    os.kill(pid, signal.SIGRTMIN + 4)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not alive(pid, started), 30, "an old container's poweroff")
    if alive(pid, started):
        os.kill(pid, signal.SIGKILL)


def reap_leftovers(base: Path) -> None:
    """Power off containers of earlier runs whose test process is gone; keep a few logs."""
    finished = []
    for run_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        with contextlib.suppress(OSError, ValueError):
            owner_pid, owner_start = (run_dir / "owner").read_text().split()
            if alive(int(owner_pid), owner_start):
                continue  # a run in progress, maybe another checkout's
        with contextlib.suppress(OSError, ValueError):
            pid, started = (run_dir / "pid1").read_text().split()
            if alive(int(pid), started):
                _power_off(int(pid), started)
        finished.append(run_dir)
    finished.sort(key=lambda p: p.stat().st_mtime)
    for old in finished[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["__stage1"]:
        sys.exit(_stage1(Path(sys.argv[2])))
    if sys.argv[1:2] == ["__stage2"]:
        _stage2(Path(sys.argv[2]), Path(sys.argv[3]))
    sys.exit("usage: realsystemd.py __stage1 RUN_DIR | __stage2 ROOT CONSOLE (internal)")
