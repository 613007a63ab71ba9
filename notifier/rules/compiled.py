"""Rules compiled once at load: typed objects holding ready callables, evaluated by plain calls."""

from __future__ import annotations

import functools
import operator
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from notifier.events import PairKey
from notifier.history.book import DEFAULT_MAX_WINDOW
from notifier.history.pricing import Pricing, scale
from notifier.notification import Severity
from notifier.rules.checks import CompileError, maker_errors, quote_token_errors, raw_amount
from notifier.rules.loader import Location, ParsedFile, ParsedRule, RuleError
from notifier.rules.model import FeedSpec, IntentSpec, OrderSpec, QuoteSpec
from notifier.rules.parsed import Places
from notifier.rules.sandbox import (
    DEFAULT_BUDGET,
    Budget,
    SandboxError,
    Template,
    compile_expression,
    compile_template,
)
from notifier.rules.thresholds import Threshold, simple_threshold
from notifier.rules.vocabulary import (
    COMMON_VARIABLES,
    DEFAULT_BODIES,
    DEFAULT_TITLES,
    OVERDUE_TITLE,
    TEMPLATE_VARIABLES,
    VARIABLES,
    WHY_LINE,
)
from notifier.rules.why import Explainer
from notifier.rules.windowcalls import WindowUse, window_use
from notifier.rules.windowfns import PAIR_FUNCTIONS
from notifier.tokens import TokenTable, address_key

__all__ = [
    "COMMON_VARIABLES",
    "TEMPLATE_VARIABLES",
    "VARIABLES",
    "CompileError",
    "FeedRule",
    "IntentRule",
    "OrderRule",
    "Predicate",
    "QuoteRule",
    "Rule",
    "compile_file",
    "compile_rule",
]

Predicate = Callable[[Mapping[str, Any]], Any]


@dataclass(eq=False, slots=True)
class Rule:
    """What every compiled rule has; ``kind`` says whether it keeps a state per key."""

    id: str
    source: str  # quote | order | intent | feed
    kind: Literal["state", "event"]
    location: Location
    fingerprint: str
    description: str
    when: Predicate | None
    until: Predicate | None
    title: Template
    body: Template
    tags: tuple[str, ...]
    severity: Severity
    for_: float
    cooldown: float
    repeat: float
    resolved: bool
    positions: Mapping[str, Location]
    history: WindowUse  # the pairs and windows it reads
    explain_when: Explainer | None
    explain_until: Explainer | None

    @property
    def variables_base(self) -> dict[str, Any]:
        return {"rule": {"id": self.id, "description": self.description, "source": self.source}}


@dataclass(eq=False, slots=True)
class QuoteRule(Rule):
    pair: PairKey
    decimals_in: int | None
    decimals_out: int | None
    symbol_in: str
    symbol_out: str
    threshold: Threshold | None = None  # its condition is ``price OP constant`` (thresholds.py)
    _pricing: Pricing | None = field(default=None, init=False, repr=False)

    @property
    def pricing(self) -> Pricing:
        """Built once, and shared by the rules of a pair (a rule set reads it per rule)."""
        found = self._pricing
        if found is None:
            found = self._pricing = _pricing(
                self.pair, self.decimals_in, self.decimals_out, self.symbol_in, self.symbol_out
            )
        return found

    @property
    def key(self) -> str:
        """The state key of this pair, readable in status: ``SOL/USDC:1000000000``."""
        mode = "" if self.pair[3] else ":exact-out"
        return f"{self.symbol_in}/{self.symbol_out}:{self.pair[2]}{mode}"


@functools.lru_cache(maxsize=4096)
def _pricing(
    pair: PairKey,
    decimals_in: int | None,
    decimals_out: int | None,
    symbol_in: str,
    symbol_out: str,
) -> Pricing:
    name = f"{symbol_in}/{symbol_out}"
    return Pricing(int(pair[2]), pair[3], scale(decimals_in), scale(decimals_out), name)


@dataclass(eq=False, slots=True)
class OrderRule(Rule):
    chains: frozenset[int] | None
    events: frozenset[str] | None
    makers: frozenset[str] | None  # lower-cased


@dataclass(eq=False, slots=True)
class IntentRule(Rule):
    intents: frozenset[str] | None
    to: frozenset[str] | None
    overdue: float | None


@dataclass(eq=False, slots=True)
class FeedRule(Rule):
    feed: str


