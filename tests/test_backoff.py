"""Full-jitter backoff: uniform below an exponential ceiling, capped."""

from __future__ import annotations

import random

from notifier.backoff import full_jitter


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    """Each wait is below min(cap, base * 2**retry), and reaches it with the largest draw."""
    rng = random.Random(7).random
    for retry in range(40):
        delay = full_jitter(retry, base=1.0, cap=300.0, rng=rng)
        assert 0.0 <= delay <= min(300.0, 2.0**retry)
    assert full_jitter(2, base=1.0, cap=300.0, rng=lambda: 1.0) == 4.0
    assert full_jitter(29, base=1.0, cap=300.0, rng=lambda: 1.0) == 300.0
    assert full_jitter(4, base=1.0, cap=0.05, rng=lambda: 1.0) == 0.05
    assert full_jitter(0, base=0.5, cap=30.0, rng=lambda: 1.0) == 0.5


def test_a_huge_retry_count_stays_finite() -> None:
    """The exponent is bounded: no overflow however long a feed stays down."""
    assert full_jitter(10**6, base=0.5, cap=30.0, rng=lambda: 1.0) == 30.0
