"""A local stand-in for the three upstreams, speaking their wire protocols (UPSTREAMS.md).

`Simulator` serves 1inch Fusion, the Argyros quote stream and Changelly intent status on one
port, with scripting (``sim.quotes``, ``sim.fusion``, ``sim.intents``), fault injection and a
``/_sim`` control API; `serve` runs one for ``notifier simulate``.
"""

from notifier.simulator.fusion import FusionApi, Order
from notifier.simulator.intents import Hit, Intent, IntentApi
from notifier.simulator.quotebook import Quote
from notifier.simulator.quotes import MAX_SUBSCRIPTIONS, QuoteStream
from notifier.simulator.server import SIM_KEYS, SimKeys, Simulator, SimulatorUrls, serve

__all__ = [
    "MAX_SUBSCRIPTIONS",
    "SIM_KEYS",
    "FusionApi",
    "Hit",
    "Intent",
    "IntentApi",
    "Order",
    "Quote",
    "QuoteStream",
    "SimKeys",
    "Simulator",
    "SimulatorUrls",
    "serve",
]
