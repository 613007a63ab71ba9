"""The rule-file schema (SPEC §4) as pydantic models, discriminated on ``on:``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    field_validator,
    model_validator,
)

from notifier.durations import parse_duration
from notifier.events import INTENT_STATUSES, ORDER_EVENTS, FeedName, validate_intent_id
from notifier.notification import Severity

__all__ = [
    "FeedSpec",
    "IntentSpec",
    "OrderSpec",
    "PairSpec",
    "QuoteSpec",
    "RuleFileSpec",
    "RuleSpec",
]


def _duration(value: Any) -> float:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        seconds = parse_duration(value)
        if not math.isfinite(seconds):
            raise ValueError("a duration must be a finite number of seconds")
        return seconds
    raise ValueError("expected a duration such as 30s, 15m, 1h30m or 2d")


def _at_least(minimum: float, shown: str) -> Callable[[Any], float]:
    """A duration validator refusing periods shorter than ``minimum`` seconds: a rule that
    repeats every millisecond floods its channels, one that waits 1 ms waits for nothing."""

    def check(value: Any) -> float:
        seconds = _duration(value)
        if seconds < minimum:
            given = value if isinstance(value, str) else f"{value}s"
            raise ValueError(f"at least {shown} (got {given})")
        return seconds

    return check


def _amount(value: Any) -> float | str:
    """A positive number of human units, or a digit string of smallest units."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value) and value > 0:
            return float(value)
    elif isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0:
        return value
    raise ValueError("expected a positive number (human units) or a digit string (raw)")


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value


Duration = Annotated[float, BeforeValidator(_duration)]
Period = Annotated[float, BeforeValidator(_at_least(1.0, "1s"))]  # for, cooldown, overdue
RepeatPeriod = Annotated[float, BeforeValidator(_at_least(60.0, "1m"))]
StrList = Annotated[list[str], BeforeValidator(_listify)]
IntList = Annotated[list[int], BeforeValidator(_listify)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)


class _RuleBase(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=128)
    description: str = ""
    enabled: bool = True
    when: str | None = None
    cooldown: Period | None = None
    notify: StrList | None = None
    severity: Severity = "info"
    title: str | None = None
    body: str | None = None


class _StateKeys(_Strict):
    """Keys of rules that hold a state per key (inactive → pending → firing → resolved)."""

    until: str | None = None
    for_: Period | None = Field(default=None, alias="for")
    repeat: RepeatPeriod | None = None
    resolved: bool = False


class PairSpec(_Strict):
    in_: str = Field(alias="in", min_length=1)
    out: str = Field(min_length=1)
    amount: Annotated[float | str, PlainValidator(_amount)] = 1
    exact_in: bool = True


class QuoteSpec(_RuleBase, _StateKeys):
    on: Literal["quote"]
    pair: PairSpec
    above: Annotated[float, Field(allow_inf_nan=False)] | None = None
    below: Annotated[float, Field(allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> QuoteSpec:
        given = [k for k in ("when", "above", "below") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a quote rule needs exactly one of when, above, below"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class OrderSpec(_RuleBase):
    on: Literal["order"]
    chain: IntList | None = None
    events: StrList | None = None
    maker: StrList | None = None

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if name not in ORDER_EVENTS:
                raise ValueError(f"unknown order event {name!r}; known: {', '.join(ORDER_EVENTS)}")
        return value


class IntentSpec(_RuleBase, _StateKeys):
    on: Literal["intent"]
    intents: StrList | None = None
    to: StrList | None = None
    overdue: Period | None = None

    @field_validator("intents")
    @classmethod
    def _valid_intent_ids(cls, value: list[str] | None) -> list[str] | None:
        for intent_id in value or ():
            validate_intent_id(intent_id)  # each id becomes a URL path segment
        return value

    @field_validator("to")
    @classmethod
    def _known_statuses(cls, value: list[str] | None) -> list[str] | None:
        for status in value or ():
            if status not in INTENT_STATUSES:
                raise ValueError(
                    f"unknown intent status {status!r}; known: {', '.join(INTENT_STATUSES)}"
                )
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> IntentSpec:
        if self.to is not None and (self.overdue is not None or self.for_ is not None):
            raise ValueError("'to' makes an event rule: it cannot be combined with overdue/for")
        if self.overdue is not None and self.for_ is not None:
            raise ValueError("use either overdue (counted from created_at) or for, not both")
        if self.to is None and self.overdue is None and self.when is None:
            raise ValueError("an intent rule needs 'to', 'overdue' or 'when'")
        return self


class FeedSpec(_RuleBase, _StateKeys):
    on: Literal["feed"]
    feed: FeedName
    down_for: Duration = 0.0


RuleSpec = Annotated[QuoteSpec | OrderSpec | IntentSpec | FeedSpec, Field(discriminator="on")]


class RuleFileSpec(_Strict):
    rules: list[RuleSpec] = Field(default_factory=list)


RULE_FILE = TypeAdapter(RuleFileSpec)
RULE_SPEC: TypeAdapter[QuoteSpec | OrderSpec | IntentSpec | FeedSpec] = TypeAdapter(RuleSpec)
