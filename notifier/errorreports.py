"""What the daemon tells the ``errors_to`` tags about the rules: errors found, files fixed, a
rule failing or disabled, the rules dir gone and back — each with a dedup key, so a message is
sent once however often the condition is seen."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from notifier.rules import ReloadResult
from notifier.rules.compiled import Rule
from notifier.rules.engine import DisabledRule
from notifier.rules.loader import RuleError

__all__ = ["ErrorReports"]


class ErrorSink(Protocol):
    def report_error(self, key: str, title: str, body: str) -> bool: ...


class ErrorReports:
    """The messages to ``errors_to``; the dispatcher queues them like any notification."""

    def __init__(self, sink: ErrorSink) -> None:
        self._sink = sink

    def rules_dir_gone(self, directory: Path, problem: str) -> None:
        self._sink.report_error(
            f"rules-dir-gone|{directory}|{time.time()}",
            f"notifier: rules dir {directory} is gone",
            f"{problem}. The rules loaded last keep running, with their state; notifier "
            "reloads as soon as the directory is back.",
        )

    def rules_dir_back(self, directory: Path) -> None:
        self._sink.report_error(
            f"rules-dir-back|{directory}|{time.time()}",
            f"notifier: rules dir {directory} is back",
            f"{directory} can be read again; its rules are loaded.",
        )

    def reloaded(self, result: ReloadResult) -> None:
        """New errors of a reload (once per failing files' texts), and each file fixed."""
        if result.new_errors:
            failed = [f for f in result.files if f.failed]
            body = "\n".join(str(e) for e in result.new_errors)
            digest = ",".join(sorted({f.digest[:12] for f in failed}))
            paths = {e.location.path for e in result.new_errors}
            outcomes = "; ".join(
                f"{Path(f.path).name} {f.outcome}" for f in failed if f.path in paths
            )
            self._sink.report_error(
                f"rule-errors|{digest}",
                f"notifier: {len(result.new_errors)} rule error(s); {outcomes}",
                body,
            )
        for path in result.fixed:  # once per fix: the errors_to tags heard of the errors
            self._sink.report_error(
                f"rule-fixed|{path}|{time.time()}",
                f"notifier: {path} fixed, loaded again",
                f"{path} has no errors any more; its rules run.",
            )

    def rule_failed(self, rule: Rule, error: RuleError) -> None:
        """A rule's expression or template raised: at most once an hour per rule."""
        self._sink.report_error(
            f"rule-failed|{rule.id}|{int(time.time() // 3600)}",
            f"notifier: rule {rule.id} failed",
            f"{error}\nIt counts as false until fixed; this is said at most once an hour.",
        )

    def rule_disabled(self, disabled: DisabledRule) -> None:
        """Once per disabled rule text."""
        rule = disabled.rule
        self._sink.report_error(
            f"rule-disabled|{rule.id}|{rule.fingerprint}",
            f"notifier: rule {rule.id} disabled",
            f"{disabled.error}\nIt stays disabled until {rule.location.path} changes.",
        )
