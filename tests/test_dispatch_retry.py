"""The retry policy: back off while retryable and inside ``retry_for``, then give up."""

from __future__ import annotations

from notifier.dispatch.channels import SendResult
from notifier.dispatch.outbox import Kind, OutboxRow
from notifier.dispatch.retry import RetryPolicy, dead_letter_report, is_error_report

FAILED = SendResult(False, frozenset(), frozenset({"c1"}), True, "HTTP 500")
PERMANENT = SendResult(False, frozenset(), frozenset({"c1"}), False, "HTTP 400")


def row(attempts: int = 0, first: float | None = None, kind: Kind = "rule") -> OutboxRow:
    return OutboxRow(
        id=1,
        key="r1|k",
        kind=kind,
        rule_id="r1",
        title="SOL above 200",
        body="b",
        severity="warning",
        tags=("ops",),
        route=("ops",),
        attempts=attempts,
        first_attempt_at=first,
        next_attempt_at=0.0,
        done=frozenset(),
        retry=None,
        digest_tag=None,
        digest_open=False,
        enqueued_at=0.0,
    )


def test_a_retryable_failure_backs_off_until_the_deadline() -> None:
    """The next attempt comes after the jittered wait, never after ``retry_for``."""
    policy = RetryPolicy(retry_for=60.0, backoff_cap=300.0, rng=lambda: 1.0)
    first = policy.retry(row(), FAILED, now=100.0)
    assert first is not None
    assert (first.at, first.deadline) == (101.0, 160.0)
    late = policy.retry(row(attempts=9, first=100.0), FAILED, now=150.0)
    assert late is not None
    assert late.at == 160.0  # 2**9 s of backoff, cut at the deadline


def test_a_permanent_failure_or_a_passed_deadline_gives_up() -> None:
    policy = RetryPolicy(retry_for=60.0, backoff_cap=300.0)
    assert policy.retry(row(), PERMANENT, now=100.0) is None
    assert policy.retry(row(attempts=3, first=100.0), FAILED, now=160.0) is None


def test_dead_letter_reports_are_never_reported_themselves() -> None:
    """An error report, or a digest of nothing else, dies quietly; the report names the row."""
    assert is_error_report(row(kind="error"), [])
    assert is_error_report(row(kind="digest"), ["error", "error"])
    assert not is_error_report(row(kind="digest"), ["error", "rule"])
    assert not is_error_report(row(), [])
    report = dead_letter_report(row(attempts=2, first=100.0), "HTTP 500", 160.0, ["admin"])
    assert (report.key, report.title, report.tags) == (
        "error:dead-letter:r1|k",
        "Undeliverable: SOL above 200",
        ("admin",),
    )
    assert "after 3 attempt(s) over 1m" in report.body
