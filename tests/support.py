"""Plain helpers shared by the tests: the SOL/USDC pair, an event sink, a background task,
rule text compiled as the repository does, daemon settings for the simulator, and moving the
SOL price under a running daemon.

Fixtures live in ``conftest.py``; loopback receivers, ``wait_until`` and apprise config
writing in ``receivers.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from notifier.config import Settings
from notifier.daemon import Daemon
from notifier.events import Event, PairKey
from notifier.rules.compiled import CompileError, Rule, compile_rule
from notifier.rules.loader import RuleError, parse_text
from notifier.simulator import SIM_KEYS, Simulator
from notifier.tokens import TokenTable
from tests.receivers import HttpReceiver, wait_until, write_apprise_yaml

__all__ = [
    "ONE_SOL",
    "SOL",
    "SOL_ABOVE_200",
    "SOL_USDC",
    "USDC",
    "Collector",
    "compile_text",
    "daemon_settings",
    "in_background",
    "set_price",
    "usdc_per_sol",
]

T = TypeVar("T")

SOL = "So11111111111111111111111111111111111111112"
USDC = "uSd2czE61Evaf76RNbq4KPpXnkiL3irdzgLFUMe3NoG"
ONE_SOL = "1000000000"  # lamports
SOL_USDC: PairKey = (SOL, USDC, ONE_SOL, True)

SOL_ABOVE_200 = """\
rules:
  - id: sol-above-200
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 200
    until: price < 198
    notify: [phone]
    title: "SOL at {{ price | round(2) }}"
"""


def usdc_per_sol(price: float) -> float:
    """A SOL/USDC price as the simulator's raw price (USDC base units per lamport)."""
    return price * 1e6 / 1e9


class Collector:
    """A sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]


@asynccontextmanager
async def in_background(job: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``job`` as a task for the block, then cancel it and wait until it stopped."""
    task = asyncio.create_task(job)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def serving(*routes: web.RouteDef) -> AsyncIterator[str]:
    """A small aiohttp server on 127.0.0.1 for the block (a hostile upstream); yields its base
    URL ``http://127.0.0.1:PORT``."""
    app = web.Application()
    app.add_routes(routes)
    # A hostile upstream's handlers may never return: cancel them at exit, don't wait 60 s.
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def compile_text(text: str, path: str) -> tuple[list[Rule], list[RuleError]]:
    """Parse and compile one file's text: the rules that compiled, and every error found."""
    parsed, errors = parse_text(text, path)
    rules: list[Rule] = []
    for item in parsed:
        try:
            rules.append(compile_rule(item, TokenTable()))
        except CompileError as exc:
            errors += exc.errors
    return rules, errors


def daemon_settings(
    tmp_path: Path,
    sim: Simulator,
    receiver: HttpReceiver,
    rules: str | None = None,
    **overrides: Any,
) -> Settings:
    """Settings pointing a daemon at ``sim``, delivering to ``receiver``; rules in tmp_path."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    if rules is not None:
        (rules_dir / "rules.yaml").write_text(rules, encoding="utf-8")
    apprise = write_apprise_yaml(
        tmp_path / "apprise.yml", [(receiver.url("alerts"), "admin, phone")]
    )
    urls = sim.urls
    values: dict[str, Any] = {
        "rules_dir": rules_dir,
        "state_dir": tmp_path / "state",
        "apprise_config": apprise,
        "http": {"listen": "127.0.0.1:0"},
        "fusion": {
            "url": urls.fusion_ws,
            "rest_url": urls.fusion_rest,
            "api_key": SIM_KEYS.fusion,
            "chains": [1],
            "heartbeat": 2.0,
        },
        "quotes": {"url": urls.quotes_ws, "api_key": SIM_KEYS.quotes, "heartbeat": 2.0},
        "intents": {"url": urls.intents, "api_key": SIM_KEYS.intents, "poll_interval": 0.2},
        "delivery": {"backoff_cap": 0.5, "timeout": 5.0},
    }
    values.update(overrides)
    return Settings(**values)


async def set_price(sim: Simulator, daemon: Daemon, price: float) -> None:
    """Quote exactly ``price`` USDC for 1 SOL and wait until the daemon evaluated it."""
    sim.quotes.set_quote(SOL, USDC, ONE_SOL, round(price * 1e6))
    await wait_until(lambda: daemon.engine.last_price(SOL_USDC) == price, timeout=20)
    await daemon.settled()
