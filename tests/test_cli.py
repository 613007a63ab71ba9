"""The ``notifier`` command line: ``check`` reports every located error, usage errors exit 2,
``simulate`` prints a config that reaches a live simulator."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import aiohttp
import pytest

from notifier.cli import main
from notifier.config import Settings

PYTHON = sys.executable

GOOD_PRICES = """\
rules:
  - id: sol-above-200
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 200
"""
GOOD_INTENTS = """\
rules:
  - id: intent-done
    on: intent
    to: [Finished]
    title: "intent {{ intent_id }} finished"
"""
BROKEN_PRICES = """\
rules:
  - id: sol-above-200
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 200
    bogus: 1
  - id: sol-below-150
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    below: 150
    severity: loud
"""
BROKEN_INTENTS = """\
rules:
  - id: intent-done
    on: intent
    to: [Finished]
    title: "{{ status "
  - id: intent-late
    on: intent
    overdue: 1h
    when: age >
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config file (built-in defaults), and no NOTIFIER_* variables in the way."""
    for name in [k for k in os.environ if k.startswith("NOTIFIER_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = tmp_path / "notifier.toml"
    path.write_text("", encoding="utf-8")
    return path


def rules_dir(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    for name, text in files.items():
        (directory / name.replace("_", ".")).write_text(text, encoding="utf-8")
    return directory


def child_env() -> dict[str, str]:
    """This process's environment without NOTIFIER_* variables, for a child ``notifier``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [PYTHON, "-m", "notifier", *args],
        capture_output=True, text=True, env=child_env(), timeout=30, check=False,
    )  # fmt: skip


