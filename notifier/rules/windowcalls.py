"""What a rule reads of the quote history, found in its expressions and templates at load:
every call of a window function must have literal arguments — a duration within
``[history] max_window`` and, optionally, a pair — so mistakes are load errors at
``path:line:col`` and the pairs a rule reads are known (and subscribed) before it runs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from jinja2 import nodes

from notifier.durations import format_duration, parse_duration
from notifier.events import PairKey
from notifier.history.pricing import Pricing, scale
from notifier.rules.bounds import ENV
from notifier.rules.loader import Location, RuleError
from notifier.rules.windowfns import PAIR_FUNCTIONS, WINDOW_FUNCTIONS
from notifier.tokens import TokenTable, is_base58_address

__all__ = ["NO_HISTORY", "PairRef", "WindowUse", "parse_pair", "window_use"]

_PAIR = re.compile(r"^\s*([^/@\s]+)\s*/\s*([^/@\s]+)\s*(?:@\s*([0-9]+(?:\.[0-9]+)?)\s*)?$")


@dataclass(frozen=True, slots=True)
class PairRef:
    """A pair as a rule names it, resolved: its subscription key and how to price it."""

    key: PairKey
    pricing: Pricing


@dataclass(frozen=True, slots=True)
class WindowUse:
    """The history a rule reads: other pairs by their written name, and the windows."""

    pairs: Mapping[str, PairRef] = field(default_factory=dict)
    windows: frozenset[tuple[str | None, float]] = frozenset()  # (pair as written | own, s)
    clocked: bool = False  # reads a window: re-evaluated on the clock as well

    @property
    def used(self) -> bool:
        """Whether the rule calls any history function at all."""
        return bool(self.pairs or self.windows)

    @property
    def reads(self) -> frozenset[PairKey]:
        return frozenset(ref.key for ref in self.pairs.values())


NO_HISTORY = WindowUse()  # the use of a rule that reads no history (never mutated)


def parse_pair(text: str, tokens: TokenTable) -> PairRef:
    """``IN/OUT`` (amount 1 of IN, exact in) or ``IN/OUT@AMOUNT`` (whole tokens of IN, or
    smallest units when IN's decimals are unknown); raises ValueError saying what is wrong."""
    match = _PAIR.match(text)
    if match is None:
        raise ValueError(f"pair {text!r}: write it IN/OUT or IN/OUT@AMOUNT, as in 'SOL/USDC'")
    symbol_in, symbol_out, amount_text = match.groups()
    sides = []
    for symbol in (symbol_in, symbol_out):
        token = tokens.resolve(symbol)
        address = token.address if token else symbol
        if not is_base58_address(address):
            raise ValueError(
                f"pair {text!r}: {symbol!r} is not a Fogo token symbol or a mint address"
            )
        sides.append(
            (address, token.decimals if token else None, token.symbol if token else symbol)
        )
    (mint_in, dec_in, name_in), (mint_out, dec_out, name_out) = sides
    amount = float(amount_text) if amount_text else 1.0
    if dec_in is None and not amount.is_integer():
        raise ValueError(
            f"pair {text!r}: decimals of {symbol_in} are unknown, so the amount must be an "
            "integer of smallest units"
        )
    raw = round(amount * 10**dec_in) if dec_in is not None else int(amount)
    if raw <= 0:
        raise ValueError(f"pair {text!r}: the amount must be positive")
    key: PairKey = (mint_in, mint_out, str(raw), True)
    pricing = Pricing(raw, True, scale(dec_in), scale(dec_out), f"{name_in[:8]}/{name_out[:8]}")
    return PairRef(key, pricing)


def window_use(
    sources: Iterable[tuple[str, str, bool, Location]],
    tokens: TokenTable,
    max_window: float,
    *,
    own_pair: bool,
) -> tuple[WindowUse, list[RuleError]]:
    """Check every history-function call in ``sources`` (name, text, is-expression, where)."""
    found = _Calls(tokens, max_window, own_pair)
    for name, text, expression, where in sources:
        try:
            tree = ENV.parse("{{ " + text + " }}" if expression else text)
        except Exception:  # noqa: S112 - a syntax error: the compiler reports it, located
            continue
        for call in tree.find_all(nodes.Call):
            if isinstance(call.node, nodes.Name) and call.node.name in PAIR_FUNCTIONS:
                found.check(name, call.node.name, call, _located(where, text, call))
    if not (found.pairs or found.windows or found.clocked):
        return NO_HISTORY, found.errors  # most rules: one shared object, not a dict each
    return WindowUse(found.pairs, frozenset(found.windows), found.clocked), found.errors


class _Calls:
    """The history calls of one rule, checked one by one."""

    def __init__(self, tokens: TokenTable, max_window: float, own_pair: bool) -> None:
        self.tokens = tokens
        self.max_window = max_window
        self.own_pair = own_pair
        self.pairs: dict[str, PairRef] = {}
        self.windows: set[tuple[str | None, float]] = set()
        self.clocked = False
        self.errors: list[RuleError] = []

    def check(self, name: str, function: str, call: nodes.Call, at: Location) -> None:
        def fail(message: str) -> None:
            self.errors.append(RuleError(at, f"{name}: {function}(): {message}"))

        if call.kwargs or call.dyn_args or call.dyn_kwargs:
            return fail("takes positional literal arguments only")
        arity = (1, 1) if function == "price_of" else (1, 2)
        if not arity[0] <= len(call.args) <= arity[1]:
            wanted = "a pair" if function == "price_of" else "a duration and optionally a pair"
            return fail(f"takes {wanted}, got {len(call.args)} argument(s)")
        literal = [a.value for a in call.args if isinstance(a, nodes.Const)]
        if len(literal) != len(call.args) or not all(isinstance(v, str) for v in literal):
            return fail("arguments must be string literals, as in pct_change('1h', 'SOL/USDC')")
        pair = literal[-1] if function == "price_of" or len(literal) == 2 else None
        if function in WINDOW_FUNCTIONS:
            seconds = _window(literal[0], self.max_window)
            if isinstance(seconds, str):
                return fail(seconds)
            self.windows.add((pair, seconds))
            self.clocked = True
        if pair is None:
            if not self.own_pair:
                example = f"{function}('{literal[0]}', 'SOL/USDC')"
                fail(f"this rule has no pair of its own: name one, as in {example}")
            return None
        if pair not in self.pairs:
            try:
                self.pairs[pair] = parse_pair(pair, self.tokens)
            except ValueError as exc:
                fail(str(exc))
        return None


def _window(text: str, max_window: float) -> float | str:
    """The window in seconds, or what is wrong with it."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        return str(exc)
    if seconds <= 0:
        return f"window {text!r} must be longer than zero"
    if seconds > max_window:
        return (
            f"window {text!r} is longer than [history] max_window ({format_duration(max_window)})"
        )
    return seconds


def _located(where: Location, text: str, call: nodes.Call) -> Location:
    """The call's line in the file and, when it can be found on that line, its column."""
    line = call.lineno - 1
    lines = text.splitlines() or [""]
    source_line = lines[min(line, len(lines) - 1)]
    name = call.node.name if isinstance(call.node, nodes.Name) else ""
    column = source_line.find(name + "(")
    if line == 0 and column >= 0:
        return Location(where.path, where.line, where.col + column)
    shifted = where.shifted(line)
    return Location(shifted.path, shifted.line, column + 1 if column >= 0 else shifted.col)
