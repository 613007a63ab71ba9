"""Hostile rule files (issue 11, item 4): each is one located error of its own file, through
``notifier check``, the real ``notifier run`` process and the running daemon's reload; none
crashes, stalls or exhausts the loader, and the other files keep loading."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notifier.cli import main
from notifier.daemon import running
from notifier.simulator import Simulator
from tests.receivers import HttpReceiver, wait_until
from tests.support import daemon_settings, in_background
from tests.test_e2e_ops import clean_env
from tests.test_e2e_reload import active_ids, rule, save_atomically

PYTHON = sys.executable

GOOD = """\
rules:
  - id: good
    on: feed
    feed: quote
    down_for: 5m
"""


def billion_laughs() -> str:
    """Nine levels of nine aliases each: 387 million values once expanded, in 350 bytes."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join([*lines, "rules: *i", ""])


# name -> (text, the one error `check` prints after "<path>:")
HOSTILE: dict[str, tuple[str, str]] = {
    "bigint": (
        "rules:\n  - id: a\n    on: quote\n    pair: {in: SOL, out: USDC, amount: "
        + "1" * 4301
        + "}\n    above: 1\n",
        "4:40: YAML: an integer of 4301 digits; at most 100 are accepted",
    ),
    "deep": (
        "rules: " + "[" * 300 + "]" * 300 + "\n",
        "1:57: YAML: values nested deeper than 50 levels",
    ),
    "merge": (
        "base: &b\n  on: feed\nrules:\n  - <<: *b\n    id: m\n    feed: quote\n",
        "4:5: YAML: merge keys (<<) are not supported; write the keys out in each rule",
    ),
    "complex-key": (
        "rules:\n  - ? - id: x\n    : 1\n",
        "2:7: YAML: a key must be a plain word such as id or on, not a list or mapping",
    ),
    "laughs": (
        billion_laughs(),
        "5:4: YAML: aliases (*name) expand to more than 10,000 values; write the values out",
    ),
    "cycle": (
        "rules: &a\n  - *a\n",
        "1:8: YAML: an alias (*name) refers to a value that contains it",
    ),
    "control-char": (
        'rules:\n  - id: a\n    on: quote\n    title: "x\x07y"\n',
        "4:14: YAML: unacceptable character #x0007: special characters are not allowed",
    ),
    "deep-expression": (
        "rules:\n  - id: a\n    on: feed\n    feed: quote\n    when: "
        + "(" * 400
        + "1"
        + ")" * 400
        + "\n",
        "2:5: cannot compile this rule: nested too deeply",
    ),
    "huge-comment": (
        "#" + "x" * 10_000_000 + "\nrules: []\n",
        "1:1: larger than 1,000,000 bytes (the rules_max_bytes setting); not read",
    ),
}


