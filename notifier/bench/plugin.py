"""The ``bench://HOST:PORT`` apprise channel: reports when apprise starts a send.

Importing this module registers the scheme. Each call takes ``time.time()`` first thing, then
sends one UDP datagram ``"<title>\\n<body>\\n<time>"`` to ``HOST:PORT`` (the bench's collector) and
reports success, so the latency figure ends where a real channel would start its network call.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from apprise import NotifyFormat
from apprise.decorators import notify
from apprise.manager_plugins import NotificationManager

from notifier.dispatch.plugins import install

__all__ = ["SCHEME"]

SCHEME = "bench"
_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # sendto is thread-safe


def _send(
    body: str, title: str, notify_type: str, meta: dict[str, Any], *_: Any, **__: Any
) -> bool:
    started = time.time()
    address = (str(meta.get("host") or "127.0.0.1"), int(meta.get("port") or 0))
    _socket.sendto(f"{title}\n{body}\n{started!r}".encode(), address)
    return True


# apprise's plugin registry and decorator are untyped. Asking it first imports every plugin
# unless it imports them on demand (install).
install()
if SCHEME not in NotificationManager():  # type: ignore[no-untyped-call]
    notify(on=SCHEME, name="Bench", body_format=NotifyFormat.TEXT)(_send)  # type: ignore[no-untyped-call]
