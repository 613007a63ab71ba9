"""``http.listen`` addresses: parsed for the server, turned into a URL for local clients.

Apart from ``http.py`` so that ``notifier status`` and ``check`` need not import aiohttp."""

from __future__ import annotations

from notifier.config import ConfigError

__all__ = ["base_url", "parse_listen"]


def parse_listen(listen: str) -> tuple[str | None, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (every interface) → (host or None, port)."""
    host, sep, port_text = listen.strip().rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(
            f"http.listen: {listen!r} is not host:port (e.g. 127.0.0.1:9310, [::1]:9310)"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"http.listen: write an IPv6 address in brackets, e.g. [{host}]:9310")
    return host or None, int(port_text)


def base_url(host: str | None, port: int) -> str:
    """The URL a local client uses to reach a server bound to ``host:port``."""
    if host in {None, "", "0.0.0.0"}:
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    assert host is not None
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
