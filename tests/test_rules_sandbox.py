"""The expression sandbox: known Jinja2 escapes and resource bombs are refused, fast and small."""

from __future__ import annotations

from typing import Any

import pytest

from notifier.rules.compiled import COMMON_VARIABLES, VARIABLES
from notifier.rules.sandbox import (
    Budget,
    SandboxError,
    compile_expression,
    compile_template,
)

QUOTE_VARIABLES = VARIABLES["quote"] | COMMON_VARIABLES
# The per-operation caps, tested apart from the per-evaluation budget (tests/test_rules_budget.py)
CAPS_ONLY = Budget(cpu=60.0, memory=10**12)


def evaluate(source: str, variables: dict[str, Any] | None = None) -> Any:
    return compile_expression(source, budget=CAPS_ONLY)(variables or {})


def render(source: str, variables: dict[str, Any] | None = None) -> str:
    return compile_template(source, budget=CAPS_ONLY).render(variables or {})


# -- escapes to Python internals --------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "().__class__.__bases__[0].__subclasses__()",
        "''.__class__.__mro__",
        "price.__class__",
        "(1).__add__(1)",
        "[].__class__.__base__.__subclasses__()",
        "'{0.__class__}'.format(1)",
        "'x'|attr('__class__')",
    ],
)
def test_attribute_access_to_internals_is_refused(source: str) -> None:
    """Dunder attributes are unreachable through dots, format fields or filters."""
    with pytest.raises(SandboxError, match=r"unsafe|refused"):
        evaluate(source, {"price": 1.0, "swap_metadata": {}})


@pytest.mark.parametrize(
    "source",
    [
        "{{ self.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
    ],
)
def test_the_template_self_reference_leads_nowhere(source: str) -> None:
    """``self`` exists in every Jinja template but exposes nothing."""
    with pytest.raises(SandboxError, match=r"unsafe|refused"):
        render(source)


@pytest.mark.parametrize(
    "name",
    ["cycler", "lipsum", "joiner", "namespace", "dict", "request", "config", "os", "__builtins__"],
)
def test_globals_beyond_the_documented_ones_do_not_exist(name: str) -> None:
    """``cycler.__init__.__globals__``, ``lipsum.__globals__``, ``request``, ``config`` and
    friends are unknown variables when the rule loads."""
    with pytest.raises(SandboxError, match=f"unknown variable\\(s\\): {name}"):
        compile_template("{{ " + name + ".__init__.__globals__ }}", QUOTE_VARIABLES)
    with pytest.raises(SandboxError, match="is undefined"):
        render("{{ " + name + " }}")


def test_variables_cannot_be_changed_by_a_template() -> None:
    """Lists and dicts handed to templates are read-only (one event's data feeds many rules)."""
    metadata = {"k": "v"}
    for source in (
        "{{ swap_metadata.update({'k': 1}) }}",
        "{{ swap_metadata.pop('k') }}",
        "{{ swap_metadata.clear() }}",
        "{% set l = [1] %}{{ l.append(2) }}",
        "{% set l = [1] %}{{ l.extend(l) }}",
    ):
        with pytest.raises(SandboxError, match="unsafe"):
            render(source, {"swap_metadata": metadata})
    assert metadata == {"k": "v"}


# -- statements refused at load time ----------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "macros are not allowed"),
        ("{% macro f() %}{% endmacro %}{% call f() %}x{% endcall %}", "macros are not allowed"),
        ("{% block b %}{{ self.b() }}{% endblock %}", "template blocks are not allowed"),
        ("{% include 'x' %}", "include are not allowed"),
        ("{% import 'x' as y %}", "import are not allowed"),
        ("{% from 'x' import y %}", "import are not allowed"),
        ("{% extends 'x' %}", "extends are not allowed"),
        ("{% set x %}{{ 1 }}{% endset %}", "set blocks"),
        ("{% filter upper %}x{% endfilter %}", "filter blocks are not allowed"),
        ("{% for i in range(3) recursive %}{{ loop([1]) }}{% endfor %}", "recursive loops"),
        (
            "{% for a in range(9) %}{% for b in range(9) %}{% for c in range(9) %}"
            "{% endfor %}{% endfor %}{% endfor %}",
            "loops may nest 2 deep at most",
        ),
    ],
)
def test_statements_that_could_run_away_are_refused_at_load(source: str, message: str) -> None:
    """Recursion (macros, blocks, recursive loops), buffering blocks, imports and deep loops
    are refused when the rule loads, before any event arrives."""
    with pytest.raises(SandboxError, match=message):
        compile_template(source)


