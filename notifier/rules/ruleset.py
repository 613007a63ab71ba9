"""``RuleSet``: the compiled rules of one generation with the indexes events are routed by,
so an event reaches only the rules that can match it."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable

from notifier.events import Interest, PairKey
from notifier.history.pricing import Pricing
from notifier.rules.compiled import FeedRule, IntentRule, OrderRule, QuoteRule, Rule
from notifier.rules.windowcalls import NO_HISTORY
from notifier.tokens import address_key

__all__ = ["RuleSet"]


def _plain_quotes(rules: list[Rule]) -> list[QuoteRule]:
    """The quote rules that read no history (indexed by their own pair only) of ``rules``."""
    return [r for r in rules if isinstance(r, QuoteRule) and r.history is NO_HISTORY]


class RuleSet:
    """An immutable set of compiled rules with the indexes events are routed by."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules: dict[str, Rule] = {r.id: r for r in rules}  # by id; ``order`` is the order
        self.order: list[Rule] = list(self.rules.values())  # the order the rules were given in
        self.by_pair: dict[PairKey, list[QuoteRule]] = defaultdict(list)
        self.orders: dict[tuple[int | None, str | None], list[OrderRule]] = defaultdict(list)
        self.intents: dict[str | None, list[IntentRule]] = defaultdict(list)
        self.feeds: dict[str, list[FeedRule]] = defaultdict(list)
        self.pricing: dict[PairKey, Pricing] = {}  # every pair a rule watches or reads
        self.pair_names: dict[str, PairKey] = {}  # other pairs as rules write them
        self.windows: set[tuple[PairKey, float]] = set()  # (pair, window) rules read
        self.clocked: list[Rule] = []  # rules that read a window: re-evaluated on the clock
        for rule in self.order:
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

    def replaced(
        self, old: list[Rule], new: list[Rule], rank: Callable[[Rule], int], file: int
    ) -> RuleSet | None:
        """This set with one file's rules ``old`` replaced by ``new``, equal to a ``RuleSet``
        built over all the rules (the same rules, ``order``, and indexes with their rules in
        the same order; only the order of the pairs among the keys of ``by_pair`` and
        ``pricing``, which nothing iterates, may differ),
        where ``rank`` gives each rule's file number (the rules sit in file order) and ``file``
        is the changed one's. Built from the pairs the file touches; None when only a full
        build is exact (rules other than plain quote rules, rules reading other pairs, a pair
        gained or lost)."""
        old_quotes, new_quotes = _plain_quotes(old), _plain_quotes(new)
        if self.pair_names or len(old_quotes) != len(old) or len(new_quotes) != len(new):
            return None
        values = self.order
        start = bisect_left(values, file, key=rank)
        end = bisect_right(values, file, key=rank)
        if len(old) != end - start or any(
            a is not b for a, b in zip(old, values[start:end], strict=True)
        ):
            return None
        mine: dict[PairKey, list[QuoteRule]] = {}
        for rule in new_quotes:
            mine.setdefault(rule.pair, []).append(rule)
        out = RuleSet()
        out.by_pair.update(self.by_pair)
        out.pricing.update(self.pricing)
        for pair in {*mine, *(r.pair for r in old_quotes)}:
            rules = self.by_pair.get(pair)
            if not rules:
                return None  # a new pair: its place among the keys is the full build's
            first = bisect_left(rules, file, key=rank)
            last = bisect_right(rules, file, key=rank)
            rules = [*rules[:first], *mine.get(pair, ()), *rules[last:]]
            if not rules:
                return None
            out.by_pair[pair] = rules
            out.pricing[pair] = rules[0].pricing  # the first rule's, as in a full build
        out.order = [*values[:start], *new, *values[end:]]
        out.rules = self.rules.copy()  # a copy is cheap, a new dict of 100,000 rules is not
        out.rules.update((rule.id, rule) for rule in new)
        kept = {rule.id for rule in new}
        for gone in old:  # an id this file gave up may be another changed file's by now
            if gone.id not in kept and out.rules.get(gone.id) is gone:
                del out.rules[gone.id]
        out.orders, out.intents, out.feeds = self.orders, self.intents, self.feeds
        out.windows, out.clocked = self.windows, self.clocked
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
