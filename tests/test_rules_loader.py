"""Loading rule files: every error as ``path:line:col: message``, all of them, and hot reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.rules import RuleRepository, check_files
from notifier.rules import loader as loader_module
from notifier.rules.compiled import CompileError, compile_rule
from notifier.rules.loader import Location, RuleError, parse_text
from notifier.tokens import TokenTable
from tests.support import compile_text


def errors_of(text: str, path: str = "r.yaml") -> list[str]:
    """Every error of one file's text, parse and compile, as the CLI prints them."""
    _, errors = compile_text(text, path)
    return [str(e) for e in sorted(errors)]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


FEED = "  - id: {id}\n    on: feed\n    feed: quote\n"


def test_an_error_prints_as_path_line_col_message() -> None:
    """``RuleError`` renders the way editors and CI annotations read it."""
    error = RuleError(Location("rules/a.yaml", 3, 7), "unknown key 'x'")
    assert str(error) == "rules/a.yaml:3:7: unknown key 'x'"


def test_a_valid_rule_knows_its_place_and_the_places_of_its_values() -> None:
    """A parsed rule carries its item's location and each value's, for runtime logs."""
    rules, errors = parse_text(
        "rules:\n  - id: a\n    on: quote\n    pair: {in: SOL, out: USDC}\n    when: price > 1\n",
        "r.yaml",
    )
    assert errors == []
    (rule,) = rules
    assert rule.location == Location("r.yaml", 2, 5)
    assert rule.positions["when"] == Location("r.yaml", 5, 11)


# -- YAML -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - id: a\n    pair: {in: SOL, out: USDC\n",
            "r.yaml:4:1: YAML: expected ',' or '}', but got '<stream end>'",
        ),
        (
            "rules:\n\t- id: a\n",
            "r.yaml:2:1: YAML: found character '\\t' that cannot start any token",
        ),
        (
            "rules:\n  - id: a\n    id: b\n",
            'r.yaml:3:5: YAML: found duplicate key "id" with value "b" (original value: "a")',
        ),
        ("- id: a\n", "r.yaml:1:1: a rule file is a mapping with a 'rules:' list"),
        ("rules: 5\n", "r.yaml:1:8: rules: expected a list of rules"),
        ("rules:\n  - 5\n", "r.yaml:2:5: a rule is a mapping of keys (id, on, …)"),
    ],
)
def test_yaml_and_shape_errors_are_located(text: str, expected: str) -> None:
    """Syntax errors and a wrong document shape point at the offending character."""
    assert errors_of(text) == [expected]


def test_an_empty_file_or_an_empty_rules_list_has_no_rules_and_no_errors() -> None:
    """Empty files are valid: a user may comment every rule out."""
    for text in ("", "# nothing yet\n", "rules: []\n", "rules:\n"):
        assert parse_text(text, "r.yaml") == ([], [])


# -- schema -----------------------------------------------------------------------------------


def test_unknown_keys_are_located_at_the_key_at_every_level() -> None:
    """A typo at the top, in a rule or inside ``pair`` points at the misspelt key."""
    text = (
        "rules:\n"
        "  - id: a\n"
        "    on: quote\n"
        "    pair: {in: SOL, out: USDC, amount: 1, colour: red}\n"
        "    above: 1\n"
        "    bogus: 2\n"
        "  - id: b\n"
        "    on: order\n"
        "    evnts: [order_filled]\n"
        "  - id: c\n"
        "    on: order\n"
        "    for: 30s\n"
        "roles: []\n"
    )
    assert errors_of(text) == [
        "r.yaml:4:43: unknown key 'colour'",
        "r.yaml:6:5: unknown key 'bogus'",
        "r.yaml:9:5: unknown key 'evnts'; did you mean events?",
        "r.yaml:12:5: unknown key 'for'",  # order rules are event rules: no for
        "r.yaml:13:1: unknown key 'roles'; did you mean rules?",
    ]