def test_a_load_error_knows_its_line_within_the_template() -> None:
    """The error's line lets the loader point into a multi-line template."""
    with pytest.raises(SandboxError) as info:
        compile_template("line one\nline two\n{% macro f() %}{% endmacro %}")
    assert info.value.line == 3


# -- resource bombs refused at evaluation -----------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.usefixtures("small_memory")
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("range(10**9) | list", "range larger than 1000"),
        ("'x' * 10**8", "repetition larger than 10000"),
        ("10**8 * [1]", "repetition larger than 10000"),
        ("[('y' * 10000)] * 10000", "repetition larger than 10000"),
        ("2 ** (10**8)", "integer larger than"),
        ("((10**64) ** 64) ** 64", "integer larger than"),
        ("(10**100000) * (10**100000)", "integer larger than"),
        ("'{:>999999999}'.format(1)", "format width above 9999"),
        ("'{:.999999999f}'.format(1.5)", "format width above 9999"),
        ("'{:>{w}}'.format(1, w=10**9)", "nested width"),
        ("'%999999999d' % 1", "format width above 9999"),
        ("'%*d' % (10**9, 1)", "'\\*' width"),
        ("'%.*f' % (10**9, 1.5)", "'\\*' width"),
        ("'%999999999d' | format(1)", "format width above 9999"),
        ("'a' | center(10**9)", "width or count above 10000"),
        ("'a' | indent(10**9)", "width or count above 10000"),
        ("'a b' | wordwrap(10**9)", "width or count above 10000"),
        ("[1] | slice(10**8) | list", "width or count above 10000"),
        ("[1] | batch(10**9) | list", "width or count above 10000"),
        ("12345 | round(-10**9)", "width or count above 10000"),
        ("round(12345, -10**9)", "width or count above 10000"),
        ("'a'.center(10**9)", "width or count above 10000"),
        ("'a'.ljust(10**9)", "width or count above 10000"),
        ("'0'.zfill(10**9)", "width or count above 10000"),
        ("('\\t' * 1000).expandtabs(1000)", "larger than 10000"),
        ("('x' * 10000).replace('x', 'yy')", "larger than 10000"),
        ("'x'.replace('', 'y' * 10000)", "larger than 10000"),
        ("('x' * 10000) | replace('x', 'yy')", "larger than 10000"),
        ("('y' * 10000).join('x' * 10000)", "larger than 10000"),
        ("('x' * 10000) | list | join('y' * 10000)", "larger than 10000"),
    ],
)
def test_expressions_that_would_exhaust_memory_or_time_are_refused(
    source: str, message: str
) -> None:
    """Each bomb is refused before it builds its result, with a message saying what was refused."""
    with pytest.raises(SandboxError, match=f"refused: .*{message}"):
        evaluate(source)


@pytest.mark.timeout(10)
@pytest.mark.usefixtures("small_memory")
@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "{% for i in range(1000) %}{% for j in range(1000) %}{{ 'x' * 10000 }}"
            "{% endfor %}{% endfor %}",
            "message larger than 10000",
        ),
        (
            "{% for a in 'x' * 10000 %}{% for b in 'x' * 10000 %}{% endfor %}{% endfor %}",
            "more than 100000 loop iterations",
        ),
        (
            "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
            "more than 100000 loop iterations",
        ),
        ("{% set s = 'x' * 10000 %}{% set s = s ~ s %}{{ s | length }}", "value larger than"),
        ("{% set l = ['x' * 5000] %}{% set l = [l, l, l] %}{{ l }}", "value larger than"),
        ("{% with s = ('x' * 6000) ~ ('x' * 6000) %}{% endwith %}", "value larger than"),
        ("{{ 'x' * 6000 }}{{ 'y' * 6000 }}", "message larger than 10000"),
    ],
)
def test_templates_that_would_exhaust_memory_or_time_are_refused(source: str, message: str) -> None:
    """Loops draw on a step budget, assigned values and the output are size-capped."""
    with pytest.raises(SandboxError, match=f"refused: .*{message}"):
        render(source)


