"""The store: versioned migrations, re-entrant transactions, one writer at a time."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.config import Settings
from notifier.dispatch import Dispatcher, Notification
from notifier.events import QuoteEvent
from notifier.metrics import Metrics
from notifier.rules.engine import Engine
from notifier.rules.ruleset import RuleSet
from notifier.rules.state import StateStore
from notifier.store import DB_FILENAME, MIGRATIONS, Migration, SqliteStore, Store, StoreError
from tests.receivers import closed_port_url, write_apprise_yaml
from tests.support import SOL_USDC, compile_text

LATEST = MIGRATIONS[-1].version

ABOVE_200 = """\
rules:
  - id: sol-above-200
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    above: 200
    title: "SOL at {{ price | round(1) }}"
"""

# As 0.1.0 created them: each component its own tables, no user_version.
TABLES_0_1_0 = """
CREATE TABLE rule_state (rule_id TEXT, key TEXT, fingerprint TEXT, state TEXT, since REAL,
    last_notified REAL, last_fired REAL, repeats INTEGER, silenced INTEGER, variables BLOB,
    PRIMARY KEY (rule_id, key));
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('rule', 'digest', 'error')),
    rule_id TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL, severity TEXT NOT NULL,
    tags TEXT NOT NULL, route TEXT, created_at REAL NOT NULL, event_at REAL,
    enqueued_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'digested', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0, first_attempt_at REAL, next_attempt_at REAL NOT NULL,
    finished_at REAL, last_error TEXT, done_channels TEXT NOT NULL DEFAULT '[]',
    retry_channels TEXT, digest_tag TEXT, digest_open INTEGER NOT NULL DEFAULT 0);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE TABLE outbox_sends (tag TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE intent_tracking (intent_id TEXT PRIMARY KEY, label TEXT,
    pinned INTEGER NOT NULL DEFAULT 0, last_status TEXT, updated_at REAL NOT NULL);
INSERT INTO rule_state VALUES ('r1', 'k', 'fp', 'firing', 1.0, 1.0, 1.0, 0, 0, '{}');
INSERT INTO outbox (key, kind, rule_id, title, body, severity, tags, created_at, enqueued_at,
    next_attempt_at) VALUES ('r1|k', 'rule', 'r1', 'old', 'kept', 'info', '[]', 1, 1, 1);
INSERT INTO intent_tracking VALUES ('intent-1', 'mine', 1, 'open', 1.0);
"""


class RollBack(Exception):
    """Raised inside a transaction to roll it back."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path)
    yield opened
    opened.close()


def tables(store: Store) -> set[str]:
    return {name for (name,) in store.read("SELECT name FROM sqlite_master WHERE type='table'")}


def test_migrations_apply_once_and_record_the_schema_version(tmp_path: Path) -> None:
    """A new database gets every step and ``user_version``; opening it again applies none."""
    steps = (*MIGRATIONS, Migration(LATEST + 1, "a later step", "CREATE TABLE later (a);"))
    first = Store.open(tmp_path, migrations=steps)
    assert first.schema_version == LATEST + 1
    assert {"rule_state", "outbox", "outbox_sends", "later"} <= tables(first)
    first.close()

    again = Store.open(tmp_path, migrations=steps)  # CREATE TABLE later would fail if rerun
    assert again.migrate(steps) == []
    assert again.schema_version == LATEST + 1
    again.close()


def test_a_0_1_0_database_upgrades_without_losing_rows(tmp_path: Path) -> None:
    """Tables created the 0.1.0 way (user_version 0) pass through step 1 with their rows."""
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.executescript(TABLES_0_1_0)
    conn.close()

    store = Store.open(tmp_path)
    assert store.schema_version == LATEST
    assert store.read("SELECT rule_id, key, state FROM rule_state") == [("r1", "k", "firing")]
    assert store.read("SELECT key, body FROM outbox") == [("r1|k", "kept")]
    assert store.read("SELECT intent_id, label FROM intent_tracking") == [("intent-1", "mine")]
    assert {"fusion_orders", "fusion_sync", "outbox_digest_items"} <= tables(store)
    store.close()


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    """A schema from a later notifier is not touched: the error says what to do."""
    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    with pytest.raises(StoreError, match=f"schema version {LATEST + 1} is newer"):
        Store.open(tmp_path)


class FailingSink:
    """Enqueues into the real dispatcher, then fails, still inside the engine's transaction."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def enqueue(self, notification: Notification) -> bool:
        self.dispatcher.enqueue(notification)
        raise RollBack


def engine_and_dispatcher(tmp_path: Path, store: Store) -> tuple[Engine, Dispatcher]:
    config = write_apprise_yaml(tmp_path / "apprise.yml", [(closed_port_url(), "")])
    settings = Settings(apprise_config=config, state_dir=tmp_path, errors_to=[])
    dispatcher = Dispatcher(store, settings, Metrics())
    rules, errors = compile_text(ABOVE_200, "rules.yaml")
    assert errors == []
    return Engine(RuleSet(rules), dispatcher, store=StateStore(store)), dispatcher


def quote_at(price: float) -> QuoteEvent:
    return QuoteEvent(SOL_USDC, round(price * 1_000_000), 3, 1, 1, 1_700_000_000.0)


def test_a_rule_state_and_its_outbox_row_commit_together(tmp_path: Path) -> None:
    """The engine's transaction holds the state change and the row the dispatcher writes:
    one commit for both, and a failure after the row rolls back the state too."""
    conn = sqlite3.connect(tmp_path / "traced.db", isolation_level=None, check_same_thread=False)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    store = SqliteStore(conn)
    store.migrate()
    engine, dispatcher = engine_and_dispatcher(tmp_path, store)

    statements.clear()
    engine.handle(quote_at(201.0))
    assert statements.count("COMMIT") == 1
    assert store.read("SELECT rule_id, state FROM rule_state") == [("sol-above-200", "firing")]
    assert store.read("SELECT title FROM outbox") == [("SOL at 201.0",)]
    dispatcher.close()


def test_a_failure_inside_the_engines_transaction_rolls_back_state_and_row(
    tmp_path: Path, store: Store
) -> None:
    """Nothing of a decision is kept when it fails half-way: no state row, no outbox row."""
    engine, dispatcher = engine_and_dispatcher(tmp_path, store)
    failing = Engine(engine.rules, FailingSink(dispatcher), store=StateStore(store))
    with pytest.raises(RollBack):
        failing.handle(quote_at(201.0))
    assert store.read("SELECT COUNT(*) FROM rule_state") == [(0,)]
    assert store.read("SELECT COUNT(*) FROM outbox") == [(0,)]
    dispatcher.close()
