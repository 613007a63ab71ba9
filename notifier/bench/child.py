"""The first call of every bench child process: run where the bench put it, die with it.

Done in the child rather than in a ``preexec_fn``, which is unsafe once the bench has threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

__all__ = ["CPU_ENV", "PARENT_ENV", "adopt"]

CPU_ENV = "BENCH_CHILD_CPU"
PARENT_ENV = "BENCH_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def adopt() -> None:
    """Pin to ``$BENCH_CHILD_CPU``; get SIGTERM when the bench dies, even by SIGKILL."""
    cpu = os.environ.pop(CPU_ENV, "")
    if cpu.isdigit() and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {int(cpu)})
    parent = os.environ.pop(PARENT_ENV, "")
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent.isdigit() and os.getppid() != int(parent):
        sys.exit("notifier bench: the bench is gone")  # it died before prctl took effect