def _expr(
    source: str | None, name: str, parsed: ParsedRule, known: frozenset[str], budget: Budget
) -> Predicate | None:
    if source is None:
        return None
    try:
        return compile_expression(source, known, budget)
    except SandboxError as exc:
        raise _located(exc, name, parsed) from None


def _template(
    source: str, name: str, parsed: ParsedRule, known: frozenset[str], budget: Budget
) -> Template:
    try:
        return compile_template(source, known, budget)
    except SandboxError as exc:
        raise _located(exc, name, parsed) from None


def _source_errors(parsed: ParsedRule, known: frozenset[str], budget: Budget) -> list[RuleError]:
    """Compile every expression and template up front, so a rule reports all its errors."""
    errors: list[RuleError] = []
    for name in ("when", "until", "title", "body"):
        source = getattr(parsed.spec, name, None)
        if source is None:
            continue
        try:
            if name in {"when", "until"}:
                compile_expression(source, known, budget)
            else:
                compile_template(source, known | TEMPLATE_VARIABLES, budget)
        except SandboxError as exc:
            errors += _located(exc, name, parsed).errors
    return errors


def _located(exc: SandboxError, name: str, parsed: ParsedRule) -> CompileError:
    where = parsed.positions.get(name, parsed.location)
    if exc.line and exc.line > 1:
        where = where.shifted(exc.line - 1)
    return CompileError([RuleError(where, f"{name}: {exc}")])


@functools.cache
def _names(on: str) -> tuple[frozenset[str], frozenset[str]]:
    """The variables a rule of kind ``on`` reads in expressions, and in templates."""
    known = VARIABLES[on] | COMMON_VARIABLES
    return known, known | TEMPLATE_VARIABLES


def compile_rule(
    parsed: ParsedRule,
    tokens: TokenTable,
    budget: Budget = DEFAULT_BUDGET,
    max_window: float = DEFAULT_MAX_WINDOW,
) -> Rule:
    """Turn a validated spec into a ready rule whose expressions and templates each run
    under ``budget``; raises ``CompileError`` with located errors."""
    spec = parsed.spec
    known, texts = _names(spec.on)
    errors = _source_errors(parsed, known, budget)
    if isinstance(spec, QuoteSpec):
        errors += quote_token_errors(parsed, spec, tokens)
    elif isinstance(spec, OrderSpec):
        errors += maker_errors(parsed, spec)
    history, history_errors = window_use(
        _sources(parsed), tokens, max_window, own_pair=isinstance(spec, QuoteSpec)
    )
    errors += history_errors
    if errors:
        raise CompileError(list(dict.fromkeys(errors)))
    common: dict[str, Any] = {
        "id": spec.id,
        "source": spec.on,
        "location": parsed.location,
        "fingerprint": parsed.fingerprint,
        "description": spec.description,
        "when": _expr(spec.when, "when", parsed, known, budget),
        "title": _template(spec.title or _default_title(spec), "title", parsed, texts, budget),
        "body": _template(
            spec.body or DEFAULT_BODIES[spec.on] + WHY_LINE, "body", parsed, texts, budget
        ),
        "tags": tuple(spec.notify or ()),
        "severity": spec.severity,
        "cooldown": spec.cooldown or 0.0,
        "positions": Places.of(parsed.positions, parsed.location.path),
        "history": history,
        "explain_when": _explainer(spec.when),
    }
    if isinstance(spec, OrderSpec):
        return OrderRule(
            kind="event",
            until=None,
            explain_until=None,
            for_=0.0,
            repeat=0.0,
            resolved=False,
            **common,
            chains=frozenset(spec.chain) if spec.chain else None,
            events=frozenset(spec.events) if spec.events else None,
            makers=frozenset(map(address_key, spec.maker)) if spec.maker else None,
        )
    state: dict[str, Any] = {
        "until": _expr(spec.until, "until", parsed, known, budget),
        "explain_until": _explainer(spec.until),
        "for_": spec.for_ or 0.0,
        "repeat": spec.repeat or 0.0,
        "resolved": spec.resolved,
    }
    if isinstance(spec, QuoteSpec):
        threshold = simple_threshold(spec.when) if spec.when and not history.used else None
        for op, limit in ((">", spec.above), ("<", spec.below)):
            if limit is not None:
                threshold, common["when"], common["explain_when"] = _limit(op, limit, repr(limit))
                break
        token_in = tokens.resolve(spec.pair.in_)
        token_out = tokens.resolve(spec.pair.out)
        mint_in = token_in.address if token_in else spec.pair.in_
        mint_out = token_out.address if token_out else spec.pair.out
        amount_token = token_in if spec.pair.exact_in else token_out
        raw = raw_amount(
            spec.pair.amount,
            amount_token.decimals if amount_token else None,
            parsed,
            spec.pair.in_ if spec.pair.exact_in else spec.pair.out,
        )
        return QuoteRule(
            kind="state",
            **common,
            **state,
            pair=_pair_key(mint_in, mint_out, raw, spec.pair.exact_in),
            decimals_in=token_in.decimals if token_in else None,
            decimals_out=token_out.decimals if token_out else None,
            symbol_in=sys.intern(token_in.symbol if token_in else spec.pair.in_[:8]),
            symbol_out=sys.intern(token_out.symbol if token_out else spec.pair.out[:8]),
            threshold=threshold,
        )
    if isinstance(spec, IntentSpec):
        if spec.overdue is not None:
            state["for_"] = spec.overdue  # pending from created_at, for `overdue`
        return IntentRule(
            kind="event" if spec.to is not None else "state",
            **common,
            **state,
            intents=frozenset(spec.intents) if spec.intents else None,
            to=frozenset(spec.to) if spec.to else None,
            overdue=spec.overdue,
        )
    assert isinstance(spec, FeedSpec)
    state["for_"] = max(state["for_"], spec.down_for)
    return FeedRule(kind="state", **common, **state, feed=spec.feed)


