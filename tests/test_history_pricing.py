"""``Pricing.pricer`` (the history's per-quote price) gives the very bits of ``Pricing.price``
(the rule variables' ``price``), for every kind of pair."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from notifier.history.pricing import Pricing, scale

AMOUNTS = st.one_of(st.integers(0, 10**30), st.sampled_from([0, 1, 10**6, 10**18]))
DECIMALS = st.one_of(st.none(), st.integers(0, 36))


def _bits(value: float | None) -> bytes | None:
    return None if value is None else struct.pack("<d", value)


@given(
    amount=AMOUNTS,
    exact_in=st.booleans(),
    decimals_in=DECIMALS,
    decimals_out=DECIMALS,
    outs=st.lists(AMOUNTS, min_size=1, max_size=20),
)
def test_pricer_is_price_to_the_bit(
    amount: int, exact_in: bool, decimals_in: int | None, decimals_out: int | None, outs: list[int]
) -> None:
    pricing = Pricing(amount, exact_in, scale(decimals_in), scale(decimals_out), "A/B")
    pricer = pricing.pricer()
    for out in outs:
        assert _bits(pricer(out)) == _bits(pricing.price(out))
