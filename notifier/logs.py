r"""Logging to stderr, one event per line, with journald priorities when run by systemd.

Line formats:

- under journald (``$JOURNAL_STREAM`` names the stream we write to):
  ``<3>ERROR notifier.rules: message`` — no timestamp, the journal adds its own; journald strips
  the ``<N>`` syslog priority and files the line under it, so ``journalctl -p err`` works;
- otherwise: ``2025-01-31 12:00:00.123 ERROR notifier.rules: message``.

Line breaks inside a message or traceback are written as the two characters ``\n``, so a
traceback stays on the line of its event (``sed 's/\\n/\n/g'`` unfolds it) and journald never
splits one event into entries of the wrong priority.

``register_secret`` adds strings that the handler's ``Secrets`` filter (``notifier.secrets``)
replaces with ``***`` in every line. It is a safety net only: code must still never log a
secret.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from notifier.logthrottle import RepeatFilter
from notifier.secrets import Secrets

__all__ = [
    "LineFormatter",
    "journal_attached",
    "redact",
    "register_secret",
    "setup_logging",
    "syslog_priority",
]

# The handler's redactor: secrets the process registers (API keys from the config).
_registered = Secrets(name="notifier.logs")


def register_secret(value: str) -> None:
    """Redact ``value`` (and its URL-encoded form) from every log line from now on."""
    _registered.add([value.strip()])


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    return _registered(text)


def syslog_priority(levelno: int) -> int:
    """The syslog priority journald files a record of this level under."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class LineFormatter(logging.Formatter):
    """Formats a record as exactly one line, journald-style or timestamped."""

    def __init__(self, *, journal: bool) -> None:
        if journal:
            super().__init__("%(levelname)s %(name)s: %(message)s")
        else:
            super().__init__(
                "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
                datefmt="%Y-%m-%d %H:%M:%S",
            )
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
        return f"<{syslog_priority(record.levelno)}>{text}" if self.journal else text


def journal_attached(stream: TextIO) -> bool:
    """True when ``$JOURNAL_STREAM`` is set and names ``stream`` (systemd's documented check)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        device, inode = (int(part) for part in value.split(":"))
    except ValueError:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return True  # not a real file (a test buffer): trust the variable
    return (st.st_dev, st.st_ino) == (device, inode)


def setup_logging(level: str, *, stream: TextIO | None = None) -> None:
    """Send every log record at ``level`` or above to ``stream`` (stderr), one line each.

    Calling it again replaces the handler it installed before.
    """
    levelno = logging.getLevelNamesMapping().get(level.strip().upper())
    if levelno is None:
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    target = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(target)
    handler.set_name("notifier")
    handler.setFormatter(LineFormatter(journal=journal_attached(target)))
    handler.addFilter(_registered)
    handler.addFilter(RepeatFilter(handler.handle))  # a fault repeating fast must not flood

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "notifier"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levelno)
    logging.captureWarnings(True)
