"""Prometheus metrics, one registry per daemon so in-process tests never share counters."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["FeedCount", "FeedCounts", "Metrics", "PlainCount", "PlainCounter"]


class FeedCount:
    """One feed's events in plain numbers: counting one costs an add, not a locked counter."""

    __slots__ = ("events", "last_event_at")

    def __init__(self) -> None:
        self.events = 0
        self.last_event_at: float | None = None


class FeedCounts(Collector):
    """``notifier_events_total{source}`` and ``notifier_feed_last_event_timestamp_seconds{feed}``,
    read from each feed's `FeedCount` when scraped."""

    def __init__(self) -> None:
        self._feeds: dict[str, FeedCount] = {}

    def feed(self, name: str) -> FeedCount:
        return self._feeds.setdefault(name, FeedCount())

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "notifier_events", "Events received from upstreams", labels=["source"]
        )
        last = GaugeMetricFamily(
            "notifier_feed_last_event_timestamp_seconds",
            "Unix time of the feed's last event",
            labels=["feed"],
        )
        for name, count in sorted(self._feeds.items()):
            events.add_metric([name], count.events)
            if count.last_event_at is not None:
                last.add_metric([name], count.last_event_at)
        yield events
        yield last


class PlainCount:
    """One label's count of a `PlainCounter`: ``inc`` is an add, no lock (the event loop's)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class PlainCounter(Collector):
    """A counter with one label whose children are `PlainCount`s, exported when scraped: for
    counts taken per quote, where a locked Prometheus counter costs more than the work."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self._name, self._documentation, self._label = name, documentation, label
        self._children: dict[str, PlainCount] = {}

    def labels(self, value: str) -> PlainCount:
        return self._children.setdefault(value, PlainCount())

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, count in sorted(self._children.items()):
            family.add_metric([value], count.value)
        yield family


class Metrics:
    """Every metric the daemon exports; components receive this object, not globals."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = FeedCounts()
        r.register(self.events)
        self.frames_malformed = Counter(
            "notifier_frames_malformed",
            "Upstream frames logged and skipped",
            ["source"],
            registry=r,
        )
        self.feed_up = Gauge(
            "notifier_feed_up", "1 when the feed is connected and healthy", ["feed"], registry=r
        )
        self.feed_reconnects = Counter(
            "notifier_feed_reconnects",
            "Reconnects or failed polls per feed",
            ["feed"],
            registry=r,
        )
        self.rule_evaluations = PlainCounter(
            "notifier_rule_evaluations", "Rule evaluations", "kind"
        )
        r.register(self.rule_evaluations)
        self.rule_errors = Counter(
            "notifier_rule_expression_errors",
            "Expressions that raised (counted false)",
            ["rule"],
            registry=r,
        )
        self.rules_loaded = Gauge("notifier_rules_loaded", "Rules currently active", registry=r)
        self.rule_files_failed = Gauge(
            "notifier_rule_files_failed", "Rule files whose last load failed", registry=r
        )
        self.alerts_firing = Gauge(
            "notifier_alerts_firing", "State-rule keys currently firing", registry=r
        )
        self.reloads = Counter(
            "notifier_reloads", "Rule reloads by outcome", ["outcome"], registry=r
        )
        self.reload_seconds = Histogram(
            "notifier_reload_seconds",
            "Time to build and swap a rule set",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.notifications = Counter(
            "notifier_notifications",
            "Notifications by outcome (queued, sent, failed, "
            "dead_lettered, deduplicated, digested)",
            ["outcome"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "notifier_outbox_pending", "Outbox rows not yet confirmed", registry=r
        )
        self.loop_lag = Gauge(
            "notifier_event_loop_lag_seconds", "Last measured event-loop lag", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
