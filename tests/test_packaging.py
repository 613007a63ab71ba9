"""The installed package stands on its own: a wheel built from this tree, installed into a
fresh virtualenv, runs ``notifier demo`` with the example rules it ships, from a directory
without ``rules/``; and a demo that sends nothing says so and fails."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.test_e2e_ops import clean_env

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
NEVER_FIRES = """\
rules:
  - id: sol-above-a-million
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 1000000
"""


def run(*args: str | Path, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command in ``cwd`` (never the checkout, whose ``notifier/`` would be imported)."""
    return subprocess.run(  # noqa: S603 - our own interpreters and arguments
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        check=False, env=clean_env(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )  # fmt: skip


def sh(*args: str | Path, cwd: Path) -> str:
    """Run a command, fail the test with its output unless it exits 0; its stdout."""
    result = run(*args, cwd=cwd, timeout=120)
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel of this tree; its bin/ directory.

    The wheel is built offline (``--no-build-isolation``: hatchling from the test extra). The
    dependencies come from the test environment through a ``.pth`` line, which adds that
    site-packages to ``sys.path`` without running its ``.pth`` files, so the editable install
    of this checkout stays out of the new venv.
    """
    tmp = tmp_path_factory.mktemp("wheel")
    sh(PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
       "-w", tmp / "dist", ROOT, cwd=tmp)  # fmt: skip
    (wheel,) = (tmp / "dist").glob("notifier-*.whl")
    venv = tmp / "venv"
    sh(PYTHON, "-m", "venv", "--without-pip", venv, cwd=tmp)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    sh(PYTHON, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-deps",
       wheel, cwd=tmp)  # fmt: skip
    where = sh(venv / "bin" / "python", "-c", "import notifier; print(notifier.__file__)", cwd=tmp)
    assert where.startswith(str(site)), where  # the wheel, not this checkout
    return venv / "bin"


def test_the_installed_demo_uses_the_example_rules_it_ships(
    installed: Path, tmp_path: Path
) -> None:
    """From a directory without ``rules/``, the demo finds the packaged ones and notifies."""
    result = run(installed / "notifier", "demo", "--duration", "9", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "notifier/examples/rules" in result.stdout
    assert re.search(r"^SOL at 20\d\.\d+ USDC$", result.stdout, re.MULTILINE)  # prices.yaml
    sent = re.search(r"done — (\d+) notification\(s\) sent", result.stderr)
    assert sent is not None, result.stderr
    assert int(sent.group(1)) >= 3


def test_a_demo_that_sends_nothing_fails_and_says_why(tmp_path: Path) -> None:
    """Rules that never fire: the demo ends with exit 1 and names the rules dir."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "quiet.yaml").write_text(NEVER_FIRES, encoding="utf-8")
    result = run(PYTHON, "-m", "notifier", "demo", "--duration", "2", "--rules", rules,
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"no notification was sent in 2s with the rules in {rules}" in result.stderr


def test_a_demo_without_rule_files_fails_before_starting(tmp_path: Path) -> None:
    """An empty rules dir: exit 1 at once, naming the directory."""
    result = run(PYTHON, "-m", "notifier", "demo", "--duration", "30", "--rules", tmp_path,
                 cwd=tmp_path, timeout=20)  # fmt: skip
    assert result.returncode == 1
    assert f"no rule files (*.yaml, *.yml) in {tmp_path}" in result.stderr
    assert "done" not in result.stderr


def test_the_installed_package_ships_the_dashboard_assets(installed: Path, tmp_path: Path) -> None:
    """The wheel carries the dashboard's templates and static files (package data), and its
    page template loads from the installed package."""
    code = (
        "from importlib import resources\n"
        "from jinja2 import Environment, PackageLoader\n"
        "base = resources.files('notifier.dashboard')\n"
        "print(*sorted(p.name for d in ('static', 'templates') for p in (base / d).iterdir()))\n"
        "Environment(loader=PackageLoader('notifier.dashboard', 'templates'))"
        ".get_template('page.html')\n"
    )
    names = sh(installed / "python", "-c", code, cwd=tmp_path).split()
    for name in ("dashboard.js", "dashboard.css", "favicon.svg", "page.html", "feeds.html",
                 "alerts.html", "pairs.html", "rules.html", "_macros.html"):  # fmt: skip
        assert name in names
