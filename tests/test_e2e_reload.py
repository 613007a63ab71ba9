"""Hot reload against the running daemon: edits go live, broken files keep their last good one."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from notifier.daemon import Daemon, running
from notifier.simulator import Simulator
from tests.receivers import HttpReceiver, wait_until
from tests.support import ONE_SOL, SOL, SOL_USDC, USDC, daemon_settings

FEED_RULE = "rules:\n  - id: {id}\n    on: feed\n    feed: quote\n    down_for: 5m\n"


def rule(rule_id: str, above: float, extra: str = "") -> str:
    return (
        "rules:\n"
        f"  - id: {rule_id}\n"
        "    on: quote\n"
        "    pair: {in: SOL, out: USDC, amount: 1}\n"
        f"    above: {above}\n"
        f'    title: "{rule_id} {{{{ price }}}}"\n' + extra
    )


def save_atomically(path: Path, text: str) -> None:
    """Write like editors do: a temp file renamed over the target."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def active_ids(daemon: Daemon) -> set[str]:
    return set(daemon.engine.rules.rules)


async def test_saved_file_goes_live_without_a_signal(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """The watcher picks up an atomic save; the new threshold alerts."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    settings = daemon_settings(tmp_path, sim, receiver, rule("a", 300))
    path = settings.rules_dir / "rules.yaml"
    async with running(settings) as daemon:
        await daemon.watching.wait()
        old = daemon.engine.rules.rules["a"]
        started = time.perf_counter()
        save_atomically(path, rule("a", 150))
        await wait_until(lambda: daemon.engine.rules.rules["a"] is not old, timeout=10)
        latency = time.perf_counter() - started
        sim.quotes.set_quote(SOL, USDC, ONE_SOL, 180_000_000)
        await receiver.wait_until(lambda: receiver.delivered_titles() == ["a 180.0"], timeout=20)
        print(f"reload latency {latency * 1000:.0f} ms")


async def test_add_break_fix_delete_while_running(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """Adding, breaking, fixing and deleting files behaves as SPEC §5 says."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    settings = daemon_settings(tmp_path, sim, receiver, rule("a", 300))
    rules_dir = settings.rules_dir
    async with running(settings) as daemon:
        await daemon.watching.wait()
        save_atomically(rules_dir / "more.yml", rule("b", 250))
        await wait_until(lambda: active_ids(daemon) == {"a", "b"}, timeout=10)

        broken = rule("b", 260).replace("above: 260", "above: [")
        save_atomically(rules_dir / "more.yml", broken)
        await wait_until(
            lambda: any(f["error_count"] for f in daemon.status()["rules"]["files"]), timeout=10
        )
        files = {Path(f["path"]).name: f for f in daemon.status()["rules"]["files"]}
        assert files["more.yml"]["rules"] == ["b"]  # last good version keeps running
        assert files["more.yml"]["errors"][0].startswith(f"{rules_dir / 'more.yml'}:")
        assert active_ids(daemon) == {"a", "b"}

        save_atomically(rules_dir / "more.yml", rule("b", 260))
        await wait_until(
            lambda: not any(f["error_count"] for f in daemon.status()["rules"]["files"]),
            timeout=10,
        )
        (rules_dir / "more.yml").unlink()
        await wait_until(lambda: active_ids(daemon) == {"a"}, timeout=10)
        assert daemon.metrics.rule_files_failed._value.get() == 0


async def test_unchanged_rules_keep_their_state_across_reloads(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """A firing rule whose text did not change stays firing (no second message) on reload."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    settings = daemon_settings(tmp_path, sim, receiver, rule("a", 150))
    async with running(settings) as daemon:
        sim.quotes.set_quote(SOL, USDC, ONE_SOL, 180_000_000)
        await receiver.wait_until(lambda: len(receiver.delivered) == 1, timeout=20)
        save_atomically(settings.rules_dir / "other.yaml", rule("b", 900))
        await wait_until(lambda: active_ids(daemon) == {"a", "b"}, timeout=10)
        assert [a["rule"] for a in daemon.engine.alerts()] == ["a"]
        sim.quotes.set_quote(SOL, USDC, ONE_SOL, 181_000_000)
        await wait_until(lambda: daemon.engine.last_price(SOL_USDC) == 181.0, timeout=20)
        await daemon.dispatcher_idle()
        assert len(receiver.delivered) == 1


async def test_reload_request_and_configmap_style_swap(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """A ConfigMap-style ``..data`` symlink swap is seen; request_reload (SIGHUP) re-reads."""
    settings = daemon_settings(tmp_path, sim, receiver)
    rules_dir = settings.rules_dir
    v1 = rules_dir / "..v1"
    v1.mkdir()
    (v1 / "rules.yaml").write_text(rule("cm1", 300), encoding="utf-8")
    (rules_dir / "..data").symlink_to("..v1")
    (rules_dir / "rules.yaml").symlink_to("..data/rules.yaml")
    async with running(settings) as daemon:
        assert active_ids(daemon) == {"cm1"}
        v2 = rules_dir / "..v2"
        v2.mkdir()
        (v2 / "rules.yaml").write_text(rule("cm2", 300), encoding="utf-8")
        tmp_link = rules_dir / "..data_tmp"
        tmp_link.symlink_to("..v2")
        os.replace(tmp_link, rules_dir / "..data")
        daemon.request_reload()
        await wait_until(lambda: active_ids(daemon) == {"cm2"}, timeout=10)


@pytest.mark.parametrize("name", ["a-new.yaml", "z-new.yaml"])  # sorts before / after the owner
async def test_a_new_file_cannot_take_over_a_running_rule(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver, name: str
) -> None:
    """A new file reusing a running id is the error (not loaded); the running rule keeps its
    pair and alerts; errors_to hears of the error, and once more when the file is fixed."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, 100_000_000)
    settings = daemon_settings(tmp_path, sim, receiver, rule("x", 150))
    owner, intruder = settings.rules_dir / "rules.yaml", settings.rules_dir / name
    async with running(settings) as daemon:
        await daemon.watching.wait()
        running_x = daemon.engine.rules.rules["x"]
        save_atomically(
            intruder, rule("x", 500).replace("in: SOL, out: USDC", "in: USDC, out: SOL")
        )
        await wait_until(lambda: daemon.last_reload is not None and daemon.last_reload.errors)
        assert daemon.engine.rules.rules["x"] is running_x
        files = {Path(f["path"]).name: f for f in daemon.status()["rules"]["files"]}
        assert files[name]["errors"] == [
            f"{intruder}:2:9: duplicate rule id 'x' (first at {owner}:2:9)"
        ]
        assert (files[name]["rules"], files["rules.yaml"]["rules"]) == ([], ["x"])
        await receiver.wait_until(
            lambda: f"notifier: 1 rule error(s); {name} not loaded" in receiver.delivered_titles()
        )
        sim.quotes.set_quote(SOL, USDC, ONE_SOL, 180_000_000)
        await receiver.wait_until(lambda: "x 180.0" in receiver.delivered_titles(), timeout=20)

        save_atomically(intruder, rule("y", 500))
        await wait_until(lambda: active_ids(daemon) == {"x", "y"}, timeout=10)
        await receiver.wait_until(
            lambda: f"notifier: {intruder} fixed, loaded again" in receiver.delivered_titles()
        )


@pytest.mark.timeout(90)
async def test_a_chain_of_taken_ids_across_many_files_reloads_in_linear_time(
    tmp_path: Path, sim: Simulator, receiver: HttpReceiver
) -> None:
    """Every file takes the id of the file before it, and the first breaks: each in turn is in
    error and keeps its last good rule. Settling who owns which id once took N rounds over
    every claim (85 s per reload for 2,000 files); it is linear now, also when one file of
    the chain is then touched."""
    count = 2000
    settings = daemon_settings(tmp_path, sim, receiver)
    names = [settings.rules_dir / f"f{i:04}.yaml" for i in range(count)]
    for i, path in enumerate(names):
        path.write_text(FEED_RULE.format(id=f"g{i}"), encoding="utf-8")
    async with running(settings) as daemon:
        assert len(active_ids(daemon)) == count
        names[0].write_text("rules: [\n", encoding="utf-8")
        for i, path in enumerate(names[1:], 1):
            path.write_text(FEED_RULE.format(id=f"g{i - 1}"), encoding="utf-8")

        def in_error() -> int:
            files = daemon.last_reload.files if daemon.last_reload else ()
            return sum(1 for f in files if f.failed)

        daemon.request_reload()
        await wait_until(lambda: in_error() == count, timeout=60)
        assert len(active_ids(daemon)) == count  # every file runs its last good rule
        reloads = daemon.reloads
        save_atomically(names[-1], FEED_RULE.format(id=f"g{count - 2}") + "# touched\n")
        await wait_until(lambda: daemon.reloads > reloads, timeout=20)
        assert (in_error(), len(active_ids(daemon))) == (count, count)
