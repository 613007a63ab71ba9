"""The contract between rules and delivery: one message a rule decided to send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Notification", "Severity"]

Severity = Literal["info", "success", "warning", "failure"]


@dataclass(frozen=True, slots=True)
class Notification:
    """One message a rule decided to send.

    ``key`` is the dedup key (rule id, state key, transition and sequence): the outbox accepts
    a key once, so a restart can never send the same decision twice.
    """

    key: str
    rule_id: str
    title: str
    body: str
    severity: Severity = "info"
    tags: tuple[str, ...] = ()  # apprise tags; empty = every channel
    created_at: float = 0.0  # wall clock when the rule decided
    event_at: float | None = None  # when the triggering frame was received, for latency
    why: str = ""  # the values that decided it (SPEC §8); the default body ends with it too
    # The alert it speaks of, for silences, acknowledgements, snoozes and action links.
    alert_key: str | None = None  # the rule's state key (None: not from a rule)
    transition: str | None = None  # firing | repeat | resolved | event
    episode: float | None = None  # state rules: when the episode began (firing ``since``)
    source: str | None = None  # the rule's source: quote | order | intent | feed
