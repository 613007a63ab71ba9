"""What a reload of the rules directory says: per file, and the rule set to swap in."""

from __future__ import annotations

from dataclasses import dataclass, field

from notifier.rules.loader import RuleError
from notifier.rules.ruleset import RuleSet

__all__ = ["FileReport", "ReloadResult"]


@dataclass(frozen=True, slots=True)
class FileReport:
    path: str
    digest: str
    rules: tuple[str, ...]  # ids active from this file (the last good version if it failed)
    errors: tuple[RuleError, ...] = ()
    loaded: bool = True  # False: in error and never good, so none of its rules run

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    @property
    def outcome(self) -> str:
        """What a failure means for the running rules, in the words errors_to and status use."""
        if not self.failed:
            return "loaded"
        return "last good version kept" if self.loaded else "not loaded"


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ruleset: RuleSet
    files: tuple[FileReport, ...]
    changed: bool  # False when every file's bytes were unchanged
    new_errors: tuple[RuleError, ...] = field(default=())  # errors not reported before
    fixed: tuple[str, ...] = field(default=())  # files in error before that now load cleanly

    @property
    def errors(self) -> list[RuleError]:
        return [e for f in self.files for e in f.errors]