def test_missing_id_and_on_and_an_unknown_kind_are_located() -> None:
    """A rule without ``id`` or ``on`` points at the rule; a bad kind at its value."""
    text = (
        "rules:\n"
        "  - on: feed\n"
        "    feed: quote\n"
        "  - id: b\n"
        "    feed: quote\n"
        "  - id: c\n"
        "    on: price\n"
    )
    assert errors_of(text) == [
        "r.yaml:2:5: missing required key 'id'",
        "r.yaml:4:5: missing required key 'on' (quote, order, intent or feed)",
        "r.yaml:7:9: on: unknown rule kind 'price'; expected quote, order, intent or feed",
    ]


def test_wrong_types_are_located_at_the_value() -> None:
    """Each value of the wrong type is reported at that value, all in one pass."""
    text = (
        "rules:\n"
        "  - id: a\n"
        "    on: quote\n"
        "    pair: {in: SOL, out: USDC, amount: lots}\n"
        "    above: high\n"
        "    resolved: maybe\n"
        "    severity: loud\n"
        "    notify: {phone: 1}\n"
        "  - id: b\n"
        "    on: order\n"
        "    chain: mainnet\n"
        "  - id: c\n"
        "    on: quote\n"
        "    pair: 5\n"
        "    below: .inf\n"
        "  - id: not valid!\n"
        "    on: feed\n"
        "    feed: prices\n"
    )
    assert errors_of(text) == [
        "r.yaml:4:40: amount: expected a positive number (human units) or a digit string (raw)",
        "r.yaml:5:12: above: Input should be a valid number, unable to parse string as a number",
        "r.yaml:6:15: resolved: Input should be a valid boolean, unable to interpret input",
        "r.yaml:7:15: severity: Input should be 'info', 'success', 'warning' or 'failure'",
        "r.yaml:8:13: notify: Input should be a valid list",
        "r.yaml:11:12: chain: Input should be a valid integer, "
        "unable to parse string as an integer",
        "r.yaml:14:11: pair: expected a mapping",
        "r.yaml:15:12: below: Input should be a finite number",
        "r.yaml:16:9: id: String should match pattern '^[A-Za-z0-9_.-]+$'",
        "r.yaml:18:11: feed: Input should be 'order', 'quote' or 'intent'",
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("for: soon", "for: invalid duration 'soon': use forms like 30s, 15m, 1h30m, 2d"),
        ("for: 5 parsecs", "for: invalid duration '5 parsecs': use forms like 30s, 15m, 1h30m, 2d"),
        ("cooldown: -5", "cooldown: a duration cannot be negative"),
        ("cooldown: 1m-", "cooldown: invalid duration '1m-': use forms like 30s, 15m, 1h30m, 2d"),
        ("repeat: true", "repeat: expected a duration such as 30s, 15m, 1h30m or 2d"),
        ("repeat: .nan", "repeat: a duration must be a finite number of seconds"),
        ("for: 1e400", "for: a duration must be a finite number of seconds"),
    ],
)
def test_bad_durations_are_located_at_the_value(line: str, expected: str) -> None:
    """Durations read ``30s``, ``15m``, ``1h30m``, ``2d``; anything else is located."""
    text = f"rules:\n  - id: a\n    on: feed\n    feed: quote\n    {line}\n"
    column = 5 + line.index(":") + 2
    assert errors_of(text) == [f"r.yaml:5:{column}: {expected}"]


def test_good_durations_are_accepted_in_every_form() -> None:
    """The duration forms of SPEC §4 (and bare seconds) all load."""
    for value in ("30s", "15m", "1h", "1h30m", "2d", "90", "1.5"):
        assert (
            errors_of(f"rules:\n  - id: a\n    on: feed\n    feed: quote\n    for: {value}\n") == []
        )


