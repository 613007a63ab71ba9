"""The simulator: one aiohttp server on one port serving the three upstreams at their real paths.

``/fusion/ws/{version}/{chain}`` and ``/fusion/orders/{version}/{chain}/order/…`` (1inch Fusion),
``/api/v1/stream`` (Argyros quotes), ``/v1/intents/{id}`` (Changelly intents), and a thin JSON
control API under ``/_sim/…`` (see `notifier.simulator.control`) so another process can script it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO

from aiohttp import web

from notifier.simulator.control import control_routes
from notifier.simulator.fusion import FusionApi
from notifier.simulator.intents import IntentApi
from notifier.simulator.quotes import QuoteStream

__all__ = ["SIM_KEYS", "SimKeys", "Simulator", "SimulatorUrls", "serve"]


@dataclass(frozen=True, slots=True)
class SimKeys:
    """API keys the simulated upstreams accept."""

    fusion: str = "sim-fusion-key"
    quotes: str = "argy_" + "5157" * 8
    intents: str = "sim-intents-key"


SIM_KEYS = SimKeys()
# Shipped with the package: prints every notification to the daemon's terminal (console://).
CONSOLE_APPRISE_CONFIG = Path(__file__).with_name("console.yml")


@dataclass(frozen=True, slots=True)
class SimulatorUrls:
    """Base URLs in the form the daemon's config takes them."""

    fusion_ws: str  # the daemon appends /v2.0/{chain} (Solana: /v1.0/501)
    fusion_rest: str  # the daemon appends /orders/v2.0/{chain}/order/…
    quotes_ws: str
    intents: str  # the daemon appends /v1/intents/{id}
    control: str  # /_sim control API

    @classmethod
    def at(cls, host: str, port: int) -> SimulatorUrls:
        """URLs of a simulator listening on ``host:port``."""
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return cls(
            fusion_ws=f"ws://{netloc}/fusion/ws",
            fusion_rest=f"http://{netloc}/fusion",
            quotes_ws=f"ws://{netloc}/api/v1/stream",
            intents=f"http://{netloc}",
            control=f"http://{netloc}/_sim",
        )


class Simulator:
    """All three upstreams on one port, scriptable in-process or over ``/_sim``.

    ``sim.quotes``, ``sim.fusion`` and ``sim.intents`` are the scripting objects; they can be
    used before `start` only for state that needs no event loop.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        random_walk: bool = True,
        random_orders: bool = False,
        walk_interval: float = 1.0,
        order_interval: float = 2.0,
        chains: tuple[int, ...] = (1,),
        coalesce: float = 0.05,
        quote_queue_size: int = 1024,
        heartbeat: float | None = 20.0,
        keys: SimKeys = SIM_KEYS,
    ) -> None:
        self.seed = seed
        self.keys = keys
        self.quotes = QuoteStream(
            key=keys.quotes,
            seed=seed,
            random_walk=random_walk,
            walk_interval=walk_interval,
            coalesce=coalesce,
            queue_size=quote_queue_size,
        )
        self.fusion = FusionApi(
            key=keys.fusion,
            seed=seed,
            random_orders=random_orders,
            order_interval=order_interval,
            chains=chains,
            heartbeat=heartbeat,
        )
        self.intents = IntentApi(key=keys.intents, seed=seed)
        self._runner: web.AppRunner | None = None
        self._urls: SimulatorUrls | None = None

    @property
    def urls(self) -> SimulatorUrls:
        """Base URLs; only known once started."""
        if self._urls is None:
            raise RuntimeError("simulator not started")
        return self._urls

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.urls.intents.rsplit(":", 1)[1])

    def app(self) -> web.Application:
        """The aiohttp application serving every route."""
        app = web.Application()
        app.add_routes(self.quotes.routes())
        app.add_routes(self.fusion.routes())
        app.add_routes(self.intents.routes())
        app.add_routes(control_routes(self))
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> SimulatorUrls:
        """Bind ``host:port`` (0 = a free port), start background flows, answer the URLs."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound = runner.addresses[0]
        self._urls = SimulatorUrls.at(host, int(bound[1]))
        self.quotes.start()
        self.fusion.start()
        self.intents.start()
        return self._urls

    async def stop(self) -> None:
        """Drop every connection, stop background flows and close the server."""
        runner, self._runner = self._runner, None
        await self.quotes.stop()
        await self.fusion.stop()
        await self.intents.stop()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def config_toml(self) -> str:
        """A complete daemon config for this simulator, run from the repository's root: the
        example ``rules/``, state in ``state/``, notifications printed to the terminal."""
        urls = self.urls
        # Solana (501) is always served: the example rules/solana.yaml watches it.
        chains = ", ".join(str(chain) for chain in dict.fromkeys((*self.fusion.chains, 501)))
        return (
            'rules_dir = "rules"\n'
            'state_dir = "state"\n'
            f"apprise_config = {_toml_string(CONSOLE_APPRISE_CONFIG)}  # console://: the terminal\n"
            "\n[fusion]\n"
            f'url = "{urls.fusion_ws}"\n'
            f'rest_url = "{urls.fusion_rest}"\n'
            f'api_key = "{self.keys.fusion}"\n'
            f"chains = [{chains}]\n"
            "\n[quotes]\n"
            f'url = "{urls.quotes_ws}"\n'
            f'api_key = "{self.keys.quotes}"\n'
            "\n[intents]\n"
            f'url = "{urls.intents}"\n'
            f'api_key = "{self.keys.intents}"\n'
        )


def _toml_string(value: object) -> str:
    """A TOML basic string (a JSON string is one)."""
    return json.dumps(str(value))


async def serve(
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    seed: int = 0,
    out: TextIO | None = None,
    **options: Any,
) -> None:
    """Run a simulator on ``host:port`` until ``stop`` is set, printing config lines to ``out``.

    ``options`` go to `Simulator` (``random_walk``, ``random_orders``, ``chains``, …).
    """
    sim = Simulator(seed=seed, **options)
    await sim.start(host, port)
    try:
        stream = out or sys.stdout
        stream.write(
            f"# notifier simulator on {sim.urls.intents} (control API {sim.urls.control})\n"
            "# a config for `notifier run -c FILE` from the repository's root:\n"
        )
        stream.write(sim.config_toml())
        stream.flush()
        await stop.wait()
    finally:
        await sim.stop()
