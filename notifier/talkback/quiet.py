"""Quiet hours: is a tag inside one of its windows now, and until when.

A window is local time in its zone; it may cross midnight (``23:00`` to ``07:00`` ends the next
day) and ``from == to`` is a whole day. Across a DST change the local times are read as the
clock on the wall shows them: a start inside the skipped hour begins when the clock jumps past
it, and a repeated hour is taken at its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta

from notifier.talkback.settings import DAYS, QuietHoursSettings

__all__ = ["QuietHours", "window_end"]


def _at(day: date, hm: tuple[int, int], settings: QuietHoursSettings) -> float:
    local = datetime.combine(day, time(hm[0], hm[1]), tzinfo=settings.zone())
    return local.timestamp()


def window_end(settings: QuietHoursSettings, now: float) -> float | None:
    """When the window of ``settings`` that holds ``now`` ends, or None outside every window."""
    today = datetime.fromtimestamp(now, settings.zone()).date()
    crosses = settings.ends <= settings.starts  # equal: a whole day
    for start_day in (today - timedelta(days=1), today):
        if DAYS[start_day.weekday()] not in settings.days:
            continue
        start = _at(start_day, settings.starts, settings)
        end = _at(start_day + timedelta(days=1) if crosses else start_day, settings.ends, settings)
        if start <= now < end:
            return end
    return None


class QuietHours:
    """Every ``[[quiet_hours]]`` window of the config."""

    def __init__(self, windows: Sequence[QuietHoursSettings]) -> None:
        self._windows = list(windows)

    def __bool__(self) -> bool:
        return bool(self._windows)

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(tag for w in self._windows for tag in w.tags)

    def holding(self, tags: Iterable[str], severity: str, now: float) -> dict[str, float]:
        """The tags among ``tags`` a window holds a ``severity`` message for at ``now``, each
        with the time its (latest-ending) window ends."""
        wanted = set(tags)
        held: dict[str, float] = {}
        for window in self._windows:
            if severity in window.except_severity:
                continue
            hit = wanted.intersection(window.tags)
            if not hit:
                continue
            end = window_end(window, now)
            if end is None:
                continue
            for tag in hit:
                held[tag] = max(end, held.get(tag, end))
        return held
