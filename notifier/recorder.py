"""``run --record``: every event the sources emit, appended to a file as it comes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from notifier.eventlog import event_to_json
from notifier.events import Event

__all__ = ["Recorder"]


class Recorder:
    """``run --record``: appends each event as a JSON line; every line is in the file (the OS's
    buffers) within ``FLUSH_AFTER`` seconds, so a crash of the process loses at most that."""

    FLUSH_AFTER = 1.0

    def __init__(self, path: Path) -> None:
        self._file = path.open("ab", buffering=1 << 16)  # few syscalls under a flood
        self._flush: asyncio.TimerHandle | None = None

    def write(self, event: Event) -> None:
        self._file.write(event_to_json(event) + b"\n")
        if self._flush is None:  # one timer per second at most, not a syscall per event
            self._flush = asyncio.get_running_loop().call_later(self.FLUSH_AFTER, self.flush)

    def flush(self) -> None:
        self._flush = None
        self._file.flush()

    def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._file.close()
