"""Start-up refusals of the real ``notifier run``: each broken state directory or file gives one
line ``notifier: <path>: <what is wrong>``, no traceback, and exit 78 (``EX_CONFIG``); a damaged
database is kept aside byte for byte, and the next start begins with an empty one."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from notifier.store import DB_FILENAME, MIGRATIONS, Migration, Store, StoreError
from notifier.store.sqlite import HISTORY_FILENAME
from tests.test_e2e_ops import PYTHON, SEEDED, STOP_TIMEOUT, clean_env, refused_config

PAGE = 4096


def without_dac_override() -> list[str]:
    """An argv prefix under which file permissions bind this process, even as root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to bind")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


def run_notifier(
    config: Path, *extra: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [*prefix, PYTHON, "-m", "notifier", "run", "-c", str(config), *extra],
        capture_output=True, text=True, env=clean_env(), timeout=STOP_TIMEOUT, check=False,
    )  # fmt: skip


def refusal(result: subprocess.CompletedProcess[str], path: Path) -> str:
    """The one line a refused start wrote; it names ``path``; exit 78, no traceback."""
    assert result.returncode == 78, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in result.stderr
    assert SEEDED not in result.stderr
    assert lines[0].startswith(f"notifier: {path}: "), lines[0]
    return lines[0]


def make_database(state: Path) -> Path:
    """A real state database with a pending outbox-like row in it (several pages long)."""
    store = Store.open(state)
    with store.transaction() as db:
        db.execute("CREATE TABLE keepsake (note TEXT)")
        db.executemany("INSERT INTO keepsake VALUES (?)", [("unsent " * 50,)] * 200)
    store.close()
    return state / DB_FILENAME


def corrupt_page(db: Path) -> None:
    with db.open("r+b") as f:
        f.seek(2 * PAGE)
        f.write(b"\xff" * PAGE)


def empty(db: Path) -> None:
    db.write_bytes(b"")


def garbage(db: Path) -> None:
    db.write_bytes(os.urandom(3 * PAGE))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    return refused_config(tmp_path, http='listen = ""')


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (empty, "the database file is empty (0 bytes)"),
        (garbage, "the database is damaged (file is not a database)"),
        (corrupt_page, "the database is damaged ("),
    ],
)
def test_damaged_database_is_kept_aside_and_refused_then_a_new_start_begins_empty(
    tmp_path: Path, config: Path, damage: Callable[[Path], None], problem: str
) -> None:
    """A zero-length, foreign or corrupt database: exit 78 with one line saying where it was
    kept; the file is renamed untouched with its -wal, never opened over; the next start runs
    on a fresh database."""
    db = make_database(tmp_path / "state")
    damage(db)
    wal = db.with_name(DB_FILENAME + "-wal")
    wal.write_bytes(b"wal frames of the damaged database")
    before, wal_before = digest(db), digest(wal)

    line = refusal(run_notifier(config), db)
    assert problem in line
    kept = sorted(db.parent.glob(f"{DB_FILENAME}.damaged-*"))
    main, kept_wal = kept[0], kept[0].with_name(kept[0].name + "-wal")
    assert {k.name for k in kept} <= {main.name, kept_wal.name, main.name + "-shm"}
    assert f"kept as {main.name} (with its -wal" in line
    assert "docs/install.md" in line
    assert digest(main) == before
    assert digest(kept_wal) == wal_before
    assert not db.exists()
    assert not wal.exists()

    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [PYTHON, "-m", "notifier", "run", "-c", str(config)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=clean_env(), text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        for started in proc.stderr:
            if "started" in started:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "started" in started
    assert digest(main) == before
    assert digest(kept_wal) == wal_before
    with sqlite3.connect(db) as fresh:
        assert fresh.execute("PRAGMA user_version").fetchone()[0] >= 1


def test_database_of_a_newer_notifier_is_refused_and_left_in_place(
    tmp_path: Path, config: Path
) -> None:
    """A schema newer than this program is not damage: refused, named, not moved."""
    db = make_database(tmp_path / "state")
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")
    conn.close()
    line = refusal(run_notifier(config), db)
    assert "newer" in line
    assert db.exists()
    assert not list(db.parent.glob("*.damaged-*"))


def test_read_only_state_directory_is_refused_naming_it(tmp_path: Path, config: Path) -> None:
    """A state directory notifier cannot write: exit 78, naming the directory."""
    prefix = without_dac_override()
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o555)
    try:
        line = refusal(run_notifier(config, prefix=tuple(prefix)), state)
    finally:
        state.chmod(0o755)
    assert "cannot write the state directory (Permission denied)" in line
    assert list(state.iterdir()) == []


