"""Log lines: journald priorities vs. timestamps, one line per event, secrets redacted."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from notifier import logs
from notifier.logs import register_secret, setup_logging
from notifier.secrets import Secrets

TIMESTAMPED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (\w+) ([\w.]+): (.*)")


@pytest.fixture(autouse=True)
def isolated_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets the root logger and the secret registry as they were."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(logs, "_registered", Secrets(name="notifier.logs"))
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[TextIO]:
    with (tmp_path / "stderr").open("w+", encoding="utf-8") as stream:
        yield stream


def explode(exc: Exception) -> None:
    raise exc


def lines(stream: TextIO) -> list[str]:
    stream.flush()
    stream.seek(0)
    return stream.read().splitlines()


def attach_journal(monkeypatch: pytest.MonkeyPatch, stream: TextIO) -> None:
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")


def test_journal_lines_carry_syslog_priority_and_no_timestamp(
    monkeypatch: pytest.MonkeyPatch, log_file: TextIO
) -> None:
    """Under journald every line starts with <N> so ``journalctl -p`` filters work."""
    attach_journal(monkeypatch, log_file)
    setup_logging("DEBUG", stream=log_file)
    log = logging.getLogger("notifier.test")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    assert lines(log_file) == [
        "<7>DEBUG notifier.test: d",
        "<6>INFO notifier.test: i",
        "<4>WARNING notifier.test: w",
        "<3>ERROR notifier.test: e",
        "<2>CRITICAL notifier.test: c",
    ]


def test_plain_lines_are_timestamped_without_priority(log_file: TextIO) -> None:
    """Outside journald a line reads ``time level logger: message``."""
    setup_logging("INFO", stream=log_file)
    logging.getLogger("notifier.test").warning("feed %s down", "quote")
    logging.getLogger("notifier.test").debug("below the level")
    [line] = lines(log_file)
    match = TIMESTAMPED.fullmatch(line)
    assert match is not None, line
    assert match.groups() == ("WARNING", "notifier.test", "feed quote down")


def test_journal_stream_of_another_file_means_plain_format(
    monkeypatch: pytest.MonkeyPatch, log_file: TextIO, tmp_path: Path
) -> None:
    """JOURNAL_STREAM inherited by a process whose stderr was redirected is ignored."""
    other = tmp_path / "other"
    other.write_text("")
    st = other.stat()
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    setup_logging("INFO", stream=log_file)
    logging.getLogger("x").info("hello")
    assert TIMESTAMPED.fullmatch(lines(log_file)[0])


def test_exception_and_multiline_message_stay_on_one_line(
    monkeypatch: pytest.MonkeyPatch, log_file: TextIO
) -> None:
    """A traceback is folded onto its event's line with ``\\n``, keeping the priority."""
    attach_journal(monkeypatch, log_file)
    setup_logging("INFO", stream=log_file)
    log = logging.getLogger("notifier.test")
    try:
        explode(ValueError("boom"))
    except ValueError:
        log.exception("reload failed\nsecond line")
    log.info("next")
    out = lines(log_file)
    assert len(out) == 2
    assert out[0].startswith("<3>ERROR notifier.test: reload failed\\nsecond line\\nTraceback")
    assert out[0].endswith("ValueError: boom")
    assert out[1] == "<6>INFO notifier.test: next"


def test_registered_secret_is_redacted_in_message_args_and_traceback(
    log_file: TextIO,
) -> None:
    """The safety net replaces a secret wherever it slipped into a line, URL-encoded too."""
    register_secret("s3cr3t/key+value")
    setup_logging("INFO", stream=log_file)
    log = logging.getLogger("notifier.test")
    log.info("connecting with %s", "s3cr3t/key+value")
    log.info("GET https://x.test/stream?key=s3cr3t%2Fkey%2Bvalue")
    try:
        explode(RuntimeError("auth failed for s3cr3t/key+value"))
    except RuntimeError:
        log.exception("upstream refused")
    out = lines(log_file)
    assert len(out) == 3
    assert out[0].endswith("connecting with ***")
    assert out[1].endswith("stream?key=***")
    assert "RuntimeError: auth failed for ***" in out[2]
    assert not any("s3cr3t" in line for line in out)


def test_short_or_empty_secrets_are_not_registered(log_file: TextIO) -> None:
    """An empty key must not turn every line into stars."""
    register_secret("")
    register_secret("ab")
    setup_logging("INFO", stream=log_file)
    logging.getLogger("x").info("ab cd")
    assert lines(log_file)[0].endswith("x: ab cd")


def test_setup_twice_keeps_one_handler(log_file: TextIO) -> None:
    """Re-running setup replaces its handler instead of doubling every line."""
    setup_logging("INFO", stream=log_file)
    setup_logging("INFO", stream=log_file)
    logging.getLogger("x").info("once")
    assert len(lines(log_file)) == 1


def test_unknown_level_is_refused() -> None:
    """A typo in log_level is an error, not silence."""
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        setup_logging("LOUD")
