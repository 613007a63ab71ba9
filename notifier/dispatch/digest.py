"""Rate-limit digests: when a tag's budget frees up, its open digest row is sealed with a
text listing every notification held back for it, then sent like any other row."""

from __future__ import annotations

from collections.abc import Sequence

from notifier.config import RateLimitSettings
from notifier.dispatch.outbox import Outbox, OutboxRow
from notifier.dispatch.ratelimit import ALL, RateLimiter
from notifier.durations import format_duration
from notifier.notification import Severity

__all__ = ["QUIET_PREFIX", "render_digest", "render_quiet", "seal"]

QUIET_PREFIX = "quiet:"  # digest_tag of a quiet-hours digest: ``quiet:TAG``

_RANK: dict[str, int] = {"info": 0, "success": 1, "warning": 2, "failure": 3}


def seal(outbox: Outbox, limiter: RateLimiter, row: OutboxRow) -> OutboxRow:
    """Close the open digest ``row`` to new items and store the text it goes out with."""
    bucket = row.digest_tag or ALL
    items = outbox.digest_items(row.id)
    if bucket.startswith(QUIET_PREFIX):
        title, body, severity = render_quiet(bucket.removeprefix(QUIET_PREFIX), items)
    else:
        title, body, severity = render_digest(bucket, items, limiter.limit(bucket))
    outbox.seal_digest(row.id, title, body, severity)
    sealed = outbox.get(row.id)
    assert sealed is not None
    return sealed


def render_digest(
    bucket: str, items: Sequence[tuple[str, str, str, str]], limit: RateLimitSettings
) -> tuple[str, str, Severity]:
    """Title, body and severity of a digest: every held notification's title, one a line."""
    where = "every channel" if bucket == ALL else f"tag {bucket!r}"
    count = len(items)
    noun = "notification" if count == 1 else "notifications"
    title = f"{count} more {noun} for {where} (rate limit)"
    head = (
        f"More than {limit.count} messages in {format_duration(limit.per)} for {where}; "
        f"these were held and folded into this digest:"
    )
    lines = [head, *(f"- [{severity}] {title_} ({rule})" for _, rule, severity, title_ in items)]
    return title, "\n".join(lines), _worst(items)


def render_quiet(tag: str, items: Sequence[tuple[str, str, str, str]]) -> tuple[str, str, Severity]:
    """The digest that ends a quiet-hours window: every message held for ``tag``."""
    count = len(items)
    noun = "notification" if count == 1 else "notifications"
    title = f"{count} {noun} held during quiet hours for tag {tag!r}"
    lines = [
        "Quiet hours are over; these were held for this channel:",
        *(f"- [{severity}] {title_} ({rule})" for _, rule, severity, title_ in items),
    ]
    return title, "\n".join(lines), _worst(items)


def _worst(items: Sequence[tuple[str, str, str, str]]) -> Severity:
    worst = max(
        (severity for _, _, severity, _ in items), key=lambda s: _RANK.get(s, 0), default="info"
    )
    return _severity(worst)


def _severity(value: str) -> Severity:
    if value == "success":
        return "success"
    if value == "warning":
        return "warning"
    if value == "failure":
        return "failure"
    return "info"
