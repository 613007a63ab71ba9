"""Telling a rule file unchanged by its status alone, as git does: a reload of 100 files need
not read and hash the 99 that no one touched.

A file counts as unchanged when its device, inode, size, mtime and ctime are those it had when
last read, and it had last changed well before that read (``RACY_NS``): a write after the read
sets ctime to a later time, even on file systems whose clock ticks coarsely, and ctime cannot
be set back by hand. Anything else — a file changed within the margin, a stat that fails — is
read again, and its digest says whether it changed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RACY_NS", "Seen"]

RACY_NS = 2_000_000_000  # a change this close before a read may share the read's clock tick


def _status(path: Path) -> tuple[int, int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class Seen:
    """A file's status just before it was read, and when that was."""

    status: tuple[int, int, int, int, int] | None
    read_at: int  # time.time_ns()

    @classmethod
    def before_reading(cls, path: Path) -> Seen:
        read_at = time.time_ns()
        return cls(_status(path), read_at)

    def unchanged(self, path: Path) -> bool:
        """Whether ``path`` surely holds the bytes read then."""
        if self.status is None:
            return False
        mtime, ctime = self.status[3], self.status[4]
        return max(mtime, ctime) < self.read_at - RACY_NS and _status(path) == self.status
