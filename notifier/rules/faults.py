"""What goes wrong in rules at run time: an expression or template that fails is counted,
logged with its ``path:line:col`` at most once a minute per rule and key (it counts as false),
and told to ``on_failed`` at most once an hour per rule (SPEC §12); one that runs past its
budget (``BudgetExceeded``) disables its rule until a rule set without that very rule object
is swapped in (its file changed), and ``on_disabled`` hears of it once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from notifier.metrics import Metrics
from notifier.rules.compiled import Rule
from notifier.rules.loader import RuleError
from notifier.rules.ruleset import RuleSet
from notifier.rules.sandbox import BudgetExceeded

__all__ = ["DisabledRule", "RuleFaults"]

log = logging.getLogger("notifier.rules.engine")

LOG_EVERY = 60.0  # seconds between two log lines for the same failing rule key
REPORT_EVERY = 3600.0  # seconds between two reports (errors_to) of the same failing rule


@dataclass(frozen=True, slots=True)
class DisabledRule:
    """A rule stopped for running past its budget; ``error`` is located at the offending key."""

    rule: Rule
    error: RuleError


class RuleFaults:
    """The engine's record of failing and disabled rules."""

    def __init__(
        self,
        metrics: Metrics,
        on_disabled: Callable[[DisabledRule], None] | None = None,
        on_failed: Callable[[Rule, RuleError], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = metrics
        self._clock = clock  # the engine's: virtual under ``notifier replay``
        self._on_disabled = on_disabled
        self._on_failed = on_failed
        self._disabled: dict[str, DisabledRule] = {}
        self._logged: dict[str, float] = {}
        self._reported: dict[str, float] = {}

    def report(self, rule: Rule, which: str, exc: Exception, current: RuleSet) -> bool:
        """Record a failure of ``rule``'s ``which`` key; True when it newly disabled the rule
        (the caller then routes events without it)."""
        if isinstance(exc, BudgetExceeded):
            return self._disable(rule, which, exc, current)
        self._metrics.rule_errors.labels(rule.id).inc()
        now = self._clock()
        tag = f"{rule.id}:{which}"
        where = rule.positions.get(which, rule.location)
        if now - self._logged.get(tag, -1e9) >= LOG_EVERY:
            self._logged[tag] = now
            log.warning("%s: %s: %s (counted as false)", where, which, exc)
        if self._on_failed is not None and now - self._reported.get(rule.id, -1e9) >= REPORT_EVERY:
            self._reported[rule.id] = now
            self._on_failed(rule, RuleError(where, f"{which}: {exc}"))
        return False

    def _disable(self, rule: Rule, which: str, exc: BudgetExceeded, current: RuleSet) -> bool:
        if rule.id in self._disabled or current.rules.get(rule.id) is not rule:
            return False
        where = rule.positions.get(which, rule.location)
        message = f"{which}: rule {rule.id!r} disabled until its file changes: {exc}"
        disabled = self._disabled[rule.id] = DisabledRule(rule, RuleError(where, message))
        self._metrics.rule_errors.labels(rule.id).inc()
        log.error("%s", disabled.error)
        if self._on_disabled is not None:
            self._on_disabled(disabled)
        return True

    def forget_changed(self, rules: RuleSet) -> None:
        """A rule whose object changed (its file was edited) runs again."""
        self._disabled = {
            rule_id: disabled
            for rule_id, disabled in self._disabled.items()
            if rules.rules.get(rule_id) is disabled.rule
        }

    def enabled(self, rules: RuleSet) -> RuleSet:
        """``rules`` without the disabled ones: what events reach."""
        if not self._disabled:
            return rules
        return RuleSet(r for r in rules.order if r.id not in self._disabled)

    def disabled(self) -> list[DisabledRule]:
        return list(self._disabled.values())
