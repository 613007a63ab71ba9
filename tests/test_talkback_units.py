"""Quiet-hour windows across midnight, days and DST; silence matchers; action-link tokens."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from notifier.talkback.links import LINK_LIFETIME, LinkError, LinkSigner
from notifier.talkback.model import Episode, Invalid, Matchers
from notifier.talkback.quiet import QuietHours, window_end
from notifier.talkback.settings import QuietHoursSettings

BERLIN = ZoneInfo("Europe/Berlin")


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=BERLIN).timestamp()  # type: ignore[arg-type,misc]


def night(**extra: object) -> QuietHoursSettings:
    values = {"tags": ["phone"], "from": "23:00", "to": "07:00", "timezone": "Europe/Berlin"}
    return QuietHoursSettings.model_validate({**values, **extra})


def test_a_window_crosses_midnight_and_ends_the_next_morning() -> None:
    """23:00-07:00 holds at 23:30 and 01:00 and ends at 07:00 local; noon is outside."""
    w = night()
    assert window_end(w, at(2025, 1, 15, 23, 30)) == at(2025, 1, 16, 7, 0)
    assert window_end(w, at(2025, 1, 16, 1, 0)) == at(2025, 1, 16, 7, 0)
    assert window_end(w, at(2025, 1, 16, 7, 0)) is None
    assert window_end(w, at(2025, 1, 16, 12, 0)) is None


def test_across_dst_changes_the_window_keeps_local_times() -> None:
    """The spring-forward night lasts 7 h, the fall-back night 9 h; both end at 07:00."""
    w = night()
    spring_end = window_end(w, at(2025, 3, 30, 1, 30))
    assert spring_end == at(2025, 3, 30, 7, 0)
    assert spring_end - at(2025, 3, 29, 23, 0) == 7 * 3600
    autumn_end = window_end(w, at(2025, 10, 26, 4, 0))
    assert autumn_end == at(2025, 10, 26, 7, 0)
    assert autumn_end - at(2025, 10, 25, 23, 0) == 9 * 3600


def test_days_name_the_day_a_window_starts_on() -> None:
    """``days = ["fri"]``: Friday night into Saturday morning only."""
    w = night(days=["fri"])
    assert window_end(w, at(2025, 1, 17, 23, 30)) is not None  # Friday
    assert window_end(w, at(2025, 1, 18, 3, 0)) is not None  # Saturday, started Friday
    assert window_end(w, at(2025, 1, 18, 23, 30)) is None  # Saturday night
    assert window_end(w, at(2025, 1, 17, 3, 0)) is None  # Friday morning: Thursday's night


def test_quiet_hours_hold_only_their_tags_and_not_excepted_severities() -> None:
    quiet = QuietHours([night(except_severity=["failure"])])
    now = at(2025, 1, 16, 2, 0)
    assert quiet.holding(["phone", "email"], "warning", now) == {"phone": at(2025, 1, 16, 7, 0)}
    assert quiet.holding(["phone"], "failure", now) == {}
    assert quiet.holding(["email"], "warning", now) == {}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("from", "25:00", "not a time of day"),
        ("to", "7", "not a time of day"),
        ("timezone", "Mars/Olympus", "unknown time zone"),
        ("days", ["someday"], "days.0"),
    ],
)
def test_bad_quiet_hours_are_refused_naming_the_key(
    field: str, value: object, message: str
) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        night(**{field: value})
    assert message in str(caught.value)


def test_silence_matchers_glob_rule_and_key_and_compare_the_rest_exactly() -> None:
    m = Matchers.parse({"rule": "sol-*", "key": "SOL/*", "severity": "warning", "tag": "phone"})
    assert m.matches("sol-above-200", "SOL/USDC:1", "warning", "quote", ("phone", "email"))
    assert not m.matches("eth-above", "SOL/USDC:1", "warning", "quote", ("phone",))
    assert not m.matches("sol-above-200", "SOL/USDC:1", "failure", "quote", ("phone",))
    assert not m.matches("sol-above-200", "SOL/USDC:1", "warning", "quote", ())
    for bad, message in (({}, "at least one matcher"), ({"rulez": "x"}, "unknown matcher"),
                         ({"severity": "loud"}, "matchers.severity")):  # fmt: skip
        with pytest.raises(Invalid, match=message):
            Matchers.parse(bad)


def test_action_link_tokens_are_signed_expire_and_belong_to_one_key() -> None:
    signer = LinkSigner("key-one")
    episode = Episode("sol-above-200", "SOL/USDC:1", 1_700_000_000.25)
    token = signer.token(episode, issued_at=1_700_000_000.0)
    assert signer.check(token, 1_700_000_100.0).episode == episode
    with pytest.raises(LinkError, match="expired"):
        signer.check(token, 1_700_000_000.0 + LINK_LIFETIME + 1)
    with pytest.raises(LinkError, match="another installation"):
        LinkSigner("key-two").check(token, 1_700_000_100.0)
    with pytest.raises(LinkError, match="malformed"):
        signer.check("not-a-token", 1_700_000_100.0)


def test_every_toml_example_of_the_living_with_alerts_page_is_a_valid_config() -> None:
    """The page's config examples load (so its keys never drift from the code)."""
    import re
    import tomllib
    from pathlib import Path

    from notifier.config import Settings

    page = Path(__file__).parent.parent / "docs" / "living-with-alerts.md"
    blocks = re.findall(r"```toml\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        Settings(**tomllib.loads(block))
