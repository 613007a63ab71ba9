"""What keeps the HTTP API reachable and private: ``HostCheck`` (which ``Host`` names and
``Origin`` values this server answers, against DNS rebinding) and ``ConnectionLimit`` (at most
N connections, the least recently active one closed to make room)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from notifier.config import HttpSettings

__all__ = ["LOOPBACK_NAMES", "ConnectionLimit", "HostCheck"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _host_name(value: str) -> str:
    """The host part of a ``Host`` header or ``http.allowed_hosts`` entry, lower case, without
    port, brackets or trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostCheck:
    """Which ``Host`` names this server answers to, against DNS rebinding.

    Allowed: ``localhost``, ``127.0.0.1``, ``::1``, the host of ``http.listen``, the host of
    ``http.public_url`` and every ``http.allowed_hosts`` entry. On a wildcard listen address
    any IP literal is allowed too: a rebinding attack needs a name it controls. The port is not
    compared (rebinding changes the name, not the port). Requests without ``Host`` (HTTP/1.0
    tools) pass: browsers always send one.
    """

    def __init__(self, listen_host: str | None, extra: Iterable[str] = ()) -> None:
        self.names = set(LOOPBACK_NAMES) | {_host_name(h) for h in extra if h.strip()}
        self.any_ip = listen_host in {None, "", "0.0.0.0", "::"}
        if listen_host and not self.any_ip:
            self.names.add(_host_name(f"[{listen_host}]" if ":" in listen_host else listen_host))

    @classmethod
    def from_settings(cls, settings: HttpSettings, listen_host: str | None) -> HostCheck:
        public_url = str(getattr(settings, "public_url", "") or "")
        extra = list(settings.allowed_hosts)
        if public_url:
            extra.append(urlsplit(public_url).netloc.rpartition("@")[2])
        return cls(listen_host, extra)

    def allows_host(self, host: str | None) -> bool:
        if host is None:
            return True
        name = _host_name(host)
        return name in self.names or (self.any_ip and _is_ip(name))

    def allows_origin(self, origin: str | None) -> bool:
        """A missing ``Origin`` (not a browser) passes; ``null`` and foreign origins do not."""
        if origin is None:
            return True
        parts = urlsplit(origin.strip())
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            return False
        return self.allows_host(parts.netloc)


class _Tracked(asyncio.Protocol):
    """One connection of a ``ConnectionLimit``: aiohttp's protocol, counted and timestamped."""

    def __init__(self, limit: ConnectionLimit, inner: asyncio.Protocol) -> None:
        self._limit = limit
        self._inner = inner
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._limit.opened(self)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._limit.touch(self)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._limit.closed(self)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class ConnectionLimit:
    """A protocol factory around aiohttp's that keeps at most ``limit`` connections open.

    A new connection always gets in: at the limit the least recently active one is closed to
    make room, so idle or stalled clients cannot lock out a health check, and open sockets stay
    bounded (no ``accept()`` failures when file descriptors run out).
    """

    def __init__(self, factory: Callable[[], asyncio.Protocol], limit: int) -> None:
        self._factory = factory
        self.limit = limit
        self._open: dict[_Tracked, None] = {}  # ordered from least to most recently active
        self.evicted = 0

    def __call__(self) -> _Tracked:
        return _Tracked(self, self._factory())

    @property
    def open_count(self) -> int:
        return len(self._open)

    def opened(self, conn: _Tracked) -> None:
        while len(self._open) >= self.limit:
            oldest = next(iter(self._open))
            del self._open[oldest]
            self.evicted += 1
            if oldest.transport is not None:
                oldest.transport.abort()
        self._open[conn] = None

    def touch(self, conn: _Tracked) -> None:
        if conn in self._open:
            del self._open[conn]
            self._open[conn] = None

    def closed(self, conn: _Tracked) -> None:
        self._open.pop(conn, None)
