"""Full-jitter exponential backoff (AWS style), for reconnects, polls and delivery retries."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff", "BackoffPolicy", "full_jitter"]


def full_jitter(
    attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """A delay uniform in ``[0, min(cap, base * 2**attempt))``.

    ``attempt`` counts the retries already made (0 before the first retry); ``rng`` answers a
    float in ``[0, 1)``, e.g. ``random.Random(seed).random`` in tests.
    """
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), 32))
    return rng() * ceiling


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long to wait between attempts: ``full_jitter(attempt, base, cap)``."""

    base: float = 0.5
    cap: float = 30.0
    healthy_after: float = 30.0  # up this long and the next failure starts from attempt 0

    def start(self, rng: random.Random | None = None) -> Backoff:
        return Backoff(self, rng)


class Backoff:
    """The attempt counter of one connection or poll target."""

    def __init__(self, policy: BackoffPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.attempt = 0
        self._rng = rng or random.Random()
        self._up_since: float | None = None

    def delay(self) -> float:
        """The next sleep; counts one more attempt."""
        if self._up_since is not None:
            if time.monotonic() - self._up_since >= self.policy.healthy_after:
                self.attempt = 0
            self._up_since = None
        delay = full_jitter(self.attempt, self.policy.base, self.policy.cap, self._rng.random)
        self.attempt += 1
        return delay

    def mark_up(self) -> None:
        """The attempt succeeded; if it stays up ``healthy_after`` seconds the count resets."""
        self._up_since = time.monotonic()

    def reset(self) -> None:
        self.attempt = 0
        self._up_since = None
