"""The schema, as numbered steps applied in order at start (SQLite: ``PRAGMA user_version``
records the last one applied; PostgreSQL: the ``schema_version`` table). Never edit a released
step: append a new one. Write portable SQL (``store/dialect.py`` turns SQLite's storage classes
into PostgreSQL types): TEXT / REAL / INTEGER / BLOB columns only.

Step 1 is the schema of 0.1.0, whose components created their own tables with ``IF NOT
EXISTS``; a database from 0.1.0 (user_version 0, tables present) passes through it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Migration"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    summary: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "rule state, outbox, rate-limit log, Fusion order cache and sync marks, intent tracking",
        """
CREATE TABLE IF NOT EXISTS rule_state (
    rule_id TEXT, key TEXT, fingerprint TEXT, state TEXT, since REAL, last_notified REAL,
    last_fired REAL, repeats INTEGER, silenced INTEGER, variables BLOB,
    PRIMARY KEY (rule_id, key)
);
CREATE TABLE IF NOT EXISTS outbox (
    id               INTEGER PRIMARY KEY,
    key              TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL CHECK (kind IN ('rule', 'digest', 'error')),
    rule_id          TEXT NOT NULL,
    title            TEXT NOT NULL,
    body             TEXT NOT NULL,
    severity         TEXT NOT NULL,
    tags             TEXT NOT NULL,          -- JSON list as enqueued; [] = every channel
    route            TEXT,                   -- JSON tags left after rate limiting; NULL = not yet
    created_at       REAL NOT NULL,
    event_at         REAL,
    enqueued_at      REAL NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sent', 'digested', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    first_attempt_at REAL,
    next_attempt_at  REAL NOT NULL,
    finished_at      REAL,
    last_error       TEXT,                   -- secret-free summary of the last failure
    done_channels    TEXT NOT NULL DEFAULT '[]',  -- channel keys that confirmed
    retry_channels   TEXT,                   -- channel keys still to do; NULL = all routed
    digest_tag       TEXT,                   -- kind digest: the bucket it summarises
    digest_open      INTEGER NOT NULL DEFAULT 0  -- kind digest: still collecting items
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_open_digest ON outbox (digest_tag) WHERE digest_open = 1;
CREATE TABLE IF NOT EXISTS outbox_digest_items (
    digest_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    source_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    PRIMARY KEY (digest_id, source_id)
);
CREATE TABLE IF NOT EXISTS outbox_sends (   -- rate-limit log: one row per tag per admission
    tag TEXT NOT NULL,
    at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_sends_tag ON outbox_sends (tag, at);
CREATE TABLE IF NOT EXISTS fusion_orders (
    chain INTEGER NOT NULL,
    order_hash TEXT NOT NULL,
    maker TEXT NOT NULL,
    receiver TEXT NOT NULL,
    maker_asset TEXT NOT NULL,
    taker_asset TEXT NOT NULL,
    making_amount TEXT NOT NULL,
    taking_amount TEXT NOT NULL,
    deadline TEXT,
    remaining_maker_amount TEXT,
    state TEXT,
    final INTEGER NOT NULL DEFAULT 0,
    touched REAL NOT NULL,
    PRIMARY KEY (chain, order_hash)
);
CREATE TABLE IF NOT EXISTS fusion_sync (
    chain INTEGER PRIMARY KEY,
    seen_until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS intent_tracking (
    intent_id TEXT PRIMARY KEY,
    label TEXT,
    pinned INTEGER NOT NULL DEFAULT 0,
    last_status TEXT,
    updated_at REAL NOT NULL
);
""",
    ),
    Migration(
        2,
        "quote history: each watched pair's price buckets (SPEC §8)",
        """
CREATE TABLE quote_history_pairs (
    pair     TEXT PRIMARY KEY,            -- in|out|amount|exact_in
    state    BLOB NOT NULL,               -- JSON: first quote, price in force, tier heads
    saved_at REAL NOT NULL                -- the time the history reached when saved
);
CREATE TABLE quote_history (
    pair  TEXT NOT NULL,
    level INTEGER NOT NULL,               -- tier: 0 = 100 ms, 1 = 1 s, 2… coarser
    block INTEGER NOT NULL,               -- a tenth of the tier's ring
    data  BLOB NOT NULL,                  -- packed doubles: last, low, high, area columns
    PRIMARY KEY (pair, level, block)
);
""",
    ),
    Migration(
        3,
        "talking back: silences, acknowledgements, snoozes, the action-link key; outbox rows"
        " learn their alert (key, transition, episode, source) and why they were withheld",
        """
ALTER TABLE outbox ADD COLUMN alert_key TEXT;
ALTER TABLE outbox ADD COLUMN transition TEXT;
ALTER TABLE outbox ADD COLUMN episode REAL;
ALTER TABLE outbox ADD COLUMN source TEXT;
ALTER TABLE outbox ADD COLUMN withheld TEXT;
ALTER TABLE outbox ADD COLUMN withheld_by TEXT;
ALTER TABLE outbox ADD COLUMN held_channels TEXT;
CREATE TABLE IF NOT EXISTS silences (
    id          TEXT PRIMARY KEY,
    matchers    TEXT NOT NULL,
    starts_at   REAL NOT NULL,
    ends_at     REAL NOT NULL,
    comment     TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expired_by  TEXT,
    end_handled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS acks (
    rule_id  TEXT NOT NULL,
    key      TEXT NOT NULL,
    episode  REAL NOT NULL,
    acked_by TEXT NOT NULL,
    acked_at REAL NOT NULL,
    PRIMARY KEY (rule_id, key)
);
CREATE TABLE IF NOT EXISTS snoozes (
    rule_id     TEXT NOT NULL,
    key         TEXT NOT NULL,
    until_at    REAL NOT NULL,
    snoozed_by  TEXT NOT NULL,
    snoozed_at  REAL NOT NULL,
    end_handled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rule_id, key)
);
CREATE TABLE IF NOT EXISTS talkback_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
""",
    ),
    Migration(
        4,
        "Solana Fusion fills seen per open order (duplicate-safe remaining amounts)",
        """
CREATE TABLE IF NOT EXISTS fusion_fills (
    chain INTEGER NOT NULL,
    order_hash TEXT NOT NULL,
    tx TEXT NOT NULL,
    filled_maker_amount TEXT NOT NULL,
    PRIMARY KEY (chain, order_hash, tx)
);
""",
    ),
    Migration(
        5,
        "HA group: the lease of the active member and the members seen",
        """
CREATE TABLE IF NOT EXISTS ha_lease (
    name        TEXT PRIMARY KEY,        -- 'active': one lease per group
    holder      TEXT NOT NULL,           -- member id of the holder
    epoch       INTEGER NOT NULL,        -- +1 on every takeover: the fencing token
    acquired_at REAL NOT NULL,           -- the server's clock, seconds since the epoch
    renewed_at  REAL NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ha_members (
    member     TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    url        TEXT,                     -- the member's http.listen, for status
    role       TEXT NOT NULL,            -- active | standby | stopped
    epoch      INTEGER,                  -- the epoch it holds while active
    reason     TEXT,                     -- why its role last changed
    started_at REAL NOT NULL,
    seen_at    REAL NOT NULL,
    takeovers  INTEGER NOT NULL DEFAULT 0
);
""",
    ),
)
