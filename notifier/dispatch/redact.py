"""Keep apprise secrets (tokens, passwords in channel URLs) out of logs, errors and status."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from urllib.parse import quote, unquote

__all__ = ["LOGGERS", "Redactor", "mask_urls"]

# apprise logs on one logger; urllib3 logs request lines (paths, queries) at debug.
LOGGERS = ("apprise", "urllib3.connectionpool", "notifier.dispatch")

_URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://[^\s'\"<>]+", re.IGNORECASE)
_URL_SEPARATORS = re.compile(r"[/:@?&=,;#\s]+")
_MIN_SECRET = 4  # shorter fragments (ports, flags) are not secrets and would mangle text
MASK = "****"


def mask_urls(text: str) -> str:
    """Replace every URL in ``text`` by its scheme: for messages about URLs apprise rejected."""
    return _URL.sub(lambda m: f"{m.group(1)}://{MASK}", text)


def _fragments(url: str) -> set[str]:
    return {part for part in _URL_SEPARATORS.split(unquote(url)) if len(part) >= _MIN_SECRET}


class Redactor(logging.Filter):
    """Replaces known secrets with ``****`` in text and in log records passing a logger.

    Secrets are learnt from channel URLs: whatever ``url()`` shows and
    ``url(privacy=True)`` hides. It only ever learns (a secret of an old config generation
    stays masked) and is safe to call from apprise's worker threads.
    """

    def __init__(self) -> None:
        super().__init__("notifier.dispatch.redact")
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def learn(self, full_url: str, private_url: str, extra: Iterable[str] = ()) -> None:
        found = (_fragments(full_url) - _fragments(private_url)) | {
            s for s in extra if len(s) >= _MIN_SECRET
        }
        found |= {quote(s, safe="") for s in found}
        with self._lock:
            merged = set(self._secrets) | found
            # Longest first so a secret containing another is masked whole.
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a record with bad args: leave it to the handler
            return True
        cleaned = self(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True

    def attach(self, names: Iterable[str] = LOGGERS) -> Callable[[], None]:
        """Install on the named loggers; returns the callable that removes it again."""
        loggers = [logging.getLogger(name) for name in names]
        for logger in loggers:
            logger.addFilter(self)

        def detach() -> None:
            for logger in loggers:
                logger.removeFilter(self)  # a no-op when already removed

        return detach