def _sources(parsed: ParsedRule) -> list[tuple[str, str, bool, Location]]:
    """The rule's expressions and templates that call a history function, located."""
    found = []
    for name in ("when", "until", "title", "body"):
        text = getattr(parsed.spec, name, None)
        if text and any(function in text for function in PAIR_FUNCTIONS):
            where = parsed.positions.get(name, parsed.location)
            found.append((name, text, name in {"when", "until"}, where))
    return found


def _explainer(source: str | None) -> Explainer | None:
    return None if source is None else _shared_explainer(source)


# Rules written alike share their parts: 100,000 rules hold a few hundred thresholds, pairs
# and conditions. Each part is immutable (an Explainer only caches its own parse).
@functools.lru_cache(maxsize=4096)
def _shared_explainer(source: str) -> Explainer:
    return Explainer(source)


@functools.lru_cache(maxsize=4096)
def _limit(op: str, limit: float, shown: str) -> tuple[Threshold, Predicate, Explainer]:
    """``above:``/``below:``'s index entry, predicate and explainer (``shown``: the limit's
    repr, so that 0.0 and -0.0 stay apart)."""
    compare = operator.gt if op == ">" else operator.lt
    return (op, limit), _threshold(compare, limit), Explainer(f"price {op} {shown}")


@functools.lru_cache(maxsize=65536)
def _pair_key(mint_in: str, mint_out: str, raw: str, exact_in: bool) -> PairKey:
    """One tuple (and one string of each mint) for all the rules of a pair."""
    return (mint_in, mint_out, raw, exact_in)


def _default_title(spec: QuoteSpec | OrderSpec | IntentSpec | FeedSpec) -> str:
    if isinstance(spec, IntentSpec) and spec.overdue is not None:
        return OVERDUE_TITLE
    return DEFAULT_TITLES[spec.on]


def _threshold(compare: Callable[[Any, Any], bool], limit: float) -> Predicate:
    def predicate(variables: Mapping[str, Any]) -> bool:
        price = variables.get("price")
        return price is not None and compare(price, limit)

    return predicate


def compile_file(
    parsed: ParsedFile,
    tokens: TokenTable,
    budget: Budget = DEFAULT_BUDGET,
    max_window: float = DEFAULT_MAX_WINDOW,
) -> tuple[list[Rule], list[RuleError]]:
    """A file's enabled rules, compiled, and every error of its rules (its own first)."""
    rules: list[Rule] = []
    errors = list(parsed.errors)
    for item in parsed.rules:
        try:
            rule = compile_rule(item, tokens, budget, max_window)
        except CompileError as exc:
            errors.extend(exc.errors)
            continue
        except RecursionError:  # e.g. `when:` nested in hundreds of parentheses
            errors.append(RuleError(item.location, "cannot compile this rule: nested too deeply"))
            continue
        except Exception as exc:  # a compiler defect must stay this rule's error
            message = f"cannot compile this rule: {type(exc).__name__}: {exc}"[:300]
            errors.append(RuleError(item.location, message))
            continue
        if item.spec.enabled:
            rules.append(rule)
    return rules, errors
