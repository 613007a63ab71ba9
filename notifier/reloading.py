"""The daemon's rule reloads: on request (SIGHUP, the control API), on a change in the rules
dir, on a periodic rescan; one at a time, read off the loop and swapped in on it."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from notifier.errorreports import ErrorReports
from notifier.events import Interest
from notifier.metrics import Metrics
from notifier.rules import ReloadResult, RuleRepository, RulesDirError
from notifier.rules.compiled import Rule
from notifier.rules.engine import DisabledRule, Engine
from notifier.rules.loader import RuleError
from notifier.rulewatch import watch_rules_dir
from notifier.sources import Source
from notifier.systemd import SystemdNotifier

if TYPE_CHECKING:
    from notifier.config import Settings
    from notifier.dispatch import Dispatcher

__all__ = ["RESCAN_INTERVAL", "RuleReloading"]

log = logging.getLogger(__name__)

RESCAN_INTERVAL = 60.0


class RuleReloading:
    """Rule reloads, a base of ``Daemon``: the daemon owns the state named here and calls
    ``_after_reload`` once its engine runs the first rules."""

    settings: Settings
    repository: RuleRepository
    engine: Engine
    dispatcher: Dispatcher
    sources: list[Source]
    metrics: Metrics
    systemd: SystemdNotifier
    reloads: int
    last_reload: ReloadResult | None
    rules_dir_error: str | None  # the rules dir is gone: the last rules run on
    watching: asyncio.Event  # set once file changes are being watched
    _reload_requested: asyncio.Event
    _reloading: asyncio.Lock
    _watch_stop: asyncio.Event

    def _publish_status(self) -> None:
        raise NotImplementedError

    def request_reload(self) -> None:
        """Ask for a reload (SIGHUP, the control API); it runs on the event loop."""
        self._reload_requested.set()

    def reload(self, reason: str = "request") -> ReloadResult:
        """Re-read the rules dir on the calling thread (tests); the daemon itself uses
        ``_reload``."""
        started = time.perf_counter()
        return self._apply(self.repository.reload(), started, reason)

    async def _reload(self, reason: str) -> ReloadResult | None:
        """Read, parse and compile in a worker thread, so that no rule file holds the event
        loop; swap the result in on the loop, one reload at a time. While the rules dir is
        gone nothing changes: ``None``."""
        async with self._reloading:
            started = time.perf_counter()
            try:
                result = await asyncio.to_thread(self.repository.reload)
            except RulesDirError as exc:
                self._rules_dir_gone(str(exc))
                return None
            if self.rules_dir_error is not None:
                self._rules_dir_back()
            return self._apply(result, started, reason)

    def _rules_dir_gone(self, problem: str) -> None:
        self.metrics.reloads.labels("failed").inc()
        if self.rules_dir_error is not None:
            return  # said once; the watcher looks for the directory to come back
        self.rules_dir_error = problem
        log.error("%s; the last rules loaded keep running until it is back", problem)
        ErrorReports(self.dispatcher).rules_dir_gone(self.settings.rules_dir, problem)
        self._publish_status()

    def _rules_dir_back(self) -> None:
        self.rules_dir_error = None
        log.info("rules dir %s is back; reloading", self.settings.rules_dir)
        ErrorReports(self.dispatcher).rules_dir_back(self.settings.rules_dir)

    def _apply(self, result: ReloadResult, started: float, reason: str) -> ReloadResult:
        if result.changed:
            self.engine.swap(result.ruleset)
            interest = self._interest(result)
            for source in self.sources:
                source.set_interest(interest)
        self._after_reload(result, started, reason)
        return result

    def _after_reload(self, result: ReloadResult, started: float, reason: str = "start") -> None:
        self.last_reload = result
        self.reloads += 1
        failed = [f for f in result.files if f.failed]
        self.metrics.rules_loaded.set(len(result.ruleset.rules))
        self.metrics.rule_files_failed.set(len(failed))
        self.metrics.reloads.labels("failed" if failed else "ok").inc()
        self.metrics.reload_seconds.observe(time.perf_counter() - started)
        if result.changed:
            log.info(
                "rules loaded (%s): %d active from %d file(s), %d file(s) with errors",
                reason, len(result.ruleset.rules), len(result.files), len(failed),
            )  # fmt: skip
        for error in result.new_errors:
            log.error("%s", error)
        for path in result.fixed:
            log.info("%s: fixed, loaded again", path)
        ErrorReports(self.dispatcher).reloaded(result)
        self._publish_status()

    def _rule_failed(self, rule: Rule, error: RuleError) -> None:
        ErrorReports(self.dispatcher).rule_failed(rule, error)

    def _rule_disabled(self, disabled: DisabledRule) -> None:
        ErrorReports(self.dispatcher).rule_disabled(disabled)
        self._publish_status()

    def _interest(self, result: ReloadResult) -> Interest:
        return result.ruleset.interest()

    async def _reloader(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._reload_requested.wait(), RESCAN_INTERVAL)
                reason = "signal"
            except TimeoutError:
                reason = "rescan"
            self._reload_requested.clear()
            if reason == "signal":
                self.systemd.reloading()
            await self._reload_logged(reason)
            if reason == "signal":
                self.systemd.ready()

    async def _watch(self) -> None:
        await watch_rules_dir(
            self.settings.rules_dir,
            stop=self._watch_stop,
            watching=self.watching,
            reload=lambda: self._reload_logged("watch"),
            dir_error=lambda: self.rules_dir_error,
        )

    async def _reload_logged(self, reason: str) -> None:
        try:
            await self._reload(reason)
        except Exception:
            log.exception("reload failed; previous rules keep running")