def test_jinja_powers_are_left_associative_so_2_to_10_to_8_is_small() -> None:
    """``2 ** 10**8`` in Jinja is ``(2**10)**8``: a small number, computed at once."""
    assert evaluate("2 ** 10**8") == 2**80


def test_the_budget_is_per_render_not_per_template() -> None:
    """A template near the step budget renders again and again: the budget refills."""
    template = compile_template(
        "{% for i in range(300) %}{% for j in range(300) %}{% endfor %}{% endfor %}ok",
        budget=CAPS_ONLY,
    )
    assert [template.render({}) for _ in range(3)] == ["ok", "ok", "ok"]


# -- legitimate expressions and templates -----------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("price > 200 and hops == 1", True),
        ("price | round(2)", 201.23),
        ("round(price, 1)", 201.2),
        ("'%.2f' | format(price)", "201.23"),
        ("'{:,.1f}'.format(price * 1000)", "201,234.5"),
        ("'%d%%' % 5", "5%"),
        ("previous_price | default('?', true)", "?"),
        ("price is between(200, 210)", True),
        ("price is between(1, 3)", False),
        ("max(price, 300) - min(1, 2)", 299),
        ("log10(1000)", 3.0),
        ("1.0001 ** 365 > 1", True),
        ("10 ** 60 > 0", True),
        (
            "'order_filled_partially' | replace('order_', '') | replace('_', ' ') | title",
            "Filled Partially",
        ),
        ("swap_metadata.get('k', 'd') ~ '/' ~ swap_metadata.x", "d/1"),
        ("range(3) | map('string') | join(', ')", "0, 1, 2"),
        ("('ab' * 3) | length", 6),
        ("'x'.center(7, '-')", "---x---"),
    ],
)
def test_legitimate_expressions_still_work(source: str, expected: Any) -> None:
    """Rounding, formatting, defaults, filters, methods and tests behave as in plain Jinja."""
    variables = {"price": 201.2345, "hops": 1, "previous_price": None, "swap_metadata": {"x": 1}}
    assert compile_expression(source, QUOTE_VARIABLES | {"swap_metadata"})(variables) == expected


def test_legitimate_templates_still_work() -> None:
    """Loops, conditionals, ``set`` and filters render as users expect."""
    template = compile_template(
        "{% set pct = (filled * 100) | round(1) %}"
        "{{ pct }}% of {{ hash[:6] }}"
        "{% for k, v in meta | dictsort %}, {{ k }}={{ v }}{% endfor %}"
        "{% if not up %} (down){% endif %}",
        {"filled", "hash", "meta", "up"},
    )
    variables = {"filled": 0.4567, "hash": "0xabcdef99", "meta": {"b": 2, "a": 1}, "up": False}
    assert template.render(variables) == "45.7% of 0xabcd, a=1, b=2 (down)"


def test_runtime_errors_are_sandbox_errors_with_their_cause() -> None:
    """A division by zero or a missing variable raises ``SandboxError`` naming the cause."""
    with pytest.raises(SandboxError, match="ZeroDivisionError"):
        evaluate("price / 0", {"price": 1.0})
    with pytest.raises(SandboxError, match="'nope' is undefined"):
        evaluate("nope > 1")
    with pytest.raises(SandboxError, match="has no attribute 'missing'"):
        evaluate("swap_metadata.missing", {"swap_metadata": {}})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("0['k'] and price", "UndefinedError: 'int object' has no attribute 'k'"),
        ("price if 0['k'] else 1", "UndefinedError"),
        ("0['__class__'] or price", "refused: access to attribute '__class__'"),
    ],
)
def test_constant_parts_that_fail_at_compile_time_are_load_errors(
    source: str, message: str
) -> None:
    """Jinja evaluates constant parts while it compiles: their errors are ``SandboxError`` at
    load (located by the loader), not exceptions escaping ``notifier check`` or a reload."""
    with pytest.raises(SandboxError, match=message):
        compile_expression(source, QUOTE_VARIABLES)
    with pytest.raises(SandboxError, match=message):
        compile_template("{{ " + source + " }}", QUOTE_VARIABLES)
