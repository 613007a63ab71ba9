"""The simulated quote stream's price model: one quote per ``(in, out, amount)`` triple.

Prices come from a per-``(in, out)`` reference price: ``amountOut = floor(amount * price *
(1 - priceImpactBps / 10_000))``, where the impact grows with the amount against a seeded pool
depth. Every quote version gets a fresh ``slot`` (a global sequence number).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["FIRST_SLOT", "Quote", "QuoteBook", "Triple"]

FIRST_SLOT = 300_000_000

Triple = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Quote:
    """One quote version of an ``(in, out, amount)`` triple."""

    amount_out: int
    price_impact_bps: int
    hops: int
    slot: int

    def same(self, other: Quote) -> bool:
        """True when a push would be suppressed: only the slot differs."""
        return (self.amount_out, self.price_impact_bps, self.hops) == (
            other.amount_out,
            other.price_impact_bps,
            other.hops,
        )


@dataclass(slots=True)
class _Override:
    price_impact_bps: int
    hops: int


class QuoteBook:
    """Seeded reference prices and pool depths, scripted overrides, and each triple's quote."""

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._rng = random.Random(f"quotes:{seed}")
        self._prices: dict[tuple[str, str], float] = {}
        self._depths: dict[tuple[str, str], float] = {}
        self._quotes: dict[Triple, Quote] = {}
        self._overrides: dict[Triple, _Override] = {}
        self._slot = FIRST_SLOT

    def script(self, triple: Triple, amount_out: int, price_impact_bps: int, hops: int) -> None:
        """Pin a triple's impact and hops, re-anchoring its pair's price to ``amount_out``."""
        in_mint, out_mint, amount = triple
        units = int(amount)
        if units > 0:
            scale = 1 - price_impact_bps / 10_000
            if amount_out > 0 and scale > 0:
                self._prices[(in_mint, out_mint)] = amount_out / (units * scale)
        self._overrides[triple] = _Override(price_impact_bps, hops)

    def set_price(self, in_mint: str, out_mint: str, price: float) -> None:
        self._prices[(in_mint, out_mint)] = price

    def step(self, in_mint: str, out_mint: str, volatility: float) -> None:
        """One step of the seeded random walk of a pair's reference price."""
        price = self._price(in_mint, out_mint)
        self._prices[(in_mint, out_mint)] = price * math.exp(self._rng.gauss(0.0, volatility))

    def quote(self, triple: Triple) -> Quote:
        """The current quote of a triple (computed from the price model on first use)."""
        current = self._quotes.get(triple)
        if current is None:
            amount_out, impact, hops = self.model(triple)
            current = self._quotes[triple] = Quote(amount_out, impact, hops, self._next_slot())
        return current

    def triples(self, in_mint: str, out_mint: str) -> list[Triple]:
        """The quoted triples of a pair."""
        return [t for t in self._quotes if t[0] == in_mint and t[1] == out_mint]

    def put(self, triple: Triple, amount_out: int, impact: int, hops: int) -> bool:
        """Store a new quote version; False (and nothing stored) when only the slot would
        change."""
        old = self._quotes.get(triple)
        new = Quote(amount_out, impact, hops, old.slot if old else 0)
        if old is not None and old.same(new):
            return False
        self._quotes[triple] = Quote(amount_out, impact, hops, self._next_slot())
        return True

    def model(self, triple: Triple) -> tuple[int, int, int]:
        """(amountOut, priceImpactBps, hops) of a triple from its pair's price and depth."""
        in_mint, out_mint, amount = triple
        price = self._price(in_mint, out_mint)
        units = int(amount)
        override = self._overrides.get(triple)
        if override is not None:
            impact, hops = override.price_impact_bps, override.hops
        else:
            depth = self._depths.get((in_mint, out_mint), 1e12)
            impact = min(5_000, int(10_000 * units / (units + depth)))
            hops = 1
        amount_out = math.floor(units * price * (1 - impact / 10_000))
        return max(amount_out, 0), impact, hops

    def _next_slot(self) -> int:
        self._slot += 1
        return self._slot

    def _price(self, in_mint: str, out_mint: str) -> float:
        key = (in_mint, out_mint)
        price = self._prices.get(key)
        if price is None:
            rng = random.Random(f"{self._seed}:{in_mint}:{out_mint}")
            price = self._prices[key] = 10 ** rng.uniform(-3, 3)
            self._depths[key] = 10 ** rng.uniform(10, 14)
        return price
