"""Active/standby: daemons sharing one PostgreSQL store form a group; one member is active
(holds the lease, runs sources, rules and delivery), the others stand by (SPEC §11,
docs/ha.md). ``settings`` holds the config keys; ``lease`` the lease and the member table;
``group`` runs a member; ``standby`` is what a standby serves over HTTP.

This package's ``__init__`` imports nothing heavy: the config and ``notifier status`` use
``settings`` and ``render`` without psycopg."""

from __future__ import annotations

__all__: list[str] = []
