"""Full-jitter exponential backoff (AWS style), reset once a connection has stayed healthy."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

__all__ = ["Backoff", "BackoffPolicy"]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long to wait between attempts: ``uniform(0, min(cap, base * 2**attempt))``."""

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
        ceiling = min(self.policy.cap, self.policy.base * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return self._rng.uniform(0.0, ceiling)

    def mark_up(self) -> None:
        """The attempt succeeded; if it stays up ``healthy_after`` seconds the count resets."""
        self._up_since = time.monotonic()

    def reset(self) -> None:
        self.attempt = 0
        self._up_since = None
