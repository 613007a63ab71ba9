"""The per-evaluation budget: a rule that runs past its CPU or memory budget is stopped fast,
disabled with a located error, and the other rules keep running (SPEC §12, issue 11 item 1)."""

from __future__ import annotations

import gc
import time

import pytest

from notifier.events import QuoteEvent
from notifier.notification import Notification
from notifier.rules.engine import DisabledRule, Engine
from notifier.rules.metering import Meter, collector_cpu
from notifier.rules.ruleset import RuleSet
from notifier.rules.sandbox import (
    Budget,
    BudgetExceeded,
    SandboxError,
    compile_expression,
    compile_template,
)
from tests.support import SOL_USDC, compile_text

HELD_AT_MOST = 1.0  # seconds; the budget is 50 ms, this bound only allows for a loaded machine

# The three hostile templates of issue 11, and big-integer work that stays under the caps.
BIG_INTEGERS_IN_A_LOOP = (
    "{% set x = 7 ** 100000 %}{% for i in range(300) %}{% for j in range(300) %}"
    "{% if (x * x) % 10 == 11 %}{% endif %}{% endfor %}{% endfor %}"
)
BIG_INTEGERS_UNDER_THE_CAP = (
    "{% set x = 7 ** 2900 %}{% for i in range(300) %}{% for j in range(300) %}"
    "{% if (x * x) // (x + 1) == 0 %}{% endif %}{% endfor %}{% endfor %}"
)
WIDE_FORMATS_IN_A_LOOP = (
    "{% for i in range(300) %}{% for j in range(300) %}"
    "{% if ('%9999s' % i) == 0 %}{% endif %}{% endfor %}{% endfor %}"
)
HUGE_TO_BYTES = "{{ (1).to_bytes(10**9, 'big') | length }}"


def held(source: str) -> tuple[float, SandboxError]:
    """Render ``source`` under the default budget: seconds it took and the error it raised."""
    template = compile_template(source)
    started = time.perf_counter()
    with pytest.raises(SandboxError) as info:
        template.render({})
    return time.perf_counter() - started, info.value


@pytest.mark.timeout(30)
def test_big_integer_arithmetic_in_a_loop_is_refused_at_the_first_product() -> None:
    """The title that held the loop 39 s: its integers are over the integer cap, so the very
    first power is refused, in microseconds."""
    seconds, error = held(BIG_INTEGERS_IN_A_LOOP)
    assert "integer larger than 16384 bits" in str(error)
    assert seconds < HELD_AT_MOST


@pytest.mark.timeout(30)
def test_big_integer_arithmetic_under_the_cap_is_stopped_by_the_cpu_budget() -> None:
    """90,000 products of 8,000-bit integers would take seconds; the loop checks the CPU
    deadline at every step and stops at the 50 ms budget."""
    seconds, error = held(BIG_INTEGERS_UNDER_THE_CAP)
    assert isinstance(error, BudgetExceeded)
    assert error.resource == "cpu"
    assert "over the budget of 50 ms per evaluation" in str(error)
    assert seconds < HELD_AT_MOST


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("small_memory")
def test_wide_formats_in_a_loop_are_stopped_by_the_memory_budget() -> None:
    """Each ``'%9999s' % i`` builds 10,000 characters; 400 of them are the 32 MB budget."""
    seconds, error = held(WIDE_FORMATS_IN_A_LOOP)
    assert isinstance(error, BudgetExceeded)
    assert error.resource == "memory"
    assert seconds < HELD_AT_MOST


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("small_memory")
def test_a_huge_to_bytes_is_refused_before_it_allocates() -> None:
    """``to_bytes(10**9)`` allocated 2.9 GB before its result was refused; now its length is."""
    seconds, error = held(HUGE_TO_BYTES)
    assert "refused: a result larger than 10000" in str(error)
    assert seconds < HELD_AT_MOST
    with pytest.raises(SandboxError, match="refused: a result larger than 10000"):
        compile_expression("(1).to_bytes(byteorder='big', length=10**9)")({})


