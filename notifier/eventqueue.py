"""The queue between the sources and the rule engine, conflating quotes per pair."""

from __future__ import annotations

import asyncio
from collections import deque

from notifier.events import Event, PairKey, QuoteEvent
from notifier.history.book import HistoryBook
from notifier.recorder import Recorder

__all__ = ["EventQueue"]


class EventQueue:
    """The sources' sink: ``emit`` never blocks.

    Quotes are conflated per pair — a newer quote replaces one not yet evaluated — so the
    queue is bounded by the number of subscribed pairs plus the (low-rate) order, intent and
    feed events. Order is kept between a pair's first pending quote and other events.
    """

    def __init__(self, record: Recorder | None = None, history: HistoryBook | None = None) -> None:
        self._record = record
        self._history = history  # every quote enters it, conflated or not
        self._items: deque[Event | PairKey] = deque()
        self._latest: dict[PairKey, QuoteEvent] = {}
        self._ready = asyncio.Event()
        self._woken = False  # ``_ready`` is set: a cheaper test than asking it, per quote
        self.conflated = 0
        self.received = 0

    def emit(self, event: Event) -> None:
        self.received += 1
        if self._record is not None:
            self._record.write(event)
        if type(event) is QuoteEvent:  # once per quote frame: each name looked up once
            pair, latest = event.pair, self._latest
            if self._history is not None:
                record = self._history.recorders.get(pair)
                if record is not None:
                    record(event.at, event.amount_out)
            if pair in latest:
                latest[pair] = event
                self.conflated += 1
                return  # pending already: the consumer is woken already
            latest[pair] = event
            self._items.append(pair)
        else:
            self._items.append(event)
        if not self._woken:
            self._woken = True
            self._ready.set()

    def __len__(self) -> int:
        return len(self._items)

    async def wait(self) -> None:
        await self._ready.wait()

    def drain(self, limit: int = 1024) -> list[Event]:
        """Up to ``limit`` events in arrival order; clears the ready flag when empty."""
        out: list[Event] = []
        items, latest = self._items, self._latest
        while items and len(out) < limit:
            item = items.popleft()
            out.append(latest.pop(item) if isinstance(item, tuple) else item)
        if not items:
            self._ready.clear()
            self._woken = False
        return out
