"""sd_notify for the daemon: readiness, status, reload, watchdog and stop notifications.

Outside systemd (no ``$NOTIFY_SOCKET``) every method is a no-op, so the daemon calls them
unconditionally.
"""

from __future__ import annotations

import logging
import os
import time
import unicodedata

import sdnotify

__all__ = ["STATUS_MAX_CHARS", "SystemdNotifier", "sanitize_status"]

log = logging.getLogger(__name__)

STATUS_MAX_CHARS = 200


def sanitize_status(text: str) -> str:
    """One printable line of at most ``STATUS_MAX_CHARS`` characters, always valid UTF-8."""
    # A newline would start a new KEY=VALUE assignment in the datagram, so it must never pass.
    cleaned = "".join(
        " " if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp", "Cs"} else ch for ch in text
    )
    line = " ".join(cleaned.split())
    if len(line) > STATUS_MAX_CHARS:
        line = line[: STATUS_MAX_CHARS - 1].rstrip() + "…"
    return line


class SystemdNotifier:
    """Sends sd_notify datagrams to ``$NOTIFY_SOCKET`` (paths and ``@abstract`` names).

    A failed send is logged once and never raised: notifications must not take the daemon down.
    """

    def __init__(self) -> None:
        self._address = os.environ.get("NOTIFY_SOCKET", "")
        self._client: sdnotify.SystemdNotifier | None = None
        self._failing = False

    @property
    def enabled(self) -> bool:
        """True when systemd (or a test) asked for notifications."""
        return bool(self._address)

    def ready(self) -> None:
        """Start-up finished, or a reload completed."""
        self._send("READY=1")

    def status(self, text: str) -> None:
        """Replace the one-line status shown by ``systemctl status``."""
        self._send(f"STATUS={sanitize_status(text)}")

    def reloading(self) -> None:
        """A reload begins; ``READY=1`` ends it. systemd ≥ 253 matches it by ``MONOTONIC_USEC``."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def watchdog(self) -> None:
        """Keep-alive; send at ``watchdog_interval()`` from the event loop."""
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        """Shutdown begins."""
        self._send("STOPPING=1")

    def close(self) -> None:
        """Close the socket; a later notification opens it again."""
        self._disconnect()

    def watchdog_interval(self) -> float | None:
        """Seconds between keep-alives (half of ``$WATCHDOG_USEC``), or None when not asked."""
        if not self.enabled:
            return None
        pid = os.environ.get("WATCHDOG_PID")
        if pid and pid.strip() != str(os.getpid()):
            return None
        try:
            usec = int(os.environ.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        return usec / 2_000_000 if usec > 0 else None

    def _send(self, message: str) -> None:
        if not self._address:
            return
        try:
            if self._client is None:
                self._client = sdnotify.SystemdNotifier(debug=True)
            # sdnotify encodes with latin-1; handing it the UTF-8 bytes as latin-1 text makes it
            # put exactly those bytes on the wire, so any status text survives.
            self._client.notify(message.encode("utf-8", "replace").decode("latin-1"))
        except (OSError, ValueError) as exc:
            self._disconnect()  # reconnect on the next call, e.g. after systemd re-executed
            if not self._failing:
                self._failing = True
                log.warning("cannot notify systemd at %s: %s", self._address, exc)
            return
        if self._failing:
            self._failing = False
            log.info("notifying systemd at %s works again", self._address)

    def _disconnect(self) -> None:
        sock = getattr(self._client, "socket", None)
        if sock is not None:
            sock.close()
        self._client = None
