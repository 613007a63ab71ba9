"""``notifier replay``: rules evaluated on recorded events (``eventlog``) on a virtual clock,
nothing sent."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import IO

import orjson

from notifier.config import Settings
from notifier.eventlog import event_from_json
from notifier.events import QuoteEvent
from notifier.history.book import HistoryBook
from notifier.notification import Notification
from notifier.rules import RuleRepository, RulesDirError
from notifier.rules.engine import Engine

__all__ = ["ReplayError", "replay"]


class ReplayError(Exception):
    """The events file cannot be replayed; the message names the line."""


class _Collect:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.seen: set[str] = set()
        self.count = 0

    def enqueue(self, notification: Notification) -> bool:
        if notification.key in self.seen:
            return False
        self.seen.add(notification.key)
        self.count += 1
        record = dataclasses.asdict(notification)
        self.out.write(orjson.dumps(record).decode() + "\n")
        return True


def replay(events_path: Path, rules_dir: Path, settings: Settings, out: IO[str]) -> int:
    """Print would-be notifications as JSON lines; exit status 1 when rules have errors."""
    repository = RuleRepository(
        rules_dir,
        settings.token_table(),
        max_bytes=settings.rules_max_bytes,
        max_window=settings.history.max_window,
    )
    try:
        loaded = repository.reload()
    except RulesDirError as exc:
        raise ReplayError(str(exc)) from None
    if loaded.errors:
        raise ReplayError("rule errors:\n" + "\n".join(str(e) for e in loaded.errors))
    clock = _VirtualClock()
    sink = _Collect(out)
    history = HistoryBook(settings.history.max_window)  # from the recorded quotes alone
    engine = Engine(
        loaded.ruleset, sink, tokens=settings.token_table(), clock=clock, history=history
    )
    try:
        lines = events_path.read_bytes().splitlines()
    except OSError as exc:
        raise ReplayError(f"{events_path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = event_from_json(orjson.loads(line))
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            raise ReplayError(f"{events_path}:{number}: {exc}") from None
        at = item if isinstance(item, float) else item.at
        clock.advance_to(at, engine)
        if isinstance(item, QuoteEvent):
            history.record(item)
        if not isinstance(item, float):
            engine.handle(item)
    return 0


class _VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance_to(self, at: float, engine: Engine) -> None:
        """Move time forward, firing every timer due on the way, in order. The clock starts
        at the first line: nothing is due before it."""
        if self.now == 0.0:
            self.now = at
        while (due := engine.next_due()) is not None and due <= at:
            self.now = max(self.now, due)
            engine.tick()
        self.now = max(self.now, at)
