"""Keep secrets (API keys, tokens and passwords in channel URLs) out of logs, errors and status.

``Secrets`` is the one redactor: a set that only grows, applied to text and, as a
``logging.Filter``, to records (message, traceback, stack). The log handler's process-wide
set (``notifier.logs.register_secret``) and each dispatcher's set learnt from its apprise
URLs are two instances of it. It is a safety net only: code must still never log a secret.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from urllib.parse import quote, unquote

__all__ = ["MASK", "MIN_SECRET_CHARS", "Secrets", "mask_secrets", "mask_urls"]

MASK = "***"
MIN_SECRET_CHARS = 4  # shorter values (ports, flags, words) would mangle every line

_URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://[^\s'\"<>]+", re.IGNORECASE)
_URL_SEPARATORS = re.compile(r"[/:@?&=,;#\s]+")


def mask_secrets(text: str, secrets: Iterable[str], mask: str = MASK) -> str:
    """``text`` with each of ``secrets`` (longest first, so one containing another goes
    whole) replaced by ``mask``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and secret in text:
            text = text.replace(secret, mask)
    return text


def mask_urls(text: str, mask: str = MASK) -> str:
    """Replace every URL in ``text`` by its scheme: for messages about URLs apprise rejected."""
    return _URL.sub(lambda m: f"{m.group(1)}://{mask}", text)


def _fragments(url: str) -> set[str]:
    return {p for p in _URL_SEPARATORS.split(unquote(url)) if len(p) >= MIN_SECRET_CHARS}


class Secrets(logging.Filter):
    """Replaces known secrets with ``mask`` in text and in the log records it filters.

    Thread-safe (apprise's worker threads log through it); it only ever learns, so a secret
    of an old config generation stays masked.
    """

    def __init__(self, mask: str = MASK, name: str = "notifier.secrets") -> None:
        super().__init__(name)
        self.mask = mask
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()  # longest first; read without the lock

    def add(self, values: Iterable[str]) -> None:
        """Mask each value (and its URL-encoded form) from now on; short ones are ignored."""
        found = {v for v in values if len(v) >= MIN_SECRET_CHARS}
        found |= {quote(v, safe="") for v in found}
        with self._lock:
            self._secrets = tuple(sorted(set(self._secrets) | found, key=len, reverse=True))

    def learn_url(self, full_url: str, private_url: str, extra: Iterable[str] = ()) -> None:
        """Mask what ``full_url`` shows and its privacy form ``private_url`` hides."""
        self.add((_fragments(full_url) - _fragments(private_url)) | set(extra))

    def __call__(self, text: str) -> str:
        return mask_secrets(text, self._secrets, self.mask)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # args that do not format: the handler reports the record
            return True
        cleaned = self(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self(record.exc_text)
        if record.stack_info:
            record.stack_info = self(record.stack_info)
        return True

    def attach(self, names: Iterable[str]) -> Callable[[], None]:
        """Install on the named loggers; returns the callable that removes it again."""
        loggers = [logging.getLogger(name) for name in names]
        for logger in loggers:
            logger.addFilter(self)

        def detach() -> None:
            for logger in loggers:
                logger.removeFilter(self)  # a no-op when already removed

        return detach
