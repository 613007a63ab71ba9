"""``notifier demo``: the simulator, the daemon and the example rules, printed to the terminal.

Needs no config: it writes a throw-away apprise config with the ``console://`` channel, points
the daemon at an in-process simulator and scripts a short market story — SOL crossing 200 USDC
and falling back, one of "my" Fusion orders filling in two steps on Ethereum and one on Solana
(chain 501) beside another that expires unfilled, one intent finishing and one expiring.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import sys
import tempfile
import time
from pathlib import Path

from notifier.config import Settings
from notifier.daemon import running
from notifier.rules.loader import list_rule_files
from notifier.simulator import SIM_KEYS, Simulator
from notifier.tokens import BUILTIN_TOKENS

__all__ = ["DEMO_MAKER", "DEMO_SOLANA_MAKER", "example_rules", "run_demo"]

DEMO_MAKER = "0x00000000000000000000000000000000000d3e70"
DEMO_SOLANA_MAKER = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"  # rules/solana.yaml
SOL, USDC = BUILTIN_TOKENS[0], BUILTIN_TOKENS[1]
WETH_ADDRESS = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
USDC_ETH = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
# SOL/USDC in USDC per SOL, one step a second: up through 200, inside the 198-200 band, down.
PRICE_PATH = (196.0, 197.5, 199.0, 200.6, 202.3, 201.1, 199.2, 198.6, 197.4, 195.0, 193.2, 196.8)


def _rules_dir(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    here = Path("rules")
    if here.is_dir():
        return here
    return example_rules()


def example_rules() -> Path:
    """The example rules: in an installed package ``notifier/examples/rules`` (the wheel's copy
    of ``rules/``), in a checkout (an editable install too) the top-level ``rules/``."""
    packaged = importlib.resources.files("notifier") / "examples" / "rules"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "rules"


def _raw_price(usdc_per_sol: float) -> float:
    """USDC per SOL as the simulator's raw price: USDC base units per lamport."""
    return usdc_per_sol * 10.0**USDC.decimals / 10.0**SOL.decimals


async def _story(sim: Simulator, stop: asyncio.Event) -> None:
    """Script the market; loops the price path until stopped."""
    await asyncio.sleep(1.0)
    order = sim.fusion.create_order(
        1, maker=DEMO_MAKER, maker_asset=USDC_ETH, taker_asset=WETH_ADDRESS,
        making_amount=2_000_000_000, taking_amount=600_000_000_000_000_000,
    )  # fmt: skip
    solana = sim.fusion.solana
    sol_order = solana.create_order(
        maker=DEMO_SOLANA_MAKER, src_amount=500_000_000, min_dst_amount=2_400_000_000
    )  # 500 USDC for at least 2.4 SOL
    solana.create_order(maker=DEMO_SOLANA_MAKER, src_amount=100_000_000, lifetime=5.0)
    step = 0
    while not stop.is_set():
        sim.quotes.set_price(
            SOL.address, USDC.address, _raw_price(PRICE_PATH[step % len(PRICE_PATH)])
        )
        if step == 4:
            sim.fusion.fill_partially(order, 1_200_000_000)
        elif step == 5:
            solana.fill(sol_order, 200_000_000)
        elif step == 8:
            sim.fusion.fill(order)
        elif step == 9:
            solana.fill(sol_order)
        step += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def run_demo(duration: float | None = None, rules: Path | None = None) -> int:
    """Run the demo; 0 once it sent notifications, 1 when it had no rules or sent nothing."""
    rules_dir = _rules_dir(rules)
    if not list_rule_files(rules_dir):
        print(f"notifier demo: no rule files (*.yaml, *.yml) in {rules_dir}", file=sys.stderr)
        return 1
    sim = Simulator(seed=7, random_walk=False)
    async with sim:
        sim.quotes.set_price(SOL.address, USDC.address, _raw_price(PRICE_PATH[0]))
        now = time.time()
        finishing = sim.intents.add_intent(
            script=[("Approved", 1.0), ("Verified", 1.0), ("Deposited", 2.0), ("Finished", 3.0)]
        )
        expiring = sim.intents.add_intent(created_at=now, script=[("Expired", 6.0)])
        with tempfile.TemporaryDirectory(prefix="notifier-demo-") as tmp:
            apprise = Path(tmp) / "apprise.yml"
            apprise.write_text("urls:\n  - console://:\n      tag: admin\n", encoding="utf-8")
            urls = sim.urls
            settings = Settings(
                rules_dir=rules_dir,
                state_dir=Path(tmp) / "state",
                apprise_config=apprise,
                errors_to=["admin"],
                http={"listen": "127.0.0.1:0"},
                fusion={"url": urls.fusion_ws, "rest_url": urls.fusion_rest,
                        "api_key": SIM_KEYS.fusion, "chains": [1, 501]},
                quotes={"url": urls.quotes_ws, "api_key": SIM_KEYS.quotes},
                intents={"url": urls.intents, "api_key": SIM_KEYS.intents, "poll_interval": 1.0,
                         "track": [finishing, expiring]},
            )  # fmt: skip
            print(
                f"notifier demo: simulator on {urls.intents}, rules from {rules_dir}/\n"
                f"  SOL/USDC walks {PRICE_PATH[0]:.0f} → {max(PRICE_PATH):.0f} → "
                f"{min(PRICE_PATH):.0f}; order {DEMO_MAKER[:10]}… fills in two steps, and so "
                f"does Solana order of {DEMO_SOLANA_MAKER[:8]}… while another expires; "
                "one intent finishes, one expires.\n"
                + (f"  Stops after {duration:g}s." if duration else "  Ctrl-C to stop."),
                flush=True,
            )
            stop = asyncio.Event()
            async with running(settings) as daemon:
                if daemon.http is not None:
                    print(f"  status: notifier status --url {daemon.http.bound_url}\n", flush=True)
                story = asyncio.create_task(_story(sim, stop))
                try:
                    if duration is None:
                        await asyncio.Event().wait()
                    else:
                        await asyncio.sleep(duration)
                except asyncio.CancelledError:
                    pass
                finally:
                    stop.set()
                    await story
                    await daemon.settled()
                    sent = _sent(daemon.dispatcher.stats())
            print(f"\nnotifier demo: done — {sent} notification(s) sent.", file=sys.stderr)
    if sent == 0:
        print(
            "notifier demo: no notification was sent"
            + (f" in {duration:g}s" if duration else "")
            + f" with the rules in {rules_dir}: none of them matched the demo's story, or "
            "delivery failed (NOTIFIER_LOG_LEVEL=INFO shows why)",
            file=sys.stderr,
        )
        return 1
    return 0


def _sent(stats: object) -> int:
    sent = stats.get("sent") if isinstance(stats, dict) else None
    return sent if isinstance(sent, int) else 0
