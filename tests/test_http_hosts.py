"""Which Host and Origin headers the HTTP API answers (DNS rebinding), and its connection cap."""

from __future__ import annotations

import asyncio

import pytest

from notifier.config import HttpSettings
from notifier.httpguard import ConnectionLimit, HostCheck


@pytest.mark.parametrize(
    ("listen_host", "host", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1:9310", True),
        ("127.0.0.1", "localhost:9310", True),
        ("127.0.0.1", "LocalHost.", True),
        ("127.0.0.1", "[::1]:9310", True),
        ("127.0.0.1", None, True),
        ("127.0.0.1", "attacker.example:9310", False),
        ("127.0.0.1", "localhost.attacker.example", False),
        ("127.0.0.1", "10.0.0.5:9310", False),
        ("10.0.0.5", "10.0.0.5:9310", True),
        ("::1", "[::1]:9310", True),
        (None, "10.0.0.5:9310", True),  # a wildcard bind answers on every address …
        ("0.0.0.0", "[fe80::1]:9310", True),
        ("0.0.0.0", "attacker.example:9310", False),  # … but to no unknown name
    ],
)
def test_host_check(listen_host: str | None, host: str | None, allowed: bool) -> None:
    assert HostCheck(listen_host).allows_host(host) is allowed


def test_allowed_hosts_and_public_url_add_names() -> None:
    settings = HttpSettings(allowed_hosts=["notifier.lan", "Box.Example:8443"])
    hosts = HostCheck.from_settings(settings, "127.0.0.1")
    assert hosts.allows_host("notifier.lan:9310")
    assert hosts.allows_host("box.example")
    assert not hosts.allows_host("other.lan")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),
        ("http://localhost:9310", True),
        ("https://127.0.0.1", True),
        ("http://attacker.example", False),
        ("null", False),
        ("file://", False),
    ],
)
def test_origin_check(origin: str | None, allowed: bool) -> None:
    assert HostCheck("127.0.0.1").allows_origin(origin) is allowed


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


def test_connection_limit_closes_the_least_recently_active() -> None:
    """At the limit a newcomer gets in and the connection quiet the longest is aborted."""
    limit = ConnectionLimit(asyncio.Protocol, 3)
    conns = [limit() for _ in range(4)]
    transports = [FakeTransport() for _ in conns]
    for conn, transport in zip(conns[:3], transports, strict=False):
        conn.connection_made(transport)
    conns[0].data_received(b"GET / HTTP/1.1\r\n")  # now the most recently active
    conns[3].connection_made(transports[3])
    assert [t.aborted for t in transports] == [False, True, False, False]
    assert limit.open_count == 3
    assert limit.evicted == 1
    conns[1].connection_lost(None)  # the aborted one reports back: nothing counted twice
    conns[2].connection_lost(None)
    assert limit.open_count == 2
