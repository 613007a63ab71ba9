"""The source table, entry-point plugins, and construction from config."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from notifier.config import Settings
from notifier.metrics import Metrics
from notifier.sources import (
    ENTRY_POINT_GROUP,
    SOURCES,
    IntentPoller,
    OrderFeed,
    QuoteStream,
    Source,
    SourceContext,
    describe_error,
    load_plugins,
)
from notifier.store import Store
from tests.support import Collector


def context(store: Store, settings: Settings | None = None) -> SourceContext:
    return SourceContext(
        settings=settings or Settings(), sink=Collector(), metrics=Metrics(), store=store
    )


def test_builtin_sources_are_in_the_table() -> None:
    """The three built-ins are registered under their feed names."""
    assert dict(SOURCES) == {"quote": QuoteStream, "order": OrderFeed, "intent": IntentPoller}
    assert all(kind.name == name for name, kind in SOURCES.items())


def test_create_builds_enabled_sources_only(store: Store) -> None:
    """``create`` answers None for a section with ``enabled = false``."""
    built = [kind.create(context(store)) for kind in SOURCES.values()]
    assert [type(source) for source in built] == [QuoteStream, OrderFeed, IntentPoller]
    disabled = Settings.model_validate(
        {"quotes": {"enabled": False}, "fusion": {"enabled": False}, "intents": {"enabled": False}}
    )
    off = context(store, disabled)
    assert [kind.create(off) for kind in SOURCES.values()] == [None, None, None]


def test_plugins_join_the_table_and_problems_are_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A good plugin is added; a taken name, a broken import and a non-class are reported."""
    entries = [
        EntryPoint("quotes2", "notifier.sources.quotes:QuoteStream", ENTRY_POINT_GROUP),
        EntryPoint("order", "notifier.sources.quotes:QuoteStream", ENTRY_POINT_GROUP),
        EntryPoint("broken", "notifier_no_such_module:Source", ENTRY_POINT_GROUP),
        EntryPoint("table", "notifier.sources:SOURCES", ENTRY_POINT_GROUP),
    ]

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        assert group == ENTRY_POINT_GROUP
        return entries

    monkeypatch.setattr("notifier.sources.registry.entry_points", fake_entry_points)
    table: dict[str, type[Source]] = dict(SOURCES)
    problems = load_plugins(table)
    assert table["quotes2"] is QuoteStream
    assert table["order"] is OrderFeed
    assert set(table) == {"quote", "order", "intent", "quotes2"}
    assert len(problems) == 3
    assert "order" in problems[0]
    assert "taken" in problems[0]
    assert "broken" in problems[1]
    assert "not a class" in problems[2]
    assert "quotes2" not in SOURCES


def test_describe_error_redacts_secrets() -> None:
    """Secrets are masked in any exception text."""
    text = describe_error(ValueError("bad url wss://x/?key=argy_123"), "argy_123")
    assert text == "ValueError: bad url wss://x/?key=***"
    assert describe_error(TimeoutError()) == "TimeoutError"
