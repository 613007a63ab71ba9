"""``notifier replay``: recorded events through the rules on a virtual clock, printed as JSON."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from notifier.cli import main
from notifier.eventlog import event_from_json, event_to_json
from notifier.events import Event, FeedEvent, IntentEvent, OrderEvent, OrderInfo, QuoteEvent
from tests.support import SOL, SOL_USDC, USDC

MAKER = "0x00000000000000000000000000000000000d3e70"
T0 = 1_700_000_000.0

RULES = f"""\
rules:
  - id: sol-below-185
    on: quote
    pair: {{in: SOL, out: USDC, amount: 1}}
    below: 185
    for: 30s
    severity: failure
    title: "SOL under 185: {{{{ price | round(2) }}}}"
    body: "{{{{ transition }}}} at {{{{ now | int }}}}"

  - id: my-fills
    on: order
    chain: 1
    maker: "{MAKER}"
    events: [order_filled]
    notify: [phone]
    title: "filled {{{{ order_hash }}}}"
    body: "{{{{ making_amount }}}} of {{{{ maker_asset }}}}"

  - id: intent-expired
    on: intent
    to: [Expired]
    title: "{{{{ intent_id }}}} {{{{ previous_status }}}} -> {{{{ status }}}}"
    body: "after {{{{ (age / 60) | round | int }}}} min"
"""


def line(data: dict[str, Any]) -> str:
    return orjson.dumps(data).decode()


QUOTE_184 = line(
    {"at": T0, "type": "quote", "in": SOL, "out": USDC, "amount": "1000000000",
     "exact_in": True, "amount_out": "184000000", "price_impact_bps": 3, "hops": 1, "slot": 7}
)  # fmt: skip
ORDER_FILLED = line(
    {"at": T0 + 40, "type": "order", "chain": 1, "event": "order_filled", "order_hash": "0xfeed",
     "result": {"orderHash": "0xfeed"},
     "order": {"order_hash": "0xfeed", "maker": MAKER, "receiver": MAKER, "maker_asset": "0xa",
               "taker_asset": "0xb", "making_amount": "25000000000000000000",
               "taking_amount": "1", "deadline": None, "remaining_maker_amount": None},
     "reconciled": False}
)  # fmt: skip
INTENT_EXPIRED = line(
    {"at": T0 + 50, "type": "intent", "intent_id": "int-1", "status": "Expired",
     "previous_status": "Deposited", "label": None, "fields": {}, "swap_metadata": None,
     "created_at": T0 - 3550}
)  # fmt: skip
EXPECTED = [
    {"key": f"sol-below-185|SOL/USDC:1000000000|firing|{T0 + 30:.6f}",
     "rule_id": "sol-below-185", "title": "SOL under 185: 184.0",
     "body": f"firing at {int(T0) + 30}", "severity": "failure", "tags": [],
     "created_at": T0 + 30, "event_at": T0, "alert_key": "SOL/USDC:1000000000",
     "transition": "firing", "episode": T0 + 30, "source": "quote",
     "why": "price 184 < 185 for 30s"},
    {"key": "my-fills|0xfeed:order_filled", "rule_id": "my-fills", "title": "filled 0xfeed",
     "body": "25000000000000000000 of 0xa", "severity": "info", "tags": ["phone"],
     "created_at": T0 + 40, "event_at": T0 + 40, "alert_key": "0xfeed", "transition": "event",
     "episode": None, "source": "order", "why": "order_filled of 0xfeed, 100% filled"},
    {"key": "intent-expired|int-1:Expired", "rule_id": "intent-expired",
     "title": "int-1 Deposited -> Expired", "body": "after 60 min", "severity": "info",
     "tags": [], "created_at": T0 + 50, "event_at": T0 + 50, "alert_key": "int-1",
     "transition": "event", "episode": None, "source": "intent", "why": "status Expired"},
]  # fmt: skip


@pytest.fixture
def rules_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("NOTIFIER_CONFIG", raising=False)
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.yaml").write_text(RULES, encoding="utf-8")
    return directory


def replay(
    events: list[str], rules_dir: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[dict[str, Any]], str]:
    path = rules_dir.parent / "events.jsonl"
    path.write_text("\n".join(events) + "\n", encoding="utf-8")
    code = main(["replay", str(path), "--rules", str(rules_dir)])
    out, err = capsys.readouterr()
    return code, [orjson.loads(x) for x in out.splitlines()], err


def test_replay_prints_the_notifications_a_recording_would_send(
    rules_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A quote pending ``for:`` fires on a tick line; a fill and an expiry notify: exact JSON."""
    tick = line({"at": T0 + 35, "type": "tick"})
    code, printed, err = replay([QUOTE_184, tick, ORDER_FILLED, INTENT_EXPIRED], rules_dir, capsys)
    assert (code, err) == (0, "")
    assert printed == EXPECTED


