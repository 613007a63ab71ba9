"""The garbage collector around a daemon's life: start-up's objects (modules, rules, the
config, the store) live as long as the process, so once the daemon is up they go to the
collector's permanent generation, and the full collections that a quote burst triggers scan
only what was made since (tens of milliseconds each at 1,000 rules, otherwise: issue #15)."""

from __future__ import annotations

import gc

__all__ = ["release_heap", "settle_heap"]


def settle_heap() -> None:
    """Collect start-up's garbage once, then freeze every object still alive. Frozen objects
    are still freed by reference counting; only cycles among them wait for ``release_heap``."""
    gc.collect()
    gc.freeze()


def release_heap() -> None:
    """Hand the frozen objects back to the collector (a stopped daemon's cycles can go)."""
    gc.unfreeze()
