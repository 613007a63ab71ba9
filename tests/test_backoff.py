"""Full-jitter backoff: the pure delay function and the per-connection attempt counter."""

from __future__ import annotations

import random

import pytest

from notifier.backoff import Backoff, BackoffPolicy, full_jitter


def test_full_jitter_is_uniform_below_the_capped_ceiling() -> None:
    """The delay is ``rng() * min(cap, base * 2**attempt)``; negative attempts count as 0."""
    assert full_jitter(0, 1.0, 300.0, rng=lambda: 1.0) == 1.0
    assert full_jitter(3, 1.0, 300.0, rng=lambda: 1.0) == 8.0
    assert full_jitter(30, 1.0, 300.0, rng=lambda: 1.0) == 300.0
    assert full_jitter(-1, 0.5, 30.0, rng=lambda: 1.0) == 0.5
    assert full_jitter(4, 2.0, 0.05, rng=lambda: 1.0) == 0.05
    rng = random.Random(7)
    assert all(0.0 <= full_jitter(n, 1.0, 60.0, rng.random) < 60.0 for n in range(100))


def test_backoff_is_full_jitter_and_capped() -> None:
    """Each delay is uniform in [0, min(cap, base * 2**attempt)]."""
    backoff = Backoff(BackoffPolicy(base=1.0, cap=8.0), random.Random(1))
    for attempt in range(10):
        assert 0.0 <= backoff.delay() <= min(8.0, 2.0**attempt)
    assert backoff.attempt == 10
    backoff.reset()
    assert backoff.attempt == 0


def test_backoff_resets_after_a_healthy_period(monkeypatch: pytest.MonkeyPatch) -> None:
    """Up for ``healthy_after`` seconds and the next failure starts from the first attempt."""
    now = [100.0]
    monkeypatch.setattr("notifier.backoff.time.monotonic", lambda: now[0])
    backoff = BackoffPolicy(base=1.0, cap=60.0, healthy_after=30.0).start(random.Random(2))
    for _ in range(5):
        backoff.delay()
    backoff.mark_up()
    now[0] += 5.0  # dropped again quickly: keep escalating
    backoff.delay()
    assert backoff.attempt == 6
    backoff.mark_up()
    now[0] += 31.0
    assert backoff.delay() <= 1.0
    assert backoff.attempt == 1


def test_a_huge_retry_count_stays_finite() -> None:
    """The exponent is bounded: no overflow however long a feed stays down."""
    assert full_jitter(10**6, base=0.5, cap=30.0, rng=lambda: 1.0) == 30.0