def test_timers_fire_at_their_due_time_not_at_the_next_line(
    rules_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a tick, the next event's time carries the clock past the due time first."""
    code, printed, _ = replay([QUOTE_184, ORDER_FILLED], rules_dir, capsys)
    assert code == 0
    assert [(n["rule_id"], n["created_at"]) for n in printed] == [
        ("sol-below-185", T0 + 30),
        ("my-fills", T0 + 40),
    ]


def test_a_timer_not_yet_due_at_the_end_of_the_file_does_not_fire(
    rules_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The virtual clock stops at the last line: a pending rule stays pending."""
    code, printed, _ = replay([QUOTE_184, line({"at": T0 + 29, "type": "tick"})], rules_dir, capsys)
    assert (code, printed) == (0, [])


def test_duplicate_events_print_once(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A fill seen live and again from the reconcile prints one notification."""
    reconciled = ORDER_FILLED.replace('"reconciled":false', '"reconciled":true')
    code, printed, _ = replay([ORDER_FILLED, reconciled], rules_dir, capsys)
    assert code == 0
    assert [n["rule_id"] for n in printed] == ["my-fills"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "unexpected character"),
        ("[1, 2]", "a line must be a JSON object"),
        ('{"type": "tick"}', "'at'"),
        ('{"at": 1, "type": "trade"}', "unknown event type 'trade'"),
        ('{"at": "soon", "type": "tick"}', "could not convert string to float"),
        ('{"at": 1, "type": "order", "chain": 1, "event": "e", "order_hash": "h", "order": "x"}',
         "'order' must be an object or null"),
        ('{"at": 1, "type": "feed", "feed": "quote", "up": "false"}', "'up' must be true or false"),
        ('{"at": 1, "type": "feed", "feed": "prices", "up": false}', "unknown feed 'prices'"),
        ('{"at": 1, "type": "intent", "intent_id": "i", "status": "Created", "swap_metadata": 5}',
         "'swap_metadata' must be an object or null"),
    ],
)  # fmt: skip
def test_a_malformed_line_names_file_and_line_and_exits_1(
    rules_dir: Path, capsys: pytest.CaptureFixture[str], bad: str, message: str
) -> None:
    """The error is ``file:line: reason`` on stderr, exit status 1."""
    code, _, err = replay([QUOTE_184, "", bad], rules_dir, capsys)
    assert code == 1
    assert err.startswith(f"notifier: {rules_dir.parent / 'events.jsonl'}:3: ")
    assert message in err


