"""What talking back is made of: silences and their matchers, acknowledgements, snoozes, the
alert episode an action names, and the errors an action can meet."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

__all__ = [
    "MATCHER_KEYS",
    "SEVERITIES",
    "Ack",
    "Ambiguous",
    "Done",
    "Episode",
    "Invalid",
    "Matchers",
    "NotFound",
    "Silence",
    "Snooze",
    "TalkbackError",
]

MATCHER_KEYS = ("rule", "key", "severity", "source", "tag")
SEVERITIES = frozenset({"info", "success", "warning", "failure"})
MAX_TEXT = 500  # comment and created_by


class TalkbackError(Exception):
    """An action cannot be done; the message says why in words a user can act on.
    ``status`` is the HTTP status an API answers it with."""

    status = 400


class Invalid(TalkbackError):
    """The request itself is wrong (no matcher, bad duration, unknown key)."""


class NotFound(TalkbackError):
    """No such rule, alert or silence."""

    status = 404


class Ambiguous(TalkbackError):
    """``KEY`` was omitted but the rule has several firing keys (they are listed)."""

    status = 409


def clean_text(value: object, what: str, default: str = "") -> str:
    """A single-line, bounded string from user input."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise Invalid(f"{what} must be a string")
    text = " ".join(value.split())
    if len(text) > MAX_TEXT:
        raise Invalid(f"{what} is longer than {MAX_TEXT} characters")
    return text or default


@dataclass(frozen=True, slots=True)
class Matchers:
    """What a silence mutes: ``rule`` and ``key`` are globs (``sol-*``), ``severity``,
    ``source`` and ``tag`` exact values; an absent matcher matches everything."""

    rule: str | None = None
    key: str | None = None
    severity: str | None = None
    source: str | None = None
    tag: str | None = None

    @classmethod
    def parse(cls, raw: object) -> Matchers:
        """From the API's ``matchers`` object; at least one matcher is required."""
        if not isinstance(raw, Mapping):
            raise Invalid('matchers must be an object like {"rule": "sol-*"}')
        unknown = sorted(set(map(str, raw)) - set(MATCHER_KEYS))
        if unknown:
            raise Invalid(
                f"unknown matcher(s): {', '.join(unknown)}; use {', '.join(MATCHER_KEYS)}"
            )
        values: dict[str, str] = {}
        for name in MATCHER_KEYS:
            value = raw.get(name)
            if value is None:
                continue
            text = clean_text(value, f"matchers.{name}")
            if text:
                values[name] = text
        if not values:
            raise Invalid("a silence needs at least one matcher (rule, key, severity, source, tag)")
        severity = values.get("severity")
        if severity is not None and severity not in SEVERITIES:
            raise Invalid(f"matchers.severity must be one of {', '.join(sorted(SEVERITIES))}")
        return cls(**values)

    def matches(
        self, rule: str, key: str | None, severity: str, source: str | None, tags: Iterable[str]
    ) -> bool:
        """True when a message of ``rule`` at ``key`` (with the rule's severity, source and
        tags) is muted by these matchers."""
        if self.rule is not None and not fnmatchcase(rule, self.rule):
            return False
        if self.key is not None and not fnmatchcase(key or "", self.key):
            return False
        if self.severity is not None and severity != self.severity:
            return False
        if self.source is not None and source != self.source:
            return False
        return self.tag is None or self.tag in tuple(tags)

    def as_json(self) -> dict[str, str]:
        return {name: value for name in MATCHER_KEYS if (value := getattr(self, name)) is not None}

    def describe(self) -> str:
        return " ".join(f"{name}={value}" for name, value in self.as_json().items())


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: Matchers
    starts_at: float
    ends_at: float
    comment: str
    created_by: str
    created_at: float
    expired_by: str | None = None

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def as_json(self) -> dict[str, Any]:
        """Times as Unix seconds; the HTTP layer renders them."""
        return {
            "id": self.id,
            "matchers": self.matchers.as_json(),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "expired_by": self.expired_by,
        }


@dataclass(frozen=True, slots=True)
class Ack:
    rule: str
    key: str
    episode: float
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class Snooze:
    rule: str
    key: str
    until: float
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class Episode:
    """One alert episode, what an action link or a chat button names: the rule, its state key
    and when the episode began (the firing ``since``; None for an event rule's message)."""

    rule: str
    key: str
    since: float | None


@dataclass(frozen=True, slots=True)
class Done:
    """What an action did, for the caller to show: ``text`` is one sentence
    (``acknowledged sol-above-200 SOL/USDC:1 (by alice)``)."""

    action: str  # ack | snooze | silence | expire
    rule: str | None
    key: str | None
    by: str
    until: float | None
    text: str
    silence_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "rule": self.rule,
            "key": self.key,
            "by": self.by,
            "until": self.until,
            "text": self.text,
            "silence_id": self.silence_id,
        }
