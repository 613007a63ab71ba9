"""HA pieces without a server: the store key, the fence, the status lines."""

from __future__ import annotations

import time

import pytest

from notifier.config import ConfigError, load_settings
from notifier.ha.render import ha_lines
from notifier.store import Fence, Fenced


def test_the_store_key_takes_sqlite_or_a_postgresql_url_without_password() -> None:
    assert load_settings(store="sqlite").store == "sqlite"
    url = "postgresql://notifier@db.example:5432/notifier"
    settings = load_settings(store=url, ha={"takeover": "6s"})
    assert (settings.store, settings.ha.takeover, settings.ha.lease) == (url, 6.0, 3.0)
    with pytest.raises(ConfigError, match=r"store: .*may not carry a password") as raised:
        load_settings(store="postgresql://notifier:hunter22@db/notifier")
    assert "hunter22" not in str(raised.value)
    with pytest.raises(ConfigError, match=r"store: .*must be .sqlite."):
        load_settings(store="mysql://db/x")
    with pytest.raises(ConfigError, match=r"ha\.takeover"):
        load_settings(ha={"takeover": "1s"})


def test_a_fence_lapses_on_the_monotonic_clock_and_once_revoked_stays_revoked() -> None:
    fence = Fence("me", 3, time.monotonic() + 60)
    fence.check()
    fence.valid_until = time.monotonic() - 1
    with pytest.raises(Fenced, match="lease of epoch 3 lapsed"):
        fence.check()
    fence.revoke("taken over")
    fence.extend(time.monotonic() + 60)
    with pytest.raises(Fenced, match="taken over"):
        fence.check()


def test_status_lists_every_member_and_its_role() -> None:
    lines = ha_lines(
        {
            "member": "m1",
            "role": "active",
            "epoch": 4,
            "lease_age_s": 0.4,
            "takeover_s": 10.0,
            "store": "postgresql://n@db:5432/n",
            "members": [
                {"member": "m1", "role": "active", "host": "a", "pid": 1, "seen_s_ago": 0.1},
                {"member": "m2", "role": "standby", "host": "b", "pid": 2, "seen_s_ago": 0.3},
            ],
        }
    )
    assert lines[1].startswith("HA: ACTIVE, epoch 4, lease renewed 0.4s ago")
    assert "m1 (this)  active" in lines[3]
    assert "m2         standby" in lines[4]
    assert ha_lines({}) == []
