"""The store contract, the same tests on SQLite and on a real PostgreSQL: migrations,
re-entrant transactions, what the outbox, the rule state, the order cache and intent
tracking write, and the errors callers see."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.dispatch.outbox import NewRow, Outbox
from notifier.rules.state import AlertState, StateStore
from notifier.store import MIGRATIONS, Migration, Store
from tests.pgserver import PgServer

LATEST = MIGRATIONS[-1].version
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.system)]


class RollBack(Exception):
    """Raised inside a transaction to roll it back."""


def open_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if backend == "sqlite":
        return Store.open(tmp_path / "state")
    from notifier.store.postgres import PostgresStore

    url = request.getfixturevalue("pg_url")
    return PostgresStore.connect(url)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(request.param, tmp_path, request)
    yield opened
    opened.close()


def row(key: str, title: str = "t") -> NewRow:
    return NewRow(
        key=key, kind="rule", rule_id="r", title=title, body="b", severity="info", tags=(),
        created_at=1.0,
    )  # fmt: skip


def test_a_new_store_is_migrated_to_the_latest_version(store: Store) -> None:
    """Every step applies once; migrating again applies none."""
    assert store.schema_version == LATEST
    assert store.migrate() == []
    assert store.read("SELECT COUNT(*) FROM ha_lease") == [(0,)]


def test_a_later_step_applies_on_the_next_start(store: Store) -> None:
    """A step appended later (portable DDL) is applied and recorded."""
    later = Migration(
        LATEST + 1, "a later step", "CREATE TABLE later (id INTEGER PRIMARY KEY, x REAL, b BLOB);"
    )
    assert store.migrate((*MIGRATIONS, later)) == [LATEST + 1]
    assert store.schema_version == LATEST + 1
    with store.transaction() as db:
        cur = db.execute("INSERT INTO later (x, b) VALUES (?, ?) RETURNING id", (1.5, b"\x00"))
        assert cur.fetchall() == [(1,)]
    assert store.read("SELECT x, b FROM later") == [(1.5, b"\x00")]


def test_a_nested_transaction_joins_the_outer_one(store: Store) -> None:
    """An inner block commits nothing of its own; a raise anywhere rolls back both."""
    with store.transaction() as db:
        db.execute("INSERT INTO outbox_sends VALUES ('outer', 1)")
        with store.transaction() as inner:
            inner.execute("INSERT INTO outbox_sends VALUES ('inner', 1)")
    assert store.read("SELECT COUNT(*) FROM outbox_sends") == [(2,)]

    with contextlib.suppress(RollBack), store.transaction() as db:
        db.execute("INSERT INTO outbox_sends VALUES ('outer', 2)")
        with store.transaction() as inner:
            inner.execute("INSERT INTO outbox_sends VALUES ('inner', 2)")
            raise RollBack
    assert store.read("SELECT COUNT(*) FROM outbox_sends WHERE at = 2") == [(0,)]


def test_if_rolled_back_hears_a_lost_transaction_only(store: Store) -> None:
    heard: list[BaseException] = []
    with store.transaction():
        store.if_rolled_back(heard.append)
    with contextlib.suppress(RuntimeError), store.transaction():
        store.if_rolled_back(heard.append)
        raise RuntimeError("boom")
    assert [str(e) for e in heard] == ["boom"]
    assert not store.in_transaction


def test_after_commit_runs_once_the_outer_transaction_committed(store: Store) -> None:
    ran: list[str] = []
    store.after_commit(lambda: ran.append("no transaction: at once"))
    with store.transaction():
        with store.transaction():
            store.after_commit(lambda: ran.append("joined"))
        store.after_commit(lambda: ran.append("outer"))
        assert ran == ["no transaction: at once"]
    assert ran == ["no transaction: at once", "joined", "outer"]
    with contextlib.suppress(RuntimeError), store.transaction():
        store.after_commit(lambda: ran.append("rolled back"))
        raise RuntimeError("boom")
    with store.transaction():
        pass
    assert ran == ["no transaction: at once", "joined", "outer"]


def test_a_transaction_that_need_not_wait_for_the_disk_still_commits(store: Store) -> None:
    outbox = Outbox(store)
    with store.transaction(wait=False):
        outbox.add(row("relaxed"), 1.0)
    with contextlib.suppress(RuntimeError), store.transaction(wait=False):
        outbox.add(row("rolled back"), 2.0)
        raise RuntimeError("boom")
    with store.transaction():
        outbox.add(row("durable"), 3.0)
    assert store.read("SELECT key FROM outbox ORDER BY id") == [("relaxed",), ("durable",)]
    store.sync()
    assert store.synced


def test_transactions_from_two_threads_never_interleave(store: Store) -> None:
    holding, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with store.transaction() as db:
            db.execute("INSERT INTO outbox_sends VALUES ('first', 1)")
            holding.set()
            release.wait(5)
            order.append("first commits")

    def second() -> None:
        with store.transaction() as db:
            order.append("second begins")
            db.execute("INSERT INTO outbox_sends VALUES ('second', 2)")

    one = threading.Thread(target=first)
    one.start()
    assert holding.wait(5)
    two = threading.Thread(target=second)
    two.start()
    two.join(0.2)
    assert two.is_alive()
    release.set()
    one.join(5)
    two.join(5)
    assert order == ["first commits", "second begins"]


def test_the_outbox_dedups_by_key_and_returns_new_ids(store: Store) -> None:
    """``add`` returns the new id, None for a key already there; digests and counts work."""
    outbox = Outbox(store)
    first = outbox.add(row("k1"), 100.0)
    assert isinstance(first, int)
    assert outbox.add(row("k1"), 101.0) is None
    second = outbox.add(row("k2"), 102.0)
    assert second is not None
    assert second > first
    assert outbox.route(second, [], [], {"phone": 200.0}, 103.0) is False
    digest = store.read("SELECT id FROM outbox WHERE kind = 'digest'")[0][0]
    assert outbox.digest_items(digest) == [("rule", "r", "info", "t")]
    outbox.record_failure(first, delivered=(), retry=None, error="x", now=104.0,
                          next_attempt_at=105.0)  # fmt: skip
    assert outbox.counts() == {"pending": 2, "sent": 0, "digested": 1, "dead": 0, "failed": 1}
    outbox.record_sent(first, ["a"], 106.0)
    assert [r.id for r in outbox.due(1000.0, 10)] == [digest]
    assert outbox.next_due(0.0) == 200.0
    assert outbox.sends_since("x", 0.0) == (0, None)
    outbox.probe()


def test_rule_state_is_upserted_with_its_bytes_and_flags(store: Store) -> None:
    states = StateStore(store)
    st = AlertState("r", "k", "fp", "pending", 1.0, variables={"price": 201.5})
    states.save(st)
    st.state, st.silenced, st.repeats = "firing", True, 2
    states.save(st)
    (loaded,) = states.load()
    assert (loaded.state, loaded.silenced, loaded.repeats) == ("firing", True, 2)
    assert loaded.variables == {"price": 201.5}
    states.delete("r", "k")
    assert states.load() == []


def test_executemany_and_a_literal_percent_sign(store: Store) -> None:
    """Placeholders are rewritten outside literals only; ``%`` is kept as written."""
    with store.transaction() as db:
        db.executemany("INSERT INTO outbox_sends (tag, at) VALUES (?, ?)", [("a%", 1), ("b?", 2)])
        db.executemany("INSERT INTO outbox_sends (tag, at) VALUES (?, ?)", [])
    rows = store.read("SELECT tag FROM outbox_sends WHERE tag LIKE 'a%' OR tag = 'b?' ORDER BY at")
    assert rows == [("a%",), ("b?",)]
    assert store.read("SELECT 7 % 3") == [(1,)]


def test_the_order_cache_prunes_to_its_capacity(store: Store) -> None:
    """The cache keeps the most recently touched orders (no ``rowid``)."""
    with store.transaction() as db:
        for n in range(5):
            db.execute(
                "INSERT INTO fusion_orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (1, f"0x{n}", "m", "r", "a", "b", "1", "2", None, None, None, 0, float(n)),
            )
        db.execute(
            """DELETE FROM fusion_orders WHERE (chain, order_hash) NOT IN
            (SELECT chain, order_hash FROM fusion_orders ORDER BY touched DESC LIMIT ?)""",
            (2,),
        )
    assert store.read("SELECT order_hash FROM fusion_orders ORDER BY touched") == [
        ("0x3",),
        ("0x4",),
    ]


def test_a_constraint_violation_is_an_integrity_error(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as db:
        db.execute("INSERT INTO ha_lease (name) VALUES ('x')")
    assert store.read("SELECT COUNT(*) FROM ha_lease") == [(0,)]


# -- PostgreSQL only ------------------------------------------------------------------------------


def write_across_a_restart(store: Store, server: PgServer) -> None:
    with store.transaction() as db:
        db.execute("INSERT INTO outbox_sends VALUES ('during', 2)")
        server.restart("immediate")
        db.execute("INSERT INTO outbox_sends VALUES ('during', 3)")


@pytest.mark.system
def test_a_lost_server_is_a_store_outage_then_the_store_reconnects(tmp_path: Path) -> None:
    """The server restarts in the middle of a transaction: it fails as
    ``sqlite3.OperationalError`` (what delivery's outage path handles) with nothing
    half-written; the next transaction connects again. A restart between transactions is
    noticed at ``BEGIN`` and costs nothing."""
    from notifier.store.postgres import PostgresStore, StoreUnavailable
    from tests.pgserver import unmet

    if (problem := unmet()) is not None:
        pytest.skip(problem)
    server = PgServer()
    try:
        server.init()
        server.start()
        store = PostgresStore.connect(server.url())
        with store.transaction() as db:
            db.execute("INSERT INTO outbox_sends VALUES ('before', 1)")
        with pytest.raises(sqlite3.OperationalError) as raised:
            write_across_a_restart(store, server)
        assert isinstance(raised.value, StoreUnavailable)
        assert "postgresql://notifier@127.0.0.1" in str(raised.value)
        with store.transaction() as db:
            db.execute("INSERT INTO outbox_sends VALUES ('after', 4)")
        server.restart("fast")
        with store.transaction() as db:
            db.execute("INSERT INTO outbox_sends VALUES ('later', 5)")
        assert store.read("SELECT COUNT(*) FROM outbox_sends") == [(3,)]
        tags = store.read("SELECT tag FROM outbox_sends ORDER BY at")
        assert tags == [("before",), ("after",), ("later",)]
        store.close()
    finally:
        server.destroy()


@pytest.mark.system
def test_two_members_starting_together_migrate_once(pg_url: str) -> None:
    from notifier.store.postgres import PostgresStore

    opened: list[Store] = []
    errors: list[BaseException] = []

    def connect() -> None:
        try:
            opened.append(PostgresStore.connect(pg_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=connect) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert {s.schema_version for s in opened} == {LATEST}
    for s in opened:
        s.close()


@pytest.mark.system
def test_a_database_newer_than_the_code_is_refused(pg_url: str) -> None:
    from notifier.store import StoreError
    from notifier.store.postgres import PostgresStore

    store = PostgresStore.connect(pg_url)
    with store.transaction() as db:
        db.execute("UPDATE schema_version SET version = ?", (LATEST + 1,))
    store.close()
    with pytest.raises(StoreError, match=f"schema version {LATEST + 1} is newer"):
        PostgresStore.connect(pg_url)


@pytest.mark.system
def test_the_bench_measures_postgresql_beside_sqlite(tmp_path: Path, pg_url: str) -> None:
    """``notifier bench --store URL``'s store figures: both backends record notifications."""
    from notifier.bench.store import store_figures

    figures = store_figures(tmp_path, pg_url, 20)
    assert figures["count"] == 20
    for backend in ("sqlite", "postgresql"):
        assert figures[backend]["per_s"] > 0
        assert figures[backend]["p99_ms"] >= figures[backend]["p50_ms"] > 0
    broken = store_figures(tmp_path / "again", "postgresql://nobody:s3cret@127.0.0.1:1/x", 5)
    assert "postgresql" not in broken
    assert "s3cret" not in broken["postgresql_error"]
