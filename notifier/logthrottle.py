"""Rate limiting of repeated log lines, so a fault that repeats fast never floods the journal.

``RepeatFilter`` lets the first line of a message through, then counts identical lines (same
logger, level and text) for ``interval`` seconds. When the window is over, one summary line
reports how many were held back: ``<message> [repeated 103538 more times in 60 s]``. The
summary is written with the next log line of any kind, or by ``flush()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LogLimiter", "RepeatFilter"]

_Key = tuple[str, int, str]


class _Summary(logging.LogRecord):
    """A summary line: never itself held back."""


@dataclass
class _Window:
    started: float
    record: logging.LogRecord  # the line that opened the window, for the summary
    held: int = 0


class RepeatFilter(logging.Filter):
    """Passes the first of identical lines per ``interval``, then one summary of the rest.

    ``emit`` writes a summary line (a handler's ``handle``); without it, summaries are dropped.
    At most ``max_keys`` distinct messages are tracked; the oldest window is summarised early.
    """

    def __init__(
        self,
        emit: Callable[[logging.LogRecord], object] | None = None,
        *,
        interval: float = 60.0,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._emit = emit
        self.interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._windows: dict[_Key, _Window] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record, _Summary):
            return True
        try:
            text = record.getMessage()
        except Exception:
            return True  # let logging report the broken record as usual
        key = (record.name, record.levelno, text)
        now = self._clock()
        with self._lock:
            due = self._expired(now)
            window = self._windows.get(key)
            if window is not None and now - window.started < self.interval:
                window.held += 1
                passed = False
            else:
                self._windows.pop(key, None)
                self._windows[key] = _Window(now, record)
                passed = True
            while len(self._windows) > self._max_keys:
                due.append(self._windows.pop(next(iter(self._windows))))
        self._summarise(due)
        return passed

    @property
    def tracked(self) -> int:
        """How many distinct messages have an open window."""
        return len(self._windows)

    def flush(self) -> None:
        """Write the summary of every window that held lines back, and forget them."""
        with self._lock:
            due = list(self._windows.values())
            self._windows.clear()
        self._summarise(due)

    def _expired(self, now: float) -> list[_Window]:
        """Remove and return windows that are over (insertion order is age order). Looks at
        the oldest only, not every window: each line logged calls it."""
        due: list[_Window] = []
        windows = self._windows
        while windows:
            key = next(iter(windows))
            window = windows[key]
            if now - window.started < self.interval:
                break
            due.append(window)
            del windows[key]
        return due

    def _summarise(self, windows: list[_Window]) -> None:
        if self._emit is None:
            return
        for window in windows:
            if not window.held:
                continue
            first = window.record
            summary = _Summary(
                first.name,
                first.levelno,
                first.pathname,
                first.lineno,
                "%s [repeated %d more times in %d s]",
                (first.getMessage(), window.held, round(self.interval)),
                None,
            )
            self._emit(summary)


class LogLimiter:
    """At most one line per ``kind`` per ``interval`` from one logger; the rest are counted.

    For per-frame and per-response warnings whose text varies with the upstream's data (garbage
    echoed back), which ``RepeatFilter`` cannot fold. The next line let through for a kind
    carries the count held back since the previous one. Callers use a small fixed set of kinds.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.held = 0  # lines held back in total, for tests and status
        self._clock = clock
        self._windows: dict[str, list[float]] = {}  # kind -> [window start, held in window]

    def warning(self, kind: str, msg: str, *args: object) -> None:
        self.log(logging.WARNING, kind, msg, *args)

    def log(self, level: int, kind: str, msg: str, *args: object) -> None:
        if not self.logger.isEnabledFor(level):
            return
        now = self._clock()
        window = self._windows.get(kind)
        if window is not None and now - window[0] < self.interval:
            window[1] += 1
            self.held += 1
            return
        held = int(window[1]) if window is not None else 0
        self._windows[kind] = [now, 0]
        if held:
            self.logger.log(
                level,
                msg + " [%d more like this held back in the previous %d s]",
                *args,
                held,
                round(self.interval),
            )
        else:
            self.logger.log(level, msg, *args)