@pytest.mark.usefixtures("small_memory")
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("(1).to_bytes(10**9, 'big')", "result larger than 10000"),
        ("(('x' * 9999).encode()).center(10**9)", "width or count above 10000"),
        ("(('x' * 9999).encode()).replace('x'.encode(), 'yy'.encode())", "larger than 10000"),
        ("'%9999s%9999s' % (1, 2)", "format widths adding up"),
        ("'{:9999}{:9999}'.format(1, 2)", "format widths adding up"),
        ("('x' * 6000) + ('y' * 6000)", "result larger than 10000"),
        ("(7 ** 2900) * (7 ** 2900) * (7 ** 2900)", "integer larger than 16384 bits"),
    ],
)
def test_single_operations_that_would_build_large_values_are_refused(
    source: str, message: str
) -> None:
    """Bytes methods, summed format widths, ``+`` and integer products are capped before
    they build their result, like the string operations already were."""
    with pytest.raises(SandboxError, match=f"refused: .*{message}"):
        compile_expression(source)({})


def test_an_expression_on_the_jinja_path_has_a_budget_too() -> None:
    """A condition that builds more than its memory budget is stopped with ``BudgetExceeded``."""
    many = "[" + ", ".join(["'x' * 9999"] * 20) + "] | length > 0"
    expression = compile_expression(many, budget=Budget(memory=1_000_000))
    assert not expression.native
    with pytest.raises(BudgetExceeded, match="1 MB of values"):
        expression({})
    assert compile_expression(many)({}) is True  # 1.6 MB is well within the default budget


def test_the_budget_is_per_evaluation_and_legitimate_templates_fit() -> None:
    """A template using most of its budget renders again and again: each render starts afresh."""
    template = compile_template(
        "{% for i in range(50) %}{% set s = '%999s' % i %}{% endfor %}ok",
        budget=Budget(memory=1_000_000),
    )  # 50 x 8 KB, charged as built and as set: 0.8 MB of the 1 MB
    assert [template.render({}) for _ in range(5)] == ["ok"] * 5


# -- the engine --------------------------------------------------------------------------------


def quote_rules(titles: dict[str, str]) -> str:
    """A rule file: per id, a rule firing above 200 USDC for 1 SOL with that title."""
    lines = ["rules:"]
    for rule_id, title in titles.items():
        lines += [
            f"  - id: {rule_id}",
            "    on: quote",
            "    pair: {in: SOL, out: USDC, amount: 1}",
        ]
        lines += ["    above: 200", f'    title: "{title}"']
    return "\n".join(lines) + "\n"


HOSTILE_NEXT_TO_HEALTHY = quote_rules(
    {"healthy": "SOL at {{ price }}", "hostile": BIG_INTEGERS_UNDER_THE_CAP}
)


class Sink:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def enqueue(self, notification: Notification) -> bool:
        self.sent.append(notification)
        return True


def quote(price: float, slot: int) -> QuoteEvent:
    return QuoteEvent(SOL_USDC, round(price * 1e6), 3, 1, slot, 0.0)


def rig(text: str) -> tuple[Engine, Sink, list[DisabledRule]]:
    rules, errors = compile_text(text, "rules.yaml")
    assert errors == []
    sink, disabled = Sink(), list[DisabledRule]()
    engine = Engine(RuleSet(rules), sink, clock=lambda: 1000.0, on_disabled=disabled.append)
    return engine, sink, disabled


