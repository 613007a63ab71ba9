"""The dashboard's sections as plain data read from the running daemon (``DashboardView``):
feeds with the time they went up or down, rule files and rules, alerts, watched pairs, and
their charts. Called on the event loop; nothing here blocks or touches the store."""

from __future__ import annotations

import time
from typing import Any, Protocol

from prometheus_client import Counter

from notifier import __version__
from notifier.config import Settings
from notifier.dashboard.chartdata import (
    PairChart,
    auto_window,
    chart_rule,
    downsample,
    pair_key,
)
from notifier.dashboard.episodes import EpisodeLog
from notifier.events import PairKey
from notifier.history.book import HistoryBook
from notifier.metrics import Metrics
from notifier.rules import ReloadResult
from notifier.rules.compiled import QuoteRule
from notifier.rules.engine import Engine
from notifier.sources import Source
from notifier.timestamps import parse_iso

__all__ = ["MAX_ALERTS", "DashboardView", "FeedWatch", "Sections"]

MAX_ALERTS = 200  # shown; the heading says how many there are


class DashboardView(Protocol):
    """What the dashboard reads from the daemon (``notifier.daemon.Daemon`` has it all)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def sources(self) -> list[Source]: ...
    @property
    def last_reload(self) -> ReloadResult | None: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def history(self) -> HistoryBook: ...
    @property
    def started_at(self) -> float: ...
    @property
    def rules_dir_error(self) -> str | None: ...
    @property
    def metrics(self) -> Metrics: ...

    def summary(self) -> str: ...

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]: ...


class FeedWatch:
    """When each feed last went up or down (sources report only whether they are up now)."""

    def __init__(self, started_at: float) -> None:
        self._started_at = started_at
        self._since: dict[str, tuple[bool, float]] = {}

    def since(self, name: str, up: bool, now: float) -> float:
        known = self._since.get(name)
        if known is None:
            known = self._since[name] = (up, self._started_at)
        elif known[0] != up:
            known = self._since[name] = (up, now)
        return known[1]


class Sections:
    """Builds each section's data from the daemon."""

    def __init__(self, view: DashboardView, episodes: EpisodeLog) -> None:
        self.view = view
        self.episodes = episodes
        self.feed_watch = FeedWatch(view.started_at)

    def feeds(self, now: float) -> list[dict[str, Any]]:
        found = []
        for source in self.view.sources:
            status = source.status()
            found.append(
                {
                    "name": status.name,
                    "up": status.up,
                    "since": self.feed_watch.since(status.name, status.up, now),
                    "detail": status.detail,
                    "connections": status.connections,
                    "reconnects": status.reconnects,
                    "errors": status.errors,
                    "last_event_at": status.last_event_at,
                    "tracked": status.tracked,
                }
            )
        return found

    def rules_fingerprint(self) -> tuple[Any, ...]:
        """What the rules section's text depends on (states are sent apart)."""
        view = self.view
        disabled = tuple(sorted(d.rule.id for d in view.engine.disabled()))
        return (id(view.last_reload), id(view.engine.rules), disabled, view.rules_dir_error)

    def rules(self) -> dict[str, Any]:
        view = self.view
        loaded = view.engine.rules.rules
        disabled = {d.rule.id: str(d.error) for d in view.engine.disabled()}
        files = []
        for report in view.last_reload.files if view.last_reload else ():
            rules: list[dict[str, Any]] = []
            for rule_id in report.rules:
                rule = loaded.get(rule_id)
                if rule is None:
                    continue
                rules.append(
                    {
                        "id": rule.id,
                        "source": rule.source,
                        "kind": rule.kind,
                        "line": rule.location.line,
                        "description": rule.description,
                        "severity": rule.severity,
                        "disabled": disabled.get(rule.id),
                    }
                )
            errors = [str(e) for e in report.errors]
            errors += [disabled[r["id"]] for r in rules if r["disabled"]]
            files.append(
                {"path": report.path, "loaded": report.loaded, "errors": errors, "rules": rules}
            )
        return {
            "files": files,
            "count": len(loaded),
            "dir": str(view.settings.rules_dir),
            "dir_error": view.rules_dir_error,
        }

    def alerts(self) -> list[dict[str, Any]]:
        """Firing first, then pending; each with its ``why`` and what the talkback adds."""
        alerts = self.view.alerts()
        alerts.sort(key=lambda a: (a["state"] != "firing", a["rule"], a["key"]))
        return alerts

    def note_alerts(self, alerts: list[dict[str, Any]], now: float) -> None:
        """Keep the episode log in step with states that changed without a transition."""
        self.episodes.reconcile(
            (
                {**a, "since": parse_iso(a.get("since")) if isinstance(a.get("since"), str)
                 else a.get("since")}
                for a in alerts
            ),
            now,
        )  # fmt: skip

    @staticmethod
    def states(alerts: list[dict[str, Any]]) -> dict[str, list[list[str]]]:
        """Per rule id, ``[key, state]`` of its keys that are not inactive."""
        found: dict[str, list[list[str]]] = {}
        for alert in alerts:
            found.setdefault(alert["rule"], []).append([alert["key"], alert["state"]])
        return found

    def pairs_fingerprint(self) -> tuple[Any, ...]:
        return (id(self.view.engine.rules), tuple(self.view.history.pricing))

    def pairs(self) -> list[dict[str, Any]]:
        """Every pair the rules watch or read, with the quote rules drawn on its chart."""
        book, ruleset = self.view.history, self.view.engine.rules
        found = []
        for pair, pricing in sorted(book.pricing.items(), key=lambda item: item[1].name):
            series = book.series.get(pair)
            scale = pricing.scale_in if pricing.exact_in else pricing.scale_out
            side = pricing.name.split("/")[0 if pricing.exact_in else 1]
            found.append(
                {
                    "name": pricing.name,
                    "amount": f"{pricing.amount / scale:g} {side}" if scale else pricing.amount,
                    "key": pair_key(pair),
                    "price": book.price(pair),
                    "history_since": series.first_at if series else None,
                    "rules": [r.id for r in ruleset.by_pair.get(pair, ())],
                }
            )
        return found

    def prices(self) -> dict[str, float | None]:
        """Each pair's price to eight digits, keyed by its place in ``pairs()`` (short keys:
        512 pairs' mints would be most of every message)."""
        book = self.view.history
        ordered = sorted(book.pricing.items(), key=lambda item: item[1].name)
        return {str(i): _short(book.price(pair)) for i, (pair, _) in enumerate(ordered)}

    def meta(self, now: float) -> dict[str, Any]:
        view = self.view
        return {
            "version": __version__,
            "summary": view.summary(),
            "started_at": view.started_at,
            "now": now,
            "notified": _count(view.metrics.notifications),
        }

    def chart(
        self, pair: PairKey, window: float | None, points: int, now: float | None = None
    ) -> PairChart | None:
        """The chart of one watched pair over ``window`` (None: the whole history, as far as
        an offered window goes); None when no rule watches or reads it."""
        book = self.view.history
        pricing = book.pricing.get(pair)
        if pricing is None:
            return None
        now = time.time() if now is None else now
        series = book.series.get(pair)
        longest = book.max_window
        window = auto_window(series, now, longest) if window is None else min(window, longest)
        start = now - window
        states = {(a["rule"], a["key"]): a["state"] for a in self.view.alerts()}
        rules = []
        for rule in self.view.engine.rules.by_pair.get(pair, ()):
            assert isinstance(rule, QuoteRule)
            drawn = chart_rule(rule, states.get((rule.id, rule.key), "inactive"))
            drawn.episodes = [(e.start, e.end) for e in self.episodes.of(rule.id, rule.key, start)]
            rules.append(drawn)
        drawn_points = downsample(series, start, now, points) if series else []
        return PairChart(pricing.name, pair_key(pair), start, now, drawn_points, rules)


def _short(price: float | None) -> float | None:
    return None if price is None else float(f"{price:.8g}")


def _count(counter: Counter) -> float:
    """Everything a labelled counter counted: changes whenever a notification moves."""
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