def write_hostile(directory: Path) -> dict[Path, str]:
    """Every hostile file in ``directory``; each path with the error line ``check`` prints."""
    expected = {}
    for name, (text, error) in HOSTILE.items():
        path = directory / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        expected[path] = f"{path}:{error}"
    return expected


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with built-in defaults, its rules dir in tmp_path; no NOTIFIER_* variables."""
    for name in [k for k in os.environ if k.startswith("NOTIFIER_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "notifier.toml"
    path.write_text(f'rules_dir = "{tmp_path / "rules"}"\n', encoding="utf-8")
    (tmp_path / "rules").mkdir()
    return path


@pytest.mark.parametrize("name", list(HOSTILE))
def test_check_reports_a_hostile_file_as_one_located_error(
    name: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``notifier check`` prints one ``path:line:col: message`` line and exits 1, no traceback."""
    text, error = HOSTILE[name]
    path = config.parent / "rules" / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["check", "-c", str(config), str(path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{path}:{error}"
    assert "Traceback" not in out


def test_the_file_size_limit_is_a_setting(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``rules_max_bytes`` sets the size beyond which a rule file is refused unread."""
    path = config.parent / "rules" / "good.yaml"
    path.write_text(GOOD, encoding="utf-8")
    config.write_text(config.read_text(encoding="utf-8") + "rules_max_bytes = 40\n")
    assert main(["check", "-c", str(config), str(path)]) == 1
    expected = f"{path}:1:1: larger than 40 bytes (the rules_max_bytes setting); not read"
    assert capsys.readouterr().out.splitlines()[0] == expected


def test_run_starts_with_hostile_files_and_loads_the_good_one(config: Path) -> None:
    """``notifier run`` starts (no crash loop), logs each file's located error and runs the
    good file's rule; SIGTERM stops it with exit 0."""
    rules_dir = config.parent / "rules"
    (rules_dir / "good.yaml").write_text(GOOD, encoding="utf-8")
    expected = write_hostile(rules_dir)
    config.write_text(
        config.read_text(encoding="utf-8")
        + f'state_dir = "{config.parent / "state"}"\n'
        + f'apprise_config = "{config.parent / "apprise.yml"}"\n'
        + '[http]\nlisten = ""\n'
        + "[fusion]\nenabled = false\n[quotes]\nenabled = false\n[intents]\nenabled = false\n",
        encoding="utf-8",
    )
    (config.parent / "apprise.yml").write_text(
        "urls:\n  - json://127.0.0.1:9/x:\n      tag: admin\n", encoding="utf-8"
    )
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [PYTHON, "-m", "notifier", "run", "-c", str(config)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=clean_env(), text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if " started: " in line:
                proc.terminate()
        proc.wait(timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, lines
    text = "\n".join(lines)
    assert "Traceback" not in text
    assert f"1 active from {len(expected) + 1} file(s), {len(expected)} file(s) with errors" in text
    missing = [error for error in expected.values() if error not in text]
    assert not missing, text


def slow_to_parse(rules: int) -> str:
    """Many rules, then a second ``rules:`` key: the whole text is parsed before the error."""
    item = "  - id: r{n}\n    on: feed\n    feed: quote\n    down_for: {n}s\n"
    return "rules:\n" + "".join(item.format(n=n) for n in range(rules)) + "rules: []\n"


async def test_hostile_files_saved_at_runtime_neither_stall_nor_stop_reloads(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """Saving every hostile file and a slow one into the running daemon's rules dir: each is
    its own located error, the event loop keeps ticking while they parse, and a later edit of
    a good file still goes live."""
    settings = daemon_settings(tmp_path, sim, receiver, rule("a", 300))
    rules_dir = settings.rules_dir
    gaps: list[float] = []

    async def tick() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            gaps.append(time.perf_counter() - started)

    async with running(settings) as daemon, in_background(tick()):
        await daemon.watching.wait()
        slow = rules_dir / "slow.yaml"
        save_atomically(slow, slow_to_parse(10_000))
        expected = write_hostile(rules_dir)
        expected[slow] = f'{slow}:{10_000 * 4 + 2}:1: YAML: found duplicate key "rules"'

        def reported() -> set[str]:
            report = daemon.last_reload
            return {str(e) for e in report.errors} if report else set()

        await wait_until(lambda: len(reported()) >= len(expected), timeout=90)
        for path, error in expected.items():
            assert any(e.startswith(error) for e in reported()), (path, reported())
        save_atomically(rules_dir / "rules.yaml", rule("b", 300))
        await wait_until(lambda: active_ids(daemon) == {"b"}, timeout=30)
    print(f"longest loop gap {max(gaps) * 1000:.0f} ms over {len(gaps)} ticks")
    assert max(gaps) < 2.0  # parsing slow.yaml alone holds the GIL several seconds in all


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("repeat: 1ms", "repeat: at least 1m (got 1ms)"),
        ("repeat: 59s", "repeat: at least 1m (got 59s)"),
        ("repeat: 30", "repeat: at least 1m (got 30s)"),
        ("for: 500ms", "for: at least 1s (got 500ms)"),
        ("cooldown: 0", "cooldown: at least 1s (got 0s)"),
    ],
)
def test_check_refuses_periods_below_their_minimum(
    line: str, error: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``repeat: 1ms`` once sent a message per evaluation; periods have minimums (repeat 1m;
    for, cooldown, overdue 1s), each a located error at the value."""
    path = config.parent / "rules" / "short.yaml"
    path.write_text(GOOD + f"    {line}\n", encoding="utf-8")
    assert main(["check", "-c", str(config), str(path)]) == 1
    column = 5 + line.index(":") + 2
    assert capsys.readouterr().out.splitlines()[0] == f"{path}:6:{column}: {error}"


def test_check_refuses_an_overdue_below_one_second(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An intent rule's ``overdue`` has the same one-second minimum."""
    path = config.parent / "rules" / "intent.yaml"
    path.write_text("rules:\n  - id: late\n    on: intent\n    overdue: 10ms\n", encoding="utf-8")
    assert main(["check", "-c", str(config), str(path)]) == 1
    assert (
        capsys.readouterr().out.splitlines()[0] == f"{path}:4:14: overdue: at least 1s (got 10ms)"
    )


def test_minimum_periods_are_accepted(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The minimums themselves load."""
    path = config.parent / "rules" / "edge.yaml"
    path.write_text(GOOD + "    repeat: 1m\n    for: 1s\n    cooldown: 1s\n", encoding="utf-8")
    assert main(["check", "-c", str(config), str(path)]) == 0, capsys.readouterr().out