@pytest.mark.timeout(60)
def test_a_rule_over_budget_is_disabled_with_its_location_and_the_others_keep_running() -> None:
    """The hostile title is stopped once, reported once at its ``title:`` key, and no longer
    evaluated; the healthy rule on the same pair fires and resolves as usual."""
    engine, sink, disabled = rig(HOSTILE_NEXT_TO_HEALTHY)
    started = time.perf_counter()
    engine.handle(quote(201.0, 1))
    assert time.perf_counter() - started < HELD_AT_MOST
    assert [n.title for n in sink.sent if n.rule_id == "healthy"] == ["SOL at 201.0"]
    [report] = disabled
    assert report.rule.id == "hostile"
    assert str(report.error).startswith("rules.yaml:11:12: title: rule 'hostile' disabled")
    assert "until its file changes" in str(report.error)
    assert engine.disabled() == [report]
    for slot, price in enumerate((190.0, 205.0, 190.0, 206.0), start=2):
        engine.handle(quote(price, slot))
    assert len(disabled) == 1
    assert [n.rule_id for n in sink.sent] == ["healthy", "hostile", "healthy", "healthy"]
    assert "title failed to render" in sink.sent[1].title  # the firing it stopped in
    assert sink.sent[1].body == sink.sent[1].title  # the body was not rendered after it


def test_a_disabled_rule_keeps_its_state_and_stays_out_until_its_text_is_reloaded() -> None:
    """Swapping in the same rule objects (an unchanged file) keeps the rule disabled; a new
    compilation of the file enables it again."""
    engine, _, disabled = rig(HOSTILE_NEXT_TO_HEALTHY)
    engine.handle(quote(201.0, 1))
    assert [a["rule"] for a in engine.alerts()] == ["healthy", "hostile"]
    engine.swap(RuleSet(engine.rules.rules.values()))
    assert [d.rule.id for d in engine.disabled()] == ["hostile"]
    assert [a["rule"] for a in engine.alerts()] == ["healthy", "hostile"]  # state kept
    rules, _ = compile_text(HOSTILE_NEXT_TO_HEALTHY.replace("above: 200", "above: 300"), "r.yaml")
    engine.swap(RuleSet(rules))
    assert engine.disabled() == []
    engine.handle(quote(301.0, 2))
    assert len(disabled) == 2  # evaluated again, so stopped again: once per text


def test_a_rule_failing_at_run_time_is_reported_at_most_once_an_hour() -> None:
    """A template that raises counts as a failure of that rule: ``on_failed`` hears of it with
    the key's location at once, then not again within the hour, then again after it; the rule
    is not disabled and keeps notifying."""
    rules, errors = compile_text(
        quote_rules({"fragile": "{{ 1 // (price - price) }}"}), "rules.yaml"
    )
    assert errors == []
    now = [1000.0]
    failed: list[tuple[str, str]] = []
    engine = Engine(
        RuleSet(rules),
        Sink(),
        clock=lambda: now[0],
        on_failed=lambda rule, error: failed.append((rule.id, str(error))),
    )
    engine.handle(quote(201.0, 1))
    assert len(failed) == 1
    assert failed[0][0] == "fragile"
    assert failed[0][1].startswith("rules.yaml:6:12: title: ")
    for slot, price in enumerate((190.0, 205.0, 190.0, 206.0), start=2):
        engine.handle(quote(price, slot))
    assert len(failed) == 1  # four more failures within the hour: not reported again
    assert engine.disabled() == []
    now[0] += 3601
    engine.handle(quote(190.0, 6))
    engine.handle(quote(207.0, 7))
    assert len(failed) == 2


def test_a_garbage_collection_during_an_evaluation_is_not_charged_to_it() -> None:
    """A full collection scans every object of the process (hundreds of milliseconds with
    100,000 rules loaded); one that happens to run inside an evaluation is not the rule's
    doing, so it does not count against the rule's budget — its own work still does."""
    alive = [[n] for n in range(600_000)]  # a heap that takes a full collection a while
    budget = Budget(cpu=0.002)
    meter = Meter(budget)
    before = collector_cpu()
    gc.collect()
    assert collector_cpu() - before > budget.cpu  # the collection alone is over the budget
    meter.check()  # not charged

    with pytest.raises(BudgetExceeded):
        _work_until_stopped(meter)  # the evaluation's own work is
    del alive


def _work_until_stopped(meter: Meter) -> None:
    started = time.thread_time()
    while time.thread_time() - started < 5.0:
        sum(range(1000))
        meter.check()
