"""What a standby member serves on ``http.listen``: ``/healthz`` 200, ``/readyz`` 503 with
``{"ready": false, "role": "standby"}``, ``/metrics``, and a status document that lists the
group; its rules are loaded and checked, never evaluated (SPEC §11)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from notifier import __version__
from notifier.config import Settings
from notifier.http import NotActiveError
from notifier.metrics import Metrics
from notifier.rules import ReloadResult, RuleRepository
from notifier.rules.metering import Budget
from notifier.statusdoc import rule_files_json

__all__ = ["StandbyView"]


class StandbyView:
    """The HTTP API's view of a standby member (``notifier.http.DaemonView``)."""

    ha_role = "standby"

    def __init__(
        self, settings: Settings, metrics: Metrics, ha_status: Callable[[], dict[str, Any]]
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._ha_status = ha_status
        self.started_at = time.time()
        budget = Budget(cpu=settings.limits.eval_cpu, memory=int(settings.limits.eval_memory))
        self.repository = RuleRepository(
            settings.rules_dir,
            settings.token_table(),
            budget,
            max_bytes=settings.rules_max_bytes,
            max_window=settings.history.max_window,
        )
        self.last_reload: ReloadResult | None = None

    def check_rules(self) -> ReloadResult:
        """Load and compile the rules dir (errors are in the result): what the member would
        run if it took over. Blocking: call from a worker thread."""
        self.last_reload = self.repository.reload()
        return self.last_reload

    def feeds_ready(self) -> tuple[bool, list[str]]:
        return False, ["standby"]

    def status(self) -> dict[str, Any]:
        files = self.last_reload.files if self.last_reload else ()
        loaded = len(self.last_reload.ruleset.rules) if self.last_reload else 0
        ha = self._ha_status()
        return {
            "version": __version__,
            "uptime_s": round(time.time() - self.started_at, 1),
            "ready": False,
            "summary": f"standby, {loaded} rules checked; active: {ha.get('holder') or 'none'}",
            "feeds": [],
            "rules": {
                "loaded": loaded,
                "dir": str(self.settings.rules_dir),
                "dir_error": None,
                "files": rule_files_json(files, {}),
            },
            "alerts": [],
            "alert_counts": {},
            "outbox": {},
            "ha": ha,
        }

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        return []

    def track_intent(self, intent_id: str, label: str | None) -> bool:
        raise NotActiveError("this member is a standby: ask the active member")

    def untrack_intent(self, intent_id: str) -> bool:
        raise NotActiveError("this member is a standby: ask the active member")
