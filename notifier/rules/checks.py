"""Checks of a rule's tokens and addresses at load, each a located error with a suggestion."""

from __future__ import annotations

import math

from notifier.events import SOLANA_CHAIN
from notifier.rules.loader import ParsedRule, RuleError, did_you_mean
from notifier.rules.model import OrderSpec, QuoteSpec
from notifier.tokens import TokenTable, is_base58_address, is_evm_address

__all__ = ["CompileError", "maker_errors", "quote_token_errors", "raw_amount"]


class CompileError(Exception):
    def __init__(self, errors: list[RuleError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def raw_amount(amount: float | str, decimals: int | None, parsed: ParsedRule, tokens: str) -> str:
    if isinstance(amount, str):
        return amount  # a digit string is already in smallest units
    if decimals is None:
        if float(amount).is_integer():
            return str(int(amount))
        where = parsed.positions.get("pair", parsed.location)
        raise CompileError(
            [
                RuleError(
                    where,
                    f"pair.amount: decimals of {tokens} are unknown, so amount must be an integer "
                    "of smallest units (or add the token under [tokens] in the config)",
                )
            ]
        )
    scaled = amount * 10**decimals
    if not math.isfinite(scaled):
        where = parsed.positions.get("pair", parsed.location)
        raise CompileError([RuleError(where, f"pair.amount: {amount} {tokens} is out of range")])
    return str(round(scaled))


def quote_token_errors(parsed: ParsedRule, spec: QuoteSpec, tokens: TokenTable) -> list[RuleError]:
    """Quotes are on Fogo: each side is a Fogo symbol or a base58 mint, not an EVM token."""
    errors = []
    for side, value in (("in", spec.pair.in_), ("out", spec.pair.out)):
        token = tokens.resolve(value)
        if is_base58_address(token.address if token else value):
            continue
        fogo = [t.symbol for t in tokens if is_base58_address(t.address)]
        listed = ", ".join(fogo)
        if token is not None or is_evm_address(value):
            what = f"{token.symbol} is an EVM token ({token.address})" if token else ""
            what = what or f"{value} is an EVM address"
            message = f"{what}; quotes are on Fogo: use a Fogo symbol ({listed}) or a mint address"
        else:
            suggestion = did_you_mean(value, fogo)
            message = (
                f"unknown token {value!r}"
                + (f"{suggestion} " if suggestion else ". ")
                + f"A quote token is a Fogo symbol ({listed}) or a mint address "
                "(base58, 32 to 44 characters)"
            )
        where = parsed.positions.get(f"pair.{side}", parsed.positions.get("pair", parsed.location))
        errors.append(RuleError(where, f"pair.{side}: {message}"))
    return errors


def maker_errors(parsed: ParsedRule, spec: OrderSpec) -> list[RuleError]:
    """A maker is an address of one of the rule's chains (of any chain when none is named)."""
    chains = spec.chain or []
    evm = not chains or any(c != SOLANA_CHAIN for c in chains)
    solana = not chains or SOLANA_CHAIN in chains
    forms = " or ".join(
        [
            *(["0x and 40 hex digits"] if evm else []),
            *(["base58, 32 to 44 characters"] if solana else []),
        ]
    )
    on = (
        f" on chain{'s' if len(chains) > 1 else ''} {', '.join(map(str, chains))}" if chains else ""
    )
    errors = []
    for i, maker in enumerate(spec.maker or ()):
        if (evm and is_evm_address(maker)) or (solana and is_base58_address(maker)):
            continue
        where = parsed.positions.get(f"maker.{i}", parsed.positions.get("maker", parsed.location))
        errors.append(RuleError(where, f"maker: {maker!r} is not an address{on}: expected {forms}"))
    return errors
