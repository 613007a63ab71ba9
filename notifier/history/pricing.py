"""A quote's price, as rules see it: output per input in whole tokens when both decimals are
known, else in smallest units. One function, so history and rule variables agree to the bit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Pricing", "quote_amounts", "scale"]


def quote_amounts(
    amount: int, exact_in: bool, scale_in: float | None, scale_out: float | None, amount_out: int
) -> tuple[float | int, float | int, float | None]:
    """(amount in, amount out, price) of a quote: amounts scaled to whole tokens where the
    decimals are known; the price ``out / in`` (None when the input amount is zero)."""
    raw_in, raw_out = (amount, amount_out) if exact_in else (amount_out, amount)
    human_in = None if scale_in is None else raw_in / scale_in
    human_out = None if scale_out is None else raw_out / scale_out
    if human_in is not None and human_out is not None:
        price = human_out / human_in if human_in else None
    else:
        price = raw_out / raw_in if raw_in else None
    return (
        human_in if human_in is not None else raw_in,
        human_out if human_out is not None else raw_out,
        price,
    )


@dataclass(frozen=True, slots=True)
class Pricing:
    """What turns a pair's quotes into prices: the subscribed amount and the token scales."""

    amount: int
    exact_in: bool
    scale_in: float | None
    scale_out: float | None
    name: str  # ``SOL/USDC``, for status and the dashboard

    def price(self, amount_out: int) -> float | None:
        return quote_amounts(self.amount, self.exact_in, self.scale_in, self.scale_out, amount_out)[
            2
        ]

    def pricer(self) -> Callable[[int], float | None]:
        """``price`` as a function of its own, for the history (every quote): the operations of
        ``quote_amounts`` in the same order, so the same bits, without the amounts."""
        amount, scale_in, scale_out = self.amount, self.scale_in, self.scale_out
        if scale_in is None or scale_out is None:  # prices in smallest units
            if self.exact_in:
                return lambda out: out / amount if amount else None
            return lambda out: amount / out if out else None
        if self.exact_in:
            human_in = amount / scale_in
            return lambda out: out / scale_out / human_in if human_in else None
        human_out = amount / scale_out
        return lambda out: human_out / (out / scale_in) if out / scale_in else None


def scale(decimals: int | None) -> float | None:
    """The divisor amounts are scaled by: ``raw / scale`` is the whole-token amount."""
    return None if decimals is None else float(10) ** decimals
