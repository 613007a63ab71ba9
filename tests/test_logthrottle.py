"""Repeated log lines: the first passes, the rest are counted and summarised once per window."""

from __future__ import annotations

import io
import logging

import pytest

from notifier.logs import setup_logging
from notifier.logthrottle import LogLimiter, RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(message: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("notifier.test", level, __file__, 1, message, args, None)


def test_first_line_passes_then_one_summary_per_window() -> None:
    """10,000 identical lines in a window give the first line and one summary with the count."""
    clock, summaries = Clock(), list[logging.LogRecord]()
    repeat = RepeatFilter(summaries.append, interval=60, clock=clock)
    passed = [repeat.filter(record("accept() failed on fd %d", 9)) for _ in range(10_000)]
    assert passed.count(True) == 1
    assert summaries == []
    clock.now += 61
    assert repeat.filter(record("accept() failed on fd %d", 9)) is True  # a new window
    assert [s.getMessage() for s in summaries] == [
        "accept() failed on fd 9 [repeated 9999 more times in 60 s]"
    ]
    assert summaries[0].levelno == logging.ERROR
    assert summaries[0].name == "notifier.test"


def test_different_messages_levels_and_loggers_are_counted_apart() -> None:
    """Only identical lines are held back."""
    repeat = RepeatFilter(None, interval=60, clock=Clock())
    assert repeat.filter(record("a"))
    assert repeat.filter(record("b"))
    assert repeat.filter(record("a", level=logging.WARNING))
    other = record("a")
    other.name = "notifier.other"
    assert repeat.filter(other)
    assert not repeat.filter(record("a"))


def test_summary_is_written_by_any_later_line_or_flush() -> None:
    """A flood that stops is still summarised: by the next unrelated line, or by ``flush``."""
    clock, summaries = Clock(), list[logging.LogRecord]()
    repeat = RepeatFilter(summaries.append, interval=60, clock=clock)
    for _ in range(3):
        repeat.filter(record("x"))
    clock.now += 61
    assert repeat.filter(record("unrelated"))
    assert [s.getMessage() for s in summaries] == ["x [repeated 2 more times in 60 s]"]
    repeat.filter(record("y"))
    repeat.filter(record("y"))
    repeat.flush()
    assert summaries[-1].getMessage() == "y [repeated 1 more times in 60 s]"


def test_tracked_messages_are_bounded() -> None:
    """Many distinct lines never grow the filter beyond ``max_keys`` windows."""
    repeat = RepeatFilter(None, interval=60, max_keys=10, clock=Clock())
    assert all(repeat.filter(record("line %d", n)) for n in range(1000))
    assert repeat.tracked == 10


def test_setup_logging_rate_limits_repeated_lines() -> None:
    """The daemon's handler writes one line for a burst of identical ones."""
    stream = io.StringIO()
    setup_logging("INFO", stream=stream)
    try:
        log = logging.getLogger("notifier.test.flood")
        for _ in range(1000):
            log.error("socket.accept() out of system resource")
        log.info("something else")
    finally:
        setup_logging("WARNING", stream=io.StringIO())
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("ERROR notifier.test.flood: socket.accept() out of system resource")


def test_log_limiter_lets_one_line_per_kind_per_interval_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Lines of one kind whose text varies (garbage echoed back) pass once per interval; the
    next line let through says how many were held back."""
    clock = Clock()
    limiter = LogLimiter(logging.getLogger("t.limiter"), interval=60.0, clock=clock)
    for n in range(1000):
        limiter.warning("error", "upstream error: %s", f"garbage {n}")
    limiter.warning("other", "another kind")
    clock.now += 61
    limiter.warning("error", "upstream error: %s", "late")
    assert caplog.messages == [
        "upstream error: garbage 0",
        "another kind",
        "upstream error: late [999 more like this held back in the previous 60 s]",
    ]
    assert limiter.held == 999
