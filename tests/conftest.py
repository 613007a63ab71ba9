"""Shared fixtures: the real simulator, a real apprise receiver, and daemon settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from notifier.config import Settings
from notifier.simulator import SIM_KEYS, Simulator
from tests.receivers import HttpReceiver

SOL = "So11111111111111111111111111111111111111112"
USDC = "uSd2czE61Evaf76RNbq4KPpXnkiL3irdzgLFUMe3NoG"


def usdc_per_sol(price: float) -> float:
    """A SOL/USDC price as the simulator's raw price (USDC base units per lamport)."""
    return price * 1e6 / 1e9


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=1, random_walk=False, coalesce=0.01) as simulator:
        yield simulator


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with HttpReceiver() as http:
        yield http


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
    apprise = tmp_path / "apprise.yml"
    apprise.write_text(
        f"urls:\n  - {receiver.url('alerts')}:\n      tag: admin, phone\n", encoding="utf-8"
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