def test_rules_with_errors_exit_1_without_replaying(
    rules_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rules dir that does not load is reported, located, before any event is read."""
    (rules_dir / "bad.yaml").write_text("rules:\n  - id: x\n    on: nope\n", encoding="utf-8")
    code, printed, err = replay([QUOTE_184, ORDER_FILLED], rules_dir, capsys)
    assert (code, printed) == (1, [])
    assert f"{rules_dir / 'bad.yaml'}:3:9: on: unknown rule kind 'nope'" in err


def test_a_missing_events_file_exits_1(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path that does not exist is an error naming it."""
    assert main(["replay", str(rules_dir / "nope.jsonl"), "--rules", str(rules_dir)]) == 1
    assert "nope.jsonl: No such file or directory" in capsys.readouterr().err


def test_the_notifier_command_replays(rules_dir: Path) -> None:
    """The installed entry point runs the same replay (as a user would type it)."""
    events = rules_dir.parent / "events.jsonl"
    events.write_text(f"{QUOTE_184}\n{ORDER_FILLED}\n{INTENT_EXPIRED}\n", encoding="utf-8")
    result = subprocess.run(  # noqa: S603 - our own entry point, fixed arguments
        [sys.executable, "-m", "notifier", "replay", str(events), "--rules", str(rules_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(x) for x in result.stdout.splitlines()] == EXPECTED


# -- the recording format ---------------------------------------------------------------------


def test_every_event_kind_round_trips_through_the_recording_format() -> None:
    """What ``notifier run --record`` writes, replay reads back as the same event."""
    wei = 25 * 10**18  # beyond 64 bits: kept exact as a string
    order = OrderInfo("0xfeed", MAKER, MAKER, "0xa", "0xb", wei, wei + 1, "2030-01-01", 7)
    events: list[Event] = [
        QuoteEvent(SOL_USDC, 201_500_000, 3, 1, 9, T0),
        OrderEvent(
            1,
            "order_filled_partially",
            "0xfeed",
            {"remainingMakerAmount": "7", "huge": 2**70},
            order,
            T0 + 1,
            reconciled=True,
        ),
        IntentEvent(
            "int-1",
            "Expired",
            "Deposited",
            "my swap",
            {"from_amount_lots": "5"},
            {"created_at": "2024-01-01T00:00:00Z"},
            T0 - 60,
            T0 + 2,
        ),
        FeedEvent("quote", False, "connection lost", T0 + 3),
    ]
    decoded = [event_from_json(orjson.loads(event_to_json(e))) for e in events]
    expected_order = OrderEvent(
        1,
        "order_filled_partially",
        "0xfeed",
        {"remainingMakerAmount": "7", "huge": str(2**70)},
        order,
        T0 + 1,
        reconciled=True,
    )
    assert decoded == [events[0], expected_order, events[2], events[3]]
    assert event_from_json({"at": T0, "type": "tick"}) == T0


WINDOW_RULES = """\
rules:
  - id: sol-drop
    on: quote
    pair: {in: SOL, out: USDC, amount: 1}
    when: pct_change('1m') < -3
    resolved: true
    title: "SOL {{ pct_change('1m') | round(2) }}% in a minute"
"""


def quote_at(at: float, usdc: int) -> str:
    return QUOTE_184.replace(f'"at":{T0}', f'"at":{at}').replace("184000000", str(usdc))


def test_windows_are_evaluated_on_the_virtual_clock_from_the_quotes_alone(
    rules_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A drop inside a one-minute window fires on the recorded times, and the window sliding
    past the old price resolves it on a tick, with no quote; each says why."""
    (rules_dir / "rules.yaml").write_text(WINDOW_RULES, encoding="utf-8")
    events = [
        quote_at(T0, 100_000_000),
        quote_at(T0 + 30, 100_500_000),  # the history does not reach a minute back yet
        quote_at(T0 + 65, 96_000_000),
        line({"at": T0 + 130, "type": "tick"}),
    ]
    code, printed, err = replay(events, rules_dir, capsys)
    assert (code, err) == (0, "")
    assert [(n["title"], n["why"], n["created_at"]) for n in printed] == [
        ("SOL -4.0% in a minute", "pct_change('1m') = \u22124 < \u22123", T0 + 65),
        ("RESOLVED SOL 0.0% in a minute", "no longer pct_change('1m') = 0 < \u22123", T0 + 126),
    ]
