"""The lease of the active member and the table of members, in the shared PostgreSQL store.

One row of ``ha_lease`` names the holder and its epoch; it expires ``lease`` seconds after its
last renewal, on the server's clock (members' clocks never compare). Taking it over is one
conditional upsert that bumps the epoch; the store's transactions of the active check that
epoch (``store/fence.py``), so a takeover waits for a transaction in flight and every later
one of the former holder fails. ``ha_members`` is where each member says who and what it is,
for ``notifier status``.

Blocking (psycopg), on its own connection: the group calls it from a worker thread, so a
renewal never waits behind the store's lock.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import psycopg

from notifier.store.postgres import translate_error

__all__ = ["Lease", "LeaseState", "Member"]

log = logging.getLogger("notifier.ha")

NOW = "EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION"
ACQUIRE = f"""
INSERT INTO ha_lease AS l (name, holder, epoch, acquired_at, renewed_at, expires_at)
VALUES ('active', %(holder)s, 1, {NOW}, {NOW}, {NOW} + %(lease)s)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, epoch = l.epoch + 1,
    acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at,
    expires_at = excluded.expires_at
WHERE l.expires_at < excluded.acquired_at
RETURNING epoch
"""
RENEW = f"""
UPDATE ha_lease SET renewed_at = {NOW}, expires_at = {NOW} + %(lease)s
WHERE name = 'active' AND holder = %(holder)s AND epoch = %(epoch)s
RETURNING epoch
"""
RELEASE = f"""
UPDATE ha_lease SET expires_at = {NOW} - 1
WHERE name = 'active' AND holder = %(holder)s AND epoch = %(epoch)s
"""
HEARTBEAT = f"""
INSERT INTO ha_members AS m (member, host, pid, url, role, epoch, reason, started_at, seen_at,
    takeovers)
VALUES (%(member)s, %(host)s, %(pid)s, %(url)s, %(role)s, %(epoch)s, %(reason)s, {NOW}, {NOW},
    %(takeovers)s)
ON CONFLICT (member) DO UPDATE SET url = excluded.url, role = excluded.role,
    epoch = excluded.epoch, reason = excluded.reason, seen_at = excluded.seen_at,
    takeovers = excluded.takeovers
"""
MEMBERS = f"""
SELECT member, host, pid, url, role, epoch, reason, started_at, seen_at, takeovers, {NOW}
FROM ha_members WHERE seen_at > {NOW} - 86400 ORDER BY started_at
"""
LEASE = f"SELECT holder, epoch, acquired_at, renewed_at, expires_at, {NOW} FROM ha_lease"
FORGET = f"DELETE FROM ha_members WHERE seen_at < {NOW} - 86400"


@dataclass(frozen=True, slots=True)
class LeaseState:
    """The lease row as the server saw it at ``now`` (its clock)."""

    holder: str
    epoch: int
    acquired_at: float
    renewed_at: float
    expires_at: float
    now: float


@dataclass(slots=True)
class Member:
    """This process, as it writes itself into ``ha_members``."""

    member: str
    url: str | None
    host: str = socket.gethostname()
    pid: int = os.getpid()
    role: str = "standby"
    epoch: int | None = None
    reason: str = "started"
    takeovers: int = 0


class Lease:
    """Acquire, renew and release the lease; say who we are; read the members."""

    def __init__(
        self, url: str, where: str, *, password: str | None, lease: float, timeout: float
    ) -> None:
        self._url = url
        self._where = where
        self._password = password
        self._lease = lease
        self._timeout_ms = max(int(timeout * 1000), 200)
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self.close()
        # Every statement is bounded: a renewal that cannot finish in time is a lost one.
        self._conn = psycopg.connect(
            self._url,
            autocommit=True,
            password=self._password,
            connect_timeout=max(2, self._timeout_ms // 1000),
            application_name="notifier-ha",
            tcp_user_timeout=self._timeout_ms,
            options=(f"-c statement_timeout={self._timeout_ms} -c lock_timeout={self._timeout_ms}"),
        )
        return self._conn

    def _run(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            cursor = self._connection().execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []
        except psycopg.Error as exc:
            self.close()  # a statement cut off leaves the connection in doubt
            raise translate_error(self._where, exc) from None

    def acquire(self, holder: str) -> int | None:
        """Take the lease if it is free or expired: the new epoch, else None."""
        rows = self._run(ACQUIRE, {"holder": holder, "lease": self._lease})
        return int(rows[0][0]) if rows else None

    def renew(self, holder: str, epoch: int) -> bool:
        """Extend our lease; False when it is no longer ours (taken over)."""
        params = {"holder": holder, "epoch": epoch, "lease": self._lease}
        return bool(self._run(RENEW, params))

    def release(self, holder: str, epoch: int) -> None:
        """Let the lease expire now, so a standby takes over at its next look."""
        self._run(RELEASE, {"holder": holder, "epoch": epoch})

    def heartbeat(self, me: Member) -> None:
        params = {
            "member": me.member,
            "host": me.host,
            "pid": me.pid,
            "url": me.url,
            "role": me.role,
            "epoch": me.epoch,
            "reason": me.reason,
            "takeovers": me.takeovers,
        }
        self._run(HEARTBEAT, params)

    def state(self) -> LeaseState | None:
        rows = self._run(LEASE, {})
        if not rows:
            return None
        holder, epoch, acquired, renewed, expires, now = rows[0]
        return LeaseState(holder, int(epoch), acquired, renewed, expires, now)

    def members(self) -> list[dict[str, Any]]:
        """Every member seen in the last day, with how long ago (server clock)."""
        self._run(FORGET, {})
        found = []
        for member, host, pid, url, role, epoch, reason, started, seen, takeovers, now in self._run(
            MEMBERS, {}
        ):
            found.append(
                {
                    "member": member,
                    "host": host,
                    "pid": pid,
                    "url": url,
                    "role": role,
                    "epoch": epoch,
                    "reason": reason,
                    "up_s": round(now - started, 1),
                    "seen_s_ago": round(max(now - seen, 0.0), 1),
                    "takeovers": takeovers,
                }
            )
        return found

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