def test_read_only_database_is_refused_before_anything_runs(tmp_path: Path, config: Path) -> None:
    """A database file notifier may read but not write fails at start, not at first send."""
    prefix = without_dac_override()
    db = make_database(tmp_path / "state")
    before = digest(db)
    db.chmod(0o444)
    line = refusal(run_notifier(config, prefix=tuple(prefix)), db)
    assert "readonly" in line
    assert digest(db) == before


def test_state_dir_that_is_a_file_is_refused(tmp_path: Path, config: Path) -> None:
    (tmp_path / "state").write_text("not a directory\n", encoding="utf-8")
    line = refusal(run_notifier(config), tmp_path / "state")
    assert "not a directory" in line


def test_database_path_that_is_a_directory_is_refused(tmp_path: Path, config: Path) -> None:
    db = tmp_path / "state" / DB_FILENAME
    db.mkdir(parents=True)
    line = refusal(run_notifier(config), db)
    assert "is a directory" in line


def test_history_path_that_is_a_directory_is_refused(tmp_path: Path, config: Path) -> None:
    """The quote history's own file (``history.db``) cannot be opened: one line, exit 78."""
    history = tmp_path / "state" / HISTORY_FILENAME
    history.mkdir(parents=True)
    line = refusal(run_notifier(config), history)
    assert "is a directory" in line


def test_an_api_token_file_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    """``{state_dir}/api_token`` that is a directory: exit 78 with one line naming it."""
    config = refused_config(tmp_path, http='listen = "127.0.0.1:0"')
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[http]\ntoken = ", "[http]\n# token = "), encoding="utf-8")
    token = tmp_path / "state" / "api_token"
    token.mkdir(parents=True)
    line = refusal(run_notifier(config), token)
    assert "API token file" in line


def test_config_that_is_not_text_is_refused(tmp_path: Path) -> None:
    """A binary file given as the config is named, not a UnicodeDecodeError traceback."""
    config = tmp_path / "notifier.toml"
    config.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    line = refusal(run_notifier(config), config)
    assert "not UTF-8" in line


def test_record_file_that_cannot_be_opened_is_refused(tmp_path: Path, config: Path) -> None:
    record = tmp_path / "missing" / "events.jsonl"
    line = refusal(run_notifier(config, "--record", str(record)), record)
    assert "No such file or directory" in line


def test_refusal_under_journald_is_filed_as_an_error(tmp_path: Path, config: Path) -> None:
    """With ``$JOURNAL_STREAM`` naming stderr the line carries ``<3>``, which journald strips."""
    (tmp_path / "state").write_text("not a directory\n", encoding="utf-8")
    log_path = tmp_path / "stderr.log"
    with log_path.open("wb") as log_file:
        st = os.fstat(log_file.fileno())
        code = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [PYTHON, "-m", "notifier", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL, stderr=log_file, timeout=STOP_TIMEOUT, check=False,
            env=clean_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"),
        ).returncode  # fmt: skip
    assert code == 78
    lines = log_path.read_text(encoding="utf-8").splitlines()
    assert lines == [f"<3>notifier: {tmp_path / 'state'}: the state directory is not a directory"]


def test_a_full_disk_is_a_retryable_refusal(tmp_path: Path) -> None:
    """SQLite's 'database or disk is full' may pass once space is freed: retryable (exit 1)."""
    fill = "INSERT INTO filler VALUES (zeroblob(65536));\n" * 64
    step = max(m.version for m in MIGRATIONS) + 1  # after every real step
    big = Migration(step, "fill", "CREATE TABLE filler (x);\n" + fill)
    store = Store.open(tmp_path)
    with store.transaction() as conn:
        conn.execute("PRAGMA max_page_count = 40")
    with pytest.raises(StoreError, match="database or disk is full") as caught:
        store.migrate([*MIGRATIONS, big])
    assert caught.value.retryable
    assert str(caught.value).startswith(f"{tmp_path / DB_FILENAME}: migration {step} (fill) failed")
    store.close()


def test_refusal_line_redacts_configured_secrets(tmp_path: Path, config: Path) -> None:
    """The refusal is printed, not logged, but keeps the log's safety net for secrets."""
    record = tmp_path / f"{SEEDED}-http" / "events.jsonl"
    result = run_notifier(config, "--record", str(record))
    assert result.returncode == 78
    assert SEEDED not in result.stderr
    assert result.stderr == f"notifier: {tmp_path}/***/events.jsonl: cannot open the event " + (
        "record: No such file or directory\n"
    )