def test_check_good_rules_dir_exits_0(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid rule files: nothing on stdout, an "ok" summary, exit 0."""
    directory = rules_dir(tmp_path, prices_yaml=GOOD_PRICES, intents_yml=GOOD_INTENTS)
    assert main(["check", "-c", str(config), str(directory)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "checked 2 rule file(s): ok\n"


def test_check_prints_every_error_of_every_file_located(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two broken files: all four errors, each as ``path:line:col: message``, then exit 1."""
    directory = rules_dir(tmp_path, prices_yaml=BROKEN_PRICES, intents_yml=BROKEN_INTENTS)
    assert main(["check", "-c", str(config), str(directory)]) == 1
    out, err = capsys.readouterr()
    prices, intents = directory / "prices.yaml", directory / "intents.yml"
    assert sorted(out.splitlines()) == sorted(
        [
            f"{prices}:6:5: unknown key 'bogus'",
            f"{prices}:11:15: severity: Input should be 'info', 'success', 'warning' or 'failure'",
            f"{intents}:5:12: title: unexpected end of template, "
            "expected 'end of print statement'.",
            f"{intents}:9:11: when: unexpected end of expression",
        ]
    )
    assert err == "checked 2 rule file(s): 4 error(s)\n"


def test_check_duplicate_id_across_files_names_both_places(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An id used in two files is an error at the second place that names the first."""
    directory = rules_dir(tmp_path, a_yaml=GOOD_PRICES, b_yml=GOOD_PRICES + GOOD_INTENTS[7:])
    assert main(["check", "-c", str(config), str(directory)]) == 1
    out, _ = capsys.readouterr()
    first, second = directory / "a.yaml", directory / "b.yml"
    assert out == f"{second}:2:9: duplicate rule id 'sol-above-200' (first at {first}:2:9)\n"


def test_check_of_a_missing_path_is_an_error(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path that does not exist is reported, not skipped."""
    missing = tmp_path / "nowhere.yaml"
    assert main(["check", "-c", str(config), str(missing)]) == 1
    assert capsys.readouterr().out == f"{missing}: no such file or directory\n"


def test_check_reports_an_unusable_http_listen(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``check`` flags the listen address that ``run`` would refuse with exit 78, counted as a
    config error, not as a rule-file error."""
    config.write_text('[http]\nlisten = "nope"\n', encoding="utf-8")
    directory = rules_dir(tmp_path, prices_yaml=GOOD_PRICES)
    assert main(["check", "-c", str(config), str(directory)]) == 1
    out, err = capsys.readouterr()
    assert (
        out == f"{config}: http.listen: 'nope' is not host:port (e.g. 127.0.0.1:9310, [::1]:9310)\n"
    )
    assert err == "checked 1 rule file(s): ok; config: 1 error(s)\n"


def test_run_refuses_a_tracked_intent_id_that_is_not_an_id(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``intents.track = [".."]`` exits 78 naming the key, before anything starts."""
    config.write_text('[intents]\ntrack = ["ok-1", ".."]\n', encoding="utf-8")
    assert main(["run", "-c", str(config)]) == 78
    assert "intents.track.1: Value error, invalid intent id '..'" in capsys.readouterr().err


def test_help_lists_every_command_and_exits_0() -> None:
    """``--help`` names every command of SPEC §2 and exits 0."""
    result = run("--help")
    assert result.returncode == 0
    for command in ("run", "check", "demo", "simulate", "notify-test", "replay", "status",
                    "track", "untrack"):  # fmt: skip
        assert re.search(rf"^    {command}\b", result.stdout, re.MULTILINE), command


@pytest.mark.parametrize("args", [["frobnicate"], [], ["check", "--no-such-option"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    """An unknown command or option, or none at all, prints usage and exits 2."""
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: notifier")
    assert result.stdout == ""


async def test_simulate_prints_config_lines_that_reach_it() -> None:
    """``simulate --port 0`` prints its address and a whole config pointing at itself, with the
    example rules and the ``console://`` channel (the README runs it with ``notifier run``)."""
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "notifier", "simulate", "--host", "127.0.0.1", "--port", "0",
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=child_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        async with asyncio.timeout(30):
            while not lines or not lines[-1].startswith("api_key") or "[intents]" not in lines:
                line = (await proc.stdout.readline()).decode()
                assert line, f"simulate exited early after {lines}"
                lines.append(line.rstrip("\n"))
        header, toml = lines[0], "\n".join(lines[1:])
        assert header.startswith("# notifier simulator on http://127.0.0.1:")
        config = tomllib.loads(toml)
        settings = Settings(**config)  # the printed block is a valid notifier config
        assert (settings.rules_dir, settings.state_dir) == (Path("rules"), Path("state"))
        assert "console://" in settings.apprise_config.read_text(encoding="utf-8")
        base = settings.intents.url
        assert header.split()[4] == base
        assert settings.quotes.url == base.replace("http://", "ws://") + "/api/v1/stream"
        key = settings.intents.api_key.get_secret_value()
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base}/v1/intents/unknown-id", headers={"X-Api-Key": key}) as response,
        ):
            assert response.status == 404  # the simulator answers, as Changelly would
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    ("how", "tried"),
    [("NOTIFIER_CONFIG", "http://127.0.0.1:9"), ("-c", "http://127.0.0.1:9"),
     ("--url", "http://127.0.0.1:8")],
)  # fmt: skip
def test_status_finds_the_daemon_as_the_readme_says(
    how: str, tried: str, config: Path, tmp_path: Path
) -> None:
    """``status`` asks ``--url``, else ``http.listen`` of ``-c FILE`` or ``$NOTIFIER_CONFIG``."""
    config.write_text('[http]\nlisten = "127.0.0.1:9"\n', encoding="utf-8")  # nothing listens
    args = {"NOTIFIER_CONFIG": [], "-c": ["-c", str(config)],
            "--url": ["-c", str(config), "--url", "http://127.0.0.1:8"]}[how]  # fmt: skip
    env = child_env() | ({"NOTIFIER_CONFIG": str(config)} if how == "NOTIFIER_CONFIG" else {})
    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [PYTHON, "-m", "notifier", "status", *args],
        capture_output=True, text=True, env=env, timeout=30, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.rstrip().endswith(f"tried {tried}")
