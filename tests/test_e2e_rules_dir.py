"""The rules dir itself (issue 11, item 5): missing at start, ``notifier run`` refuses with exit
78 naming ``rules_dir`` and the path; gone at runtime, the last rules keep running with their
state, the daemon says so once and reloads when the directory is back."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from notifier.daemon import running
from notifier.simulator import Simulator
from tests.receivers import HttpReceiver, wait_until
from tests.support import ONE_SOL, SOL, USDC, daemon_settings
from tests.test_e2e_ops import refused_config, run_refused
from tests.test_e2e_reload import active_ids, rule, save_atomically


def test_run_refuses_a_missing_rules_dir_with_exit_78(tmp_path: Path) -> None:
    """No rules dir at start is a configuration error (exit 78, no restart loop), not a
    daemon that runs no rules and exits 0 later."""
    config = refused_config(tmp_path)
    (tmp_path / "rules").rmdir()
    output = run_refused(config)
    assert f"{tmp_path / 'rules'}: rules_dir: no such directory" in output


def test_run_refuses_a_rules_dir_that_is_a_file(tmp_path: Path) -> None:
    """A file where the rules dir should be is refused the same way."""
    config = refused_config(tmp_path)
    (tmp_path / "rules").rmdir()
    (tmp_path / "rules").write_text("rules: []\n", encoding="utf-8")
    output = run_refused(config)
    assert f"{tmp_path / 'rules'}: rules_dir: not a directory" in output


async def test_a_rules_dir_gone_at_runtime_keeps_the_last_rules_until_it_is_back(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Renaming the rules dir away keeps the firing rule firing (no state lost, no second
    message); the daemon says so once (log, status, errors_to) and, when the directory is
    back, loads it, says so and watches it again."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    settings = daemon_settings(tmp_path, sim, receiver, rule("a", 150))
    rules_dir = settings.rules_dir
    gone = f"notifier: rules dir {rules_dir} is gone"
    back = f"notifier: rules dir {rules_dir} is back"
    async with running(settings) as daemon:
        await daemon.watching.wait()
        sim.quotes.set_quote(SOL, USDC, ONE_SOL, 180_000_000)
        await receiver.wait_until(lambda: receiver.delivered_titles() == ["a 180.0"], timeout=20)

        aside = tmp_path / "rules.moved"
        os.rename(rules_dir, aside)
        await receiver.wait_until(lambda: gone in receiver.delivered_titles(), timeout=20)
        status = daemon.status()
        assert status["rules"]["dir_error"] == f"{rules_dir}: rules_dir: no such directory"
        assert status["summary"].endswith(", rules dir missing")
        failed = daemon.metrics.reloads.labels("failed")
        attempts = failed._value.get()
        await wait_until(lambda: failed._value.get() >= attempts + 2, timeout=10)
        assert active_ids(daemon) == {"a"}
        assert [alert["rule"] for alert in daemon.engine.alerts()] == ["a"]
        said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert said == [
            f"{rules_dir}: rules_dir: no such directory; the last rules loaded keep running "
            "until it is back"
        ]

        (aside / "more.yaml").write_text(rule("b", 900), encoding="utf-8")
        os.rename(aside, rules_dir)
        await wait_until(lambda: active_ids(daemon) == {"a", "b"}, timeout=20)
        assert daemon.status()["rules"]["dir_error"] is None
        await receiver.wait_until(lambda: back in receiver.delivered_titles(), timeout=20)
        assert [alert["rule"] for alert in daemon.engine.alerts()] == ["a"]

        save_atomically(rules_dir / "more.yaml", rule("c", 900))  # watched again
        await wait_until(lambda: active_ids(daemon) == {"a", "c"}, timeout=20)
        await daemon.dispatcher_idle()
        titles = receiver.delivered_titles()
        assert (titles.count("a 180.0"), titles.count(gone), titles.count(back)) == (1, 1, 1)
