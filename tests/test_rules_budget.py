"""The per-evaluation budget: an expression or template that runs past its CPU or memory budget
is stopped fast with ``BudgetExceeded`` (SPEC §12, issue 11 item 1)."""

from __future__ import annotations

import time

import pytest

from notifier.rules.sandbox import (
    Budget,
    BudgetExceeded,
    SandboxError,
    compile_expression,
    compile_template,
)

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
