"""Full-jitter exponential backoff (the AWS formula), as one pure function for every retry
loop: delivery retries and the sources' reconnects."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["full_jitter"]

_MAX_DOUBLINGS = 32  # 2**32 times any sane base is past every cap; keeps the float finite


def full_jitter(
    retry: int, *, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """The wait before retry number ``retry + 1``: uniform in ``[0, min(cap, base * 2**retry))``
    (``retry`` counts the waits already made, 0 for the first)."""
    ceiling = min(cap, base * 2.0 ** min(max(retry, 0), _MAX_DOUBLINGS))
    return rng() * ceiling