def test_unknown_order_events_and_intent_statuses_are_located() -> None:
    """An event or status name that does not exist lists the known ones."""
    text = (
        "rules:\n"
        "  - id: a\n"
        "    on: order\n"
        "    events: [order_filled, order_exploded]\n"
        "  - id: b\n"
        "    on: intent\n"
        "    to: [Finished, Done]\n"
    )
    assert errors_of(text) == [
        "r.yaml:4:13: events: unknown order event 'order_exploded'; known: order_created, "
        "order_invalid, order_balance_or_allowance_change, order_filled, "
        "order_filled_partially, order_cancelled",
        "r.yaml:7:9: to: unknown intent status 'Done'; known: Created, Approved, Verified, "
        "Failed, Deposited, Finished, Expired, Refunded",
    ]


def test_intent_ids_that_cannot_be_a_url_segment_are_located() -> None:
    """``intents:`` takes only ids ``validate_intent_id`` takes: ``..`` never reaches a URL."""
    text = "rules:\n  - id: a\n    on: intent\n    intents: [ok-1, '..']\n    to: [Finished]\n"
    (error,) = errors_of(text)
    assert error.startswith("r.yaml:4:14: intents: invalid intent id '..'")


def test_rules_with_contradicting_keys_are_refused() -> None:
    """A quote rule needs exactly one condition; ``to`` excludes ``overdue``; intents need one."""
    text = (
        "rules:\n"
        "  - id: a\n"
        "    on: quote\n"
        "    pair: {in: SOL, out: USDC}\n"
        "    above: 1\n"
        "    below: 2\n"
        "  - id: b\n"
        "    on: quote\n"
        "    pair: {in: SOL, out: USDC}\n"
        "  - id: c\n"
        "    on: intent\n"
        "    to: Finished\n"
        "    overdue: 30m\n"
        "  - id: d\n"
        "    on: intent\n"
    )
    assert errors_of(text) == [
        "r.yaml:2:5: a quote rule needs exactly one of when, above, below (got above, below)",
        "r.yaml:7:5: a quote rule needs exactly one of when, above, below",
        "r.yaml:10:5: 'to' makes an event rule: it cannot be combined with overdue/for",
        "r.yaml:14:5: an intent rule needs 'to', 'overdue' or 'when'",
    ]


# -- expressions and templates ----------------------------------------------------------------


def test_expression_and_template_errors_are_located_all_of_them() -> None:
    """Every bad expression or template of a rule is reported, inside block scalars too."""
    text = (
        "rules:\n"
        "  - id: a\n"
        "    on: quote\n"
        "    pair: {in: SOL, out: USDC}\n"
        "    when: prize > 1\n"
        "    until: price <\n"
        "    title: |\n"
        "      line one\n"
        "      {% macro f() %}{% endmacro %}\n"
        "    body: '{{ request.args }}'\n"
    )
    assert errors_of(text) == [
        "r.yaml:5:11: when: unknown variable(s): prize",
        "r.yaml:6:12: until: unexpected end of expression",
        "r.yaml:9:1: title: macros are not allowed in rule templates",
        "r.yaml:10:11: body: unknown variable(s): request",
    ]


def test_variables_are_checked_per_kind() -> None:
    """``price`` exists for quote rules, not for order rules, and vice versa."""
    text = (
        "rules:\n"
        "  - id: a\n"
        "    on: order\n"
        "    when: price > 1\n"
        "  - id: b\n"
        "    on: quote\n"
        "    pair: {in: SOL, out: USDC}\n"
        "    when: order_hash == 'x'\n"
        "  - id: c\n"
        "    on: intent\n"
        "    when: age > 60 and status == 'Deposited' and swap_metadata.x\n"
        "    title: '{{ rule.id }} {{ transition }} {{ key }} {{ now }} {{ from_amount_lots }}'\n"
    )
    assert errors_of(text) == [
        "r.yaml:4:11: when: unknown variable(s): price",
        "r.yaml:8:11: when: unknown variable(s): order_hash",
    ]


