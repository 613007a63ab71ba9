"""``RuleSet``: the compiled rules of one generation with the indexes events are routed by,
so an event reaches only the rules that can match it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TypeVar

from notifier.events import Interest, PairKey
from notifier.history.pricing import Pricing
from notifier.rules.compiled import FeedRule, IntentRule, OrderRule, QuoteRule, Rule
from notifier.rules.windowcalls import NO_HISTORY
from notifier.tokens import address_key

__all__ = ["RuleSet"]


_K = TypeVar("_K")
_R = TypeVar("_R")


def _extend(table: dict[_K, list[_R]], more: dict[_K, list[_R]]) -> None:
    for key, rules in more.items():
        table.setdefault(key, []).extend(rules)


class RuleSet:
    """An immutable set of compiled rules with the indexes events are routed by."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules: dict[str, Rule] = {r.id: r for r in rules}
        self.by_pair: dict[PairKey, list[QuoteRule]] = defaultdict(list)
        self.orders: dict[tuple[int | None, str | None], list[OrderRule]] = defaultdict(list)
        self.intents: dict[str | None, list[IntentRule]] = defaultdict(list)
        self.feeds: dict[str, list[FeedRule]] = defaultdict(list)
        self.pricing: dict[PairKey, Pricing] = {}  # every pair a rule watches or reads
        self.pair_names: dict[str, PairKey] = {}  # other pairs as rules write them
        self.windows: set[tuple[PairKey, float]] = set()  # (pair, window) rules read
        self.clocked: list[Rule] = []  # rules that read a window: re-evaluated on the clock
        for rule in self.rules.values():
            self._index_history(rule)
            if isinstance(rule, QuoteRule):
                self.by_pair[rule.pair].append(rule)
            elif isinstance(rule, OrderRule):
                for chain in rule.chains or (None,):
                    for maker in rule.makers or (None,):
                        self.orders[(chain, maker)].append(rule)
            elif isinstance(rule, IntentRule):
                for intent_id in rule.intents or (None,):
                    self.intents[intent_id].append(rule)
            elif isinstance(rule, FeedRule):
                self.feeds[rule.feed].append(rule)

    @classmethod
    def joined(cls, parts: Iterable[RuleSet]) -> RuleSet:
        """The rule set of the rules of ``parts``, in order: equal, order of every index
        included, to a ``RuleSet`` of their rules concatenated, but built from the parts'
        indexes (a reload rebuilds the part of a changed file only)."""
        out = cls()
        for part in parts:
            out.rules.update(part.rules)
            _extend(out.by_pair, part.by_pair)
            _extend(out.orders, part.orders)
            _extend(out.intents, part.intents)
            _extend(out.feeds, part.feeds)
            for pair, pricing in part.pricing.items():
                out.pricing.setdefault(pair, pricing)  # the first rule's, as in a full build
            out.pair_names.update(part.pair_names)  # the last rule's, as in a full build
            out.windows |= part.windows
            out.clocked += part.clocked
        return out

    def _index_history(self, rule: Rule) -> None:
        use = rule.history
        if use is NO_HISTORY:  # most rules: only a quote rule's own pair
            if isinstance(rule, QuoteRule) and rule.pair not in self.pricing:
                self.pricing[rule.pair] = rule.pricing
            return
        for written, ref in use.pairs.items():
            self.pricing.setdefault(ref.key, ref.pricing)
            self.pair_names[written] = ref.key
        own = rule.pair if isinstance(rule, QuoteRule) else None
        if isinstance(rule, QuoteRule):
            self.pricing.setdefault(rule.pair, rule.pricing)
        for named, window in use.windows:
            pair = own if named is None else use.pairs[named].key
            if pair is not None:
                self.windows.add((pair, window))
        if use.clocked:
            self.clocked.append(rule)

    def order_rules(self, chain: int, maker: str | None) -> list[OrderRule]:
        found: list[OrderRule] = []
        for c in (chain, None):
            if maker:
                found += self.orders.get((c, address_key(maker)), ())
            found += self.orders.get((c, None), ())
        return found

    def interest(self) -> Interest:
        makers: set[str] = set()
        chains: set[int] = set()
        any_maker = False
        intents: set[str] = set()
        for rule in self.rules.values():
            if isinstance(rule, OrderRule):
                if rule.makers is None:
                    any_maker = True
                else:
                    makers |= rule.makers
                chains |= rule.chains or set()
            elif isinstance(rule, IntentRule) and rule.intents:
                intents |= rule.intents
        return Interest(
            pairs=frozenset(self.pricing),
            intents=frozenset(intents),
            makers=frozenset() if any_maker else frozenset(makers),
            chains=frozenset(chains),
        )
