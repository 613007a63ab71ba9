"""The retry stage's policy: a failure the sender calls retryable is tried again after a
full-jitter backoff until ``delivery.retry_for`` after the first attempt; then, or at once
for a permanent failure, the row is dead-lettered and reported to the ``errors_to`` tags."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from notifier.backoff import full_jitter
from notifier.dispatch.channels import SendResult
from notifier.dispatch.outbox import NewRow, OutboxRow
from notifier.dispatch.ratelimit import ALL
from notifier.durations import format_duration

__all__ = ["BACKOFF_BASE", "Retry", "RetryPolicy", "dead_letter_report", "is_error_report"]

BACKOFF_BASE = 1.0


@dataclass(frozen=True, slots=True)
class Retry:
    at: float  # when to try again
    deadline: float  # when retrying stops


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``delivery.retry_for`` and ``delivery.backoff_cap``, with the jitter's randomness."""

    retry_for: float
    backoff_cap: float
    rng: Callable[[], float] = random.random

    def backoff(self, row: OutboxRow) -> float:
        """The wait after the attempt ``row`` is about to record."""
        return full_jitter(row.attempts, base=BACKOFF_BASE, cap=self.backoff_cap, rng=self.rng)

    def retry(self, row: OutboxRow, result: SendResult, now: float) -> Retry | None:
        """When to try a failed row again, or None: give it up."""
        first = row.first_attempt_at if row.first_attempt_at is not None else now
        deadline = first + self.retry_for
        if not result.retryable or now >= deadline:
            return None
        return Retry(min(now + self.backoff(row), deadline), deadline)


def is_error_report(row: OutboxRow, digest_kinds: Sequence[str]) -> bool:
    """An error report, or a digest of nothing but error reports (``digest_kinds``: the kinds
    of its items): its failure is never itself reported, so a dead admin channel cannot loop."""
    if row.kind == "error":
        return True
    return row.kind == "digest" and bool(digest_kinds) and all(k == "error" for k in digest_kinds)


def dead_letter_report(row: OutboxRow, error: str, now: float, errors_to: Sequence[str]) -> NewRow:
    """The message to ``errors_to`` saying ``row`` was given up."""
    tried = format_duration(max(now - (row.first_attempt_at or now), 0.0))
    return NewRow(
        key=f"error:dead-letter:{row.key}",
        kind="error",
        rule_id=row.rule_id,
        title=f"Undeliverable: {row.title}",
        body=(
            f"notifier gave up delivering this notification after "
            f"{row.attempts + 1} attempt(s) over {tried}.\n"
            f"rule: {row.rule_id}\nkey: {row.key}\ntags: {', '.join(row.tags) or ALL}\n"
            f"last error: {error}"
        ),
        severity="failure",
        tags=tuple(errors_to),
        created_at=now,
    )