def test_an_amount_needs_known_decimals_or_an_integer() -> None:
    """A fractional amount of a mint whose decimals are unknown cannot become smallest units."""
    mint = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
    pair = f"pair: {{in: {mint}, out: USDC, amount: 1.5}}"
    text = f"rules:\n  - id: a\n    on: quote\n    {pair}\n    above: 1\n"
    (error,) = errors_of(text)
    assert error.startswith(f"r.yaml:4:11: pair.amount: decimals of {mint} are unknown")
    assert errors_of(text.replace("1.5", "1000")) == []


# -- across files -----------------------------------------------------------------------------


def test_duplicate_ids_across_two_files_name_both_places(tmp_path: Path) -> None:
    """The second place of an id is the error; its message names the first."""
    first = write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="dup"))
    second = write(tmp_path, "b.yaml", "rules:\n" + FEED.format(id="x") + FEED.format(id="dup"))
    errors = check_files([first, second], TokenTable())
    assert [str(e) for e in errors] == [
        f"{second}:5:9: duplicate rule id 'dup' (first at {first}:2:9)"
    ]


def test_all_errors_of_all_files_are_reported(tmp_path: Path) -> None:
    """``check`` does not stop at the first error nor at the first bad file."""
    one = write(tmp_path, "one.yaml", "rules:\n  - id: a\n    on: feed\n    feed: nope\n    x: 1\n")
    two = write(tmp_path, "two.yaml", "rules: [\n")
    three = write(
        tmp_path,
        "three.yaml",
        "rules:\n  - id: c\n    on: quote\n    pair: {in: SOL, out: USDC}\n    when: nope\n"
        "  - id: d\n    on: order\n    events: [bad]\n",
    )
    errors = [str(e) for e in check_files([one, two, three], TokenTable())]
    assert errors == [
        f"{one}:4:11: feed: Input should be 'order', 'quote' or 'intent'",
        f"{one}:5:5: unknown key 'x'",
        f"{three}:5:11: when: unknown variable(s): nope",
        f"{three}:8:13: events: unknown order event 'bad'; known: order_created, order_invalid, "
        "order_balance_or_allowance_change, order_filled, order_filled_partially, "
        "order_cancelled",
        f"{two}:2:1: YAML: expected the node content, but found '<stream end>'",
    ]


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    """Undecodable bytes are one error at the first bad byte, not a crash."""
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"rules:\n  - id: \xff\n")
    (error,) = check_files([bad], TokenTable())
    assert error.location == Location(str(bad), 2, 9)
    assert error.message == "not UTF-8 text: invalid start byte"


# -- the repository: hot reload ---------------------------------------------------------------


def test_a_disabled_rule_is_checked_but_not_loaded(tmp_path: Path) -> None:
    """``enabled: false`` keeps a rule in the file, validated, but inactive."""
    write(
        tmp_path,
        "a.yaml",
        "rules:\n" + FEED.format(id="on") + FEED.format(id="off") + "    enabled: false\n",
    )
    result = RuleRepository(tmp_path).reload()
    assert list(result.ruleset.rules) == ["on"]
    assert result.errors == []
    write(
        tmp_path,
        "a.yaml",
        "rules:\n" + FEED.format(id="off") + "    enabled: false\n    when: nope\n",
    )
    assert [e.message for e in RuleRepository(tmp_path).reload().errors] == [
        "when: unknown variable(s): nope"
    ]


def test_a_file_that_breaks_keeps_its_last_good_rules(tmp_path: Path) -> None:
    """A broken save reports its errors while the previous version keeps running."""
    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="a1"))
    write(tmp_path, "b.yaml", "rules:\n" + FEED.format(id="b1"))
    repository = RuleRepository(tmp_path)
    good = repository.reload()
    assert sorted(good.ruleset.rules) == ["a1", "b1"]

    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="a2") + "    oops: 1\n")
    broken = repository.reload()
    assert broken.changed
    assert sorted(broken.ruleset.rules) == ["a1", "b1"]
    assert broken.ruleset.rules["a1"] is good.ruleset.rules["a1"]
    (report,) = [f for f in broken.files if f.path.endswith("a.yaml")]
    assert report.failed
    assert report.rules == ("a1",)
    assert [str(e) for e in broken.errors] == [f"{tmp_path / 'a.yaml'}:5:5: unknown key 'oops'"]


