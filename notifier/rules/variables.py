"""The variables a rule's expressions and templates see, per kind of event.

Quotes are the hot path: ``QuotePair`` holds what every quote of a pair shares (its rules,
token scales, names), computed once per rule set, so a quote costs one small dict.
"""

from __future__ import annotations

from typing import Any

from notifier.events import FeedEvent, IntentEvent, OrderEvent, QuoteEvent
from notifier.history.pricing import quote_amounts, scale
from notifier.rules.compiled import FeedRule, IntentRule, QuoteRule, Rule
from notifier.rules.thresholds import PairIndex
from notifier.tokens import TokenTable

__all__ = ["QuotePair", "feed_variables", "intent_variables", "order_variables", "refreshed"]


class QuotePair:
    """What every quote of one pair shares, computed once per rule set: its rules with their
    state keys, and the constants its variables come from (the first rule's tokens)."""

    __slots__ = (
        "amount",
        "exact_in",
        "index",
        "key",
        "last",
        "name",
        "reads_history",
        "rules",
        "scale_in",
        "scale_out",
        "state_keys",
        "symbols",
    )

    def __init__(self, rules: list[QuoteRule], *, indexed: bool = True) -> None:
        first = rules[0]
        self.key = first.key
        self.rules = rules  # the rule set's own list (never changed), and beside it
        self.state_keys = [(rule.id, self.key) for rule in rules]  # each rule's state key
        thresholds = [rule.threshold if indexed else None for rule in rules]
        self.index = PairIndex([rule.id for rule in rules], thresholds)
        self.amount = int(first.pair[2])
        self.exact_in = first.pair[3]
        self.scale_in = scale(first.decimals_in)
        self.scale_out = scale(first.decimals_out)
        self.symbols = (first.symbol_in, first.symbol_out)
        self.name = f"{first.symbol_in}/{first.symbol_out}"
        self.reads_history = any(rule.history.used for rule in rules)
        self.last: dict[str, Any] | None = None  # the last quote's variables, for the clock

    @classmethod
    def carried(
        cls, old: QuotePair | None, rules: list[QuoteRule], *, indexed: bool = True
    ) -> QuotePair:
        """``old`` again, as if built anew, when it holds the very same rules (a reload that
        left this pair alone), so a reload costs only the pairs it changed; else a new one.
        ``indexed`` must be what ``old`` was built with (an engine's setting never changes)."""
        if (
            old is None
            or len(old.rules) != len(rules)
            or any(mine is not rule for mine, rule in zip(old.rules, rules, strict=True))
        ):
            return cls(rules, indexed=indexed)
        old.last = None
        return old

    def variables(self, event: QuoteEvent, previous: float | None) -> dict[str, Any]:
        """A new dict per quote: a state keeps the variables it fired or resolved with."""
        amount_out = event.amount_out
        human_in, human_out, price = quote_amounts(
            self.amount, self.exact_in, self.scale_in, self.scale_out, amount_out
        )
        return {
            "price": price,
            "previous_price": previous,
            "amount_in": human_in,
            "amount_out": human_out,
            "amount_out_raw": amount_out,
            "price_impact_bps": event.price_impact_bps,
            "hops": event.hops,
            "slot": event.slot,
            "pair": self.name,
            "token_in": self.symbols[0],
            "token_out": self.symbols[1],
            "exact_in": self.exact_in,
            "event_at": event.at,
        }


def _human(raw: int | None, decimals: int | None) -> float | None:
    if raw is None or decimals is None:
        return None
    return raw / float(10) ** decimals


def order_variables(event: OrderEvent, tokens: TokenTable) -> dict[str, Any]:
    order = event.order
    remaining = event.remaining_maker_amount
    making = order.making_amount if order else None
    filled: float | None = None
    if event.event == "order_filled":
        filled = 1.0
    elif making and remaining is not None:
        filled = max(0.0, min(1.0, (making - remaining) / making))
    maker_token = tokens.by_address(order.maker_asset) if order else None
    taker_token = tokens.by_address(order.taker_asset) if order else None
    maker_dec = maker_token.decimals if maker_token else None
    return {
        "event": event.event,
        "order_hash": event.order_hash,
        "chain": event.chain,
        "maker": order.maker if order else None,
        "receiver": order.receiver if order else None,
        "maker_asset": order.maker_asset if order else None,
        "taker_asset": order.taker_asset if order else None,
        "making_amount": making,
        "taking_amount": order.taking_amount if order else None,
        "remaining_maker_amount": remaining,
        "filled_fraction": filled,
        "deadline": order.deadline if order else event.result.get("deadline"),
        "maker_asset_symbol": maker_token.symbol if maker_token else None,
        "taker_asset_symbol": taker_token.symbol if taker_token else None,
        "making_amount_human": _human(making, maker_dec),
        "taking_amount_human": _human(
            order.taking_amount if order else None, taker_token.decimals if taker_token else None
        ),
        "remaining_maker_amount_human": _human(remaining, maker_dec),
        "reconciled": event.reconciled,
        "event_at": event.at,
        # Solana (UPSTREAMS §1.7) carries these; an EVM event has none of them.
        "reason": event.result.get("reason"),
        "tx": event.result.get("transactionSignature"),
        "slot": event.result.get("slotNumber"),
        "resolver": event.result.get("resolver"),
    }


def intent_variables(event: IntentEvent, now: float) -> dict[str, Any]:
    return {
        **event.fields,
        "intent_id": event.intent_id,
        "status": event.status,
        "previous_status": event.previous_status,
        "label": event.label,
        "created_at": event.created_at,
        "age": now - event.created_at if event.created_at is not None else None,
        "swap_metadata": dict(event.swap_metadata or {}),
        "terminal": event.terminal,
        "now": now,
        "event_at": event.at,
    }


def feed_variables(event: FeedEvent, now: float) -> dict[str, Any]:
    return {
        "feed": event.feed,
        "up": event.up,
        "detail": event.detail,
        "now": now,
        "down_since": None if event.up else event.at,
        "down_seconds": 0.0,
    }


def refreshed(rule: Rule, variables: dict[str, Any], now: float) -> dict[str, Any]:
    """``variables`` with the time-dependent ones (``age``, ``down_seconds``) recomputed at
    timer time."""
    if isinstance(rule, IntentRule) and variables.get("created_at") is not None:
        return {**variables, "age": now - float(variables["created_at"]), "now": now}
    if isinstance(rule, FeedRule) and variables.get("down_since") is not None:
        return {**variables, "down_seconds": now - float(variables["down_since"]), "now": now}
    return {**variables, "now": now}