def test_a_fixed_file_replaces_its_last_good_rules(tmp_path: Path) -> None:
    """Once the file loads again its new rules replace the old ones."""
    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="a1"))
    repository = RuleRepository(tmp_path)
    repository.reload()
    write(tmp_path, "a.yaml", "rules: [\n")
    repository.reload()
    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="a2") + FEED.format(id="a3"))
    fixed = repository.reload()
    assert sorted(fixed.ruleset.rules) == ["a2", "a3"]
    assert fixed.errors == []


def test_a_deleted_file_removes_its_rules(tmp_path: Path) -> None:
    """Deleting a file (even a broken one) removes its rules and its errors."""
    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="a1"))
    write(tmp_path, "b.yaml", "rules:\n" + FEED.format(id="b1"))
    repository = RuleRepository(tmp_path)
    repository.reload()
    write(tmp_path, "b.yaml", "rules: [\n")
    repository.reload()
    (tmp_path / "b.yaml").unlink()
    result = repository.reload()
    assert list(result.ruleset.rules) == ["a1"]
    assert result.errors == []
    assert [Path(f.path).name for f in result.files] == ["a.yaml"]


def test_unchanged_files_are_not_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload parses only files whose bytes changed; the others keep their rule objects."""
    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="a1"))
    write(tmp_path, "b.yaml", "rules:\n" + FEED.format(id="b1"))
    parsed: list[str] = []
    real_parse_text = loader_module.parse_text

    def spy(text: str, path: str) -> object:
        parsed.append(Path(path).name)
        return real_parse_text(text, path)

    monkeypatch.setattr(loader_module, "parse_text", spy)
    repository = RuleRepository(tmp_path)
    first = repository.reload()
    assert parsed == ["a.yaml", "b.yaml"]

    again = repository.reload()
    assert not again.changed
    assert again.ruleset is first.ruleset
    assert parsed == ["a.yaml", "b.yaml"]

    write(tmp_path, "b.yaml", "rules:\n" + FEED.format(id="b2"))
    third = repository.reload()
    assert parsed == ["a.yaml", "b.yaml", "b.yaml"]
    assert third.ruleset.rules["a1"] is first.ruleset.rules["a1"]


def test_new_errors_reports_each_error_once(tmp_path: Path) -> None:
    """``new_errors`` (what goes to errors_to) holds an error the first time only."""
    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="a1") + "    oops: 1\n")
    write(tmp_path, "b.yaml", "rules:\n" + FEED.format(id="b1"))
    repository = RuleRepository(tmp_path)
    first = repository.reload()
    assert [e.message for e in first.new_errors] == ["unknown key 'oops'"]
    assert repository.reload().new_errors == ()
    write(tmp_path, "b.yaml", "rules:\n" + FEED.format(id="b2"))
    other_change = repository.reload()
    assert other_change.new_errors == ()
    assert len(other_change.errors) == 1
    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="a1") + "    oops2: 1\n")
    assert [e.message for e in repository.reload().new_errors] == ["unknown key 'oops2'"]


def test_at_first_start_a_duplicate_id_puts_the_later_file_in_error(tmp_path: Path) -> None:
    """With nothing running yet path order decides; the later file, never good, is not loaded."""
    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="dup"))
    write(tmp_path, "b.yaml", "rules:\n" + FEED.format(id="dup") + FEED.format(id="b1"))
    result = RuleRepository(tmp_path).reload()
    assert sorted(result.ruleset.rules) == ["dup"]
    assert result.ruleset.rules["dup"].location.path.endswith("a.yaml")
    (error,) = result.errors
    assert str(error).startswith(f"{tmp_path / 'b.yaml'}:2:9: duplicate rule id 'dup'")
    assert report_of(result, "b.yaml")[2] is False


def test_a_brand_new_broken_file_is_not_loaded_and_its_fix_is_reported(tmp_path: Path) -> None:
    """``loaded`` tells a kept last good version from none; ``fixed`` names a file fixed."""
    repository = RuleRepository(tmp_path)
    write(tmp_path, "a.yaml", "rules: [\n")
    assert report_of(repository.reload(), "a.yaml")[2] is False
    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="a1"))
    fixed = repository.reload()
    assert fixed.fixed == (str(tmp_path / "a.yaml"),)
    assert repository.reload().fixed == ()
    write(tmp_path, "a.yaml", "rules: [\n")
    rules, errors, loaded = report_of(repository.reload(), "a.yaml")
    assert (rules, len(errors), loaded) == (("a1",), 1, True)


# -- duplicate ids: an id belongs to the rule that had it first --------------------------------


def running_from(result: object, rule_id: str) -> str:
    from notifier.rules import ReloadResult

    assert isinstance(result, ReloadResult)
    return Path(result.ruleset.rules[rule_id].location.path).name


def report_of(result: object, name: str) -> tuple[tuple[str, ...], list[str], bool]:
    """(active ids, error messages, loaded) of one file in a reload result."""
    from notifier.rules import ReloadResult

    assert isinstance(result, ReloadResult)
    (report,) = [f for f in result.files if Path(f.path).name == name]
    return report.rules, [str(e) for e in report.errors], report.loaded


@pytest.mark.parametrize("newcomer", ["a.yaml", "z.yaml"])
def test_a_new_file_cannot_take_over_a_running_id(tmp_path: Path, newcomer: str) -> None:
    """Whether it sorts before or after the owner, the new file is the one in error."""
    owner = write(tmp_path, "m.yaml", "rules:\n" + FEED.format(id="x"))
    repository = RuleRepository(tmp_path)
    repository.reload()
    intruder = write(tmp_path, newcomer, "rules:\n" + FEED.format(id="y") + FEED.format(id="x"))
    result = repository.reload()
    assert running_from(result, "x") == "m.yaml"
    assert sorted(result.ruleset.rules) == ["x"]  # a brand-new file in error: nothing runs
    assert report_of(result, "m.yaml") == (("x",), [], True)
    assert report_of(result, newcomer) == (
        (),
        [f"{intruder}:5:9: duplicate rule id 'x' (first at {owner}:2:9)"],
        False,
    )
    assert [str(e) for e in result.new_errors] == report_of(result, newcomer)[1]


def test_an_edited_file_that_brings_a_duplicate_keeps_its_last_good_version(
    tmp_path: Path,
) -> None:
    """Adding a taken id to a running file: that file is in error and keeps its old rules."""
    write(tmp_path, "m.yaml", "rules:\n" + FEED.format(id="x"))
    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="y"))
    repository = RuleRepository(tmp_path)
    before = repository.reload()
    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="y2") + FEED.format(id="x"))
    result = repository.reload()
    assert running_from(result, "x") == "m.yaml"
    assert result.ruleset.rules["y"] is before.ruleset.rules["y"]
    rules, errors, loaded = report_of(result, "a.yaml")
    assert (rules, loaded) == (("y",), True)
    assert errors == [
        f"{tmp_path / 'a.yaml'}:5:9: duplicate rule id 'x' (first at {tmp_path / 'm.yaml'}:2:9)"
    ]
    assert report_of(result, "m.yaml") == (("x",), [], True)


def test_renaming_the_owner_keeps_its_id_and_the_intruder_stays_in_error(tmp_path: Path) -> None:
    """A running rule moved to a file that sorts after the intruder still owns its id."""
    write(tmp_path, "m.yaml", "rules:\n" + FEED.format(id="x"))
    repository = RuleRepository(tmp_path)
    first = repository.reload()
    write(tmp_path, "b.yaml", "rules:\n" + FEED.format(id="x"))
    repository.reload()
    (tmp_path / "m.yaml").rename(tmp_path / "z.yaml")
    result = repository.reload()
    assert running_from(result, "x") == "z.yaml"
    assert result.ruleset.rules["x"].fingerprint == first.ruleset.rules["x"].fingerprint
    assert report_of(result, "b.yaml")[0] == ()
    assert report_of(result, "b.yaml")[1][0].startswith(f"{tmp_path / 'b.yaml'}:2:9: duplicate")
    (tmp_path / "b.yaml").rename(tmp_path / "a.yaml")  # renaming the intruder changes nothing
    renamed = repository.reload()
    assert running_from(renamed, "x") == "z.yaml"
    assert report_of(renamed, "a.yaml")[2] is False


def test_two_new_files_with_one_id_at_one_reload_go_by_path_order(tmp_path: Path) -> None:
    """No running owner: the file that sorts first has the id, the other is in error."""
    write(tmp_path, "m.yaml", "rules:\n" + FEED.format(id="x"))
    repository = RuleRepository(tmp_path)
    repository.reload()
    write(tmp_path, "c.yaml", "rules:\n" + FEED.format(id="n"))
    write(tmp_path, "b.yaml", "rules:\n" + FEED.format(id="n") + FEED.format(id="b2"))
    result = repository.reload()
    assert running_from(result, "n") == "b.yaml"
    assert sorted(result.ruleset.rules) == ["b2", "n", "x"]
    assert report_of(result, "c.yaml")[:1] == ((),)
    assert report_of(result, "c.yaml")[1] == [
        f"{tmp_path / 'c.yaml'}:2:9: duplicate rule id 'n' (first at {tmp_path / 'b.yaml'}:2:9)"
    ]


def test_the_intruder_loads_once_the_owner_gives_the_id_up(tmp_path: Path) -> None:
    """A file in error only for a duplicate loads, unchanged, when the owner drops the id."""
    write(tmp_path, "m.yaml", "rules:\n" + FEED.format(id="x"))
    repository = RuleRepository(tmp_path)
    repository.reload()
    write(tmp_path, "a.yaml", "rules:\n" + FEED.format(id="x") + "    description: mine\n")
    assert repository.reload().errors
    write(tmp_path, "m.yaml", "rules:\n" + FEED.format(id="other"))
    result = repository.reload()
    assert result.errors == []
    assert running_from(result, "x") == "a.yaml"
    assert result.fixed == (str(tmp_path / "a.yaml"),)


# -- tokens: a known symbol for the upstream, or a well-formed address ------------------------

QUOTE = (
    "rules:\n  - id: q\n    on: quote\n    pair: {{in: {token_in}, out: {token_out}}}\n"
    "    above: 1\n"
)
USDC_SYMBOL = "USDC"


def quote_errors(
    token_in: str, token_out: str = USDC_SYMBOL, tokens: TokenTable | None = None
) -> list[str]:
    text = QUOTE.format(token_in=token_in, token_out=token_out)
    parsed, errors = parse_text(text, "r.yaml")
    for item in parsed:
        try:
            compile_rule(item, tokens or TokenTable())
        except CompileError as exc:
            errors += exc.errors
    return [str(e) for e in sorted(errors)]


def test_an_unknown_token_symbol_is_located_with_a_suggestion() -> None:
    """``in: SOLL`` is not taken as a mint: an error at the value, with a did-you-mean."""
    assert quote_errors("SOLL") == [
        "r.yaml:4:16: pair.in: unknown token 'SOLL'; did you mean SOL? A quote token is a Fogo "
        "symbol (SOL, USDC) or a mint address (base58, 32 to 44 characters)"
    ]
    (error,) = quote_errors("SOL", "usdcc")
    assert error.startswith("r.yaml:4:26: pair.out: unknown token 'usdcc'; did you mean USDC?")
    (error,) = quote_errors("XYZ")
    assert error.startswith("r.yaml:4:16: pair.in: unknown token 'XYZ'. A quote token is")


def test_an_evm_token_is_refused_for_a_fogo_quote() -> None:
    """WETH, or any 0x address, is an Ethereum token: quotes are on Fogo."""
    assert quote_errors("WETH") == [
        "r.yaml:4:16: pair.in: WETH is an EVM token (0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2); "
        "quotes are on Fogo: use a Fogo symbol (SOL, USDC) or a mint address"
    ]
    address = '"0x6B175474E89094C44Da98b954EedeAC495271d0F"'  # unquoted, YAML reads a number
    (error,) = quote_errors("SOL", address)
    assert error.startswith("r.yaml:4:26: pair.out: DAI is an EVM token")
    (error,) = quote_errors(f'"0x{"ab" * 20}"')
    assert error.startswith(f"r.yaml:4:16: pair.in: {'0x' + 'ab' * 20} is an EVM address;")


def test_known_symbols_mints_and_configured_tokens_are_accepted() -> None:
    """Symbols in any case, base58 mints of 32 to 44 characters, and ``[tokens.X]`` symbols."""
    bonk = "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263"
    tokens = TokenTable.with_overrides({"BONK": (bonk, 5)})
    assert quote_errors("sol") == []
    assert quote_errors("9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin") == []
    assert quote_errors("BONK", tokens=tokens) == []
    (error,) = quote_errors("BONKK", tokens=tokens)
    assert "did you mean BONK?" in error
    assert quote_errors(f'"{"1" * 31}"')[0].startswith("r.yaml:4:16: pair.in: unknown token")


def test_an_order_maker_must_be_an_address_of_the_rules_chains() -> None:
    """``0x`` and 40 hex digits on EVM chains, base58 on Solana (501); anything else is located."""
    text = "rules:\n  - id: o\n    on: order\n    chain: {chain}\n    maker: {maker}\n"
    evm, sol = f'"0x{"d3" * 20}"', "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
    assert errors_of(text.format(chain=1, maker=evm)) == []
    assert errors_of(text.format(chain=501, maker=sol)) == []
    assert errors_of(text.format(chain="[1, 501]", maker=f"[{evm}, {sol}]")) == []
    assert errors_of(text.format(chain=1, maker='"0xabc"')) == [
        "r.yaml:5:12: maker: '0xabc' is not an address on chain 1: expected 0x and 40 hex digits"
    ]
    assert errors_of(text.format(chain=501, maker=evm)) == [
        f"r.yaml:5:12: maker: '{evm[1:-1]}' is not an address on chain 501: expected base58, "
        "32 to 44 characters"
    ]


def test_unknown_keys_suggest_the_key_meant() -> None:
    """A misspelt key says which known key is close, at every level."""
    text = (
        "rules:\n  - id: a\n    on: quote\n    pair: {in: SOL, out: USDC, amout: 2}\n"
        "    above: 1\n    resolvd: true\n"
    )
    assert errors_of(text) == [
        "r.yaml:4:32: unknown key 'amout'; did you mean amount?",
        "r.yaml:6:5: unknown key 'resolvd'; did you mean resolved?",
    ]
    assert errors_of("rule:\n  - id: a\n") == [
        "r.yaml:1:1: unknown key 'rule'; did you mean rules?"
    ]


def test_an_expression_syntax_error_speaks_only_of_what_the_user_wrote() -> None:
    """A condition's errors name only its own text: no ``}`` or print statement it never had."""
    text = "rules:\n  - id: a\n    on: feed\n    feed: quote\n    when: {}\n"
    assert errors_of(text.format("up and (down_seconds > 2")) == [
        "r.yaml:5:11: when: unexpected end of expression, expected ')'."
    ]
    assert errors_of(text.format("down_seconds >")) == [
        "r.yaml:5:11: when: unexpected end of expression"
    ]
    assert errors_of(text.format("'down_seconds > 1 }} 2'")) == [
        "r.yaml:5:11: when: unexpected '}}' after the expression"
    ]
