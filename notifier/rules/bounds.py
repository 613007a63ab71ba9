"""The bounded Jinja environment behind rule expressions and templates.

Jinja's ``ImmutableSandboxedEnvironment`` refuses attribute access to internals and changes to
lists and dicts; on top of that this environment bounds the work one evaluation can do. Single
operations are capped before they build their result: ranges, repetitions, integer sizes, format
widths, padding and ``to_bytes`` lengths, and the size of any value a call, filter, operator or
``set`` produces; an operation over a cap is refused (``SecurityError``). The evaluation as a
whole runs under a ``Meter`` (metering.py): loop iterations, calls, filters and operators
check its CPU deadline and charge the values they build against its memory budget, and one
that runs past either raises ``BudgetExceeded``, which disables the rule.
"""

from __future__ import annotations

import itertools
import math
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from functools import wraps
from typing import Any

from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

from notifier.rules.metering import MAX_STEPS, active_meter, current_meter

__all__ = [
    "ENV",
    "MAX_INT_BITS",
    "MAX_LOOP_DEPTH",
    "MAX_RANGE",
    "MAX_SIZE",
    "bounded_mul",
    "check_format",
    "refuse_above",
]

MAX_RANGE = 1_000
MAX_SIZE = 10_000  # characters of a string, items of a list, 64-bit words of an integer
# Integers stay small enough for every operation on them to take microseconds: a product of
# two 320,000-bit integers took 30 ms and their division 150 ms, one such operation per loop
# step was how a title held the loop for 39 s. 16,384 bits is more than 4,900 digits.
MAX_INT_BITS = 16_384
MAX_LOOP_DEPTH = 2
MAX_WIDTH = 9_999  # format widths and precisions
_WIDTH_FILTERS = frozenset(
    {"center", "indent", "wordwrap", "truncate", "round", "slice", "batch", "filesizeformat"}
)
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _units(value: Any, limit: int = MAX_SIZE) -> int:
    """Deep size of a value (characters, items, 64-bit words), counted up to just past ``limit``."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or not isinstance(item, int | list | tuple | set | dict):
            total += 1
        elif isinstance(item, int):
            total += 1 + item.bit_length() // 64
        elif isinstance(item, dict):
            total += 1
            stack += [*item.keys(), *item.values()]
        else:
            total += 1
            stack += item
    return total


def _check_size(value: Any) -> Any:
    """Refuse a value over ``MAX_SIZE``; charge it to the evaluation's memory budget."""
    units = _units(value)
    if units > MAX_SIZE:
        raise SecurityError(f"a value larger than {MAX_SIZE} characters or items is refused")
    meter = active_meter.get()
    if meter is not None:
        meter.charge(units)
    return value


def refuse_above(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise SecurityError(f"{what} larger than {MAX_SIZE} characters or items is refused")


def _check_widths(values: Iterable[Any]) -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE:
            raise SecurityError(f"a width or count above {MAX_SIZE} is refused")


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise SecurityError(f"range larger than {MAX_RANGE} is refused")
    return rng


def _bounded_round(number: Any, ndigits: int | None = None) -> Any:
    _check_widths((ndigits,))
    return round(number, ndigits)


def check_format(template: Any) -> None:
    """Refuse printf and ``str.format`` widths above ``MAX_WIDTH``, widths taken from args,
    and widths that add up to more than ``MAX_SIZE`` (many fields of 9,999 each)."""
    if not isinstance(template, str):
        return
    total = 0
    for match in _PERCENT_SPEC.finditer(template.replace("%%", "")):
        for number in match.groups():
            if number == "*":
                raise SecurityError("a '*' width in a format string is refused")
            if number is not None:
                total += _width(int(number))
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        fields = []  # not a str.format template; formatting it would fail on its own
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise SecurityError("a nested width in a format string is refused")
        if spec:
            total += sum(_width(int(n)) for n in re.findall(r"\d+", spec))
    refuse_above(total, "format widths adding up to a value")


def _width(number: int) -> int:
    if number > MAX_WIDTH:
        raise SecurityError(f"format width above {MAX_WIDTH} is refused")
    return number


def _as_sized(items: Any) -> Any:
    """An iterable as something with a length, refusing more than ``MAX_SIZE`` items early."""
    if isinstance(items, Sized) or not isinstance(items, Iterable):
        return items
    taken = list(itertools.islice(items, MAX_SIZE + 1))
    refuse_above(len(taken), "a sequence")
    return taken


def _check_method(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Estimate what a string method would build before it builds it; returns its args."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    values = (*args, *kwargs.values())
    if isinstance(owner, int) and name == "to_bytes":
        length = kwargs.get("length", args[0] if args else 1)
        refuse_above(length if isinstance(length, int) else 0, "a result")
    if not isinstance(owner, str | bytes):
        return args
    if name in _PADDING_METHODS or name == "expandtabs":
        _check_widths(values)
    if name == "expandtabs":
        tab = values[0] if values and isinstance(values[0], int) else 8
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        refuse_above(len(owner) + tabs * max(tab, 0), "a result")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], type(owner)):
        refuse_above(_replaced_size(owner, args[0], args[1], *args[2:3]), "a result")
    elif name == "join" and args:
        args = (_as_sized(args[0]), *args[1:])
        if isinstance(args[0], Sized):
            refuse_above(len(owner) * len(args[0]) + _units(args[0]), "a result")
    elif name == "translate" and args and isinstance(args[0], Mapping) and isinstance(owner, str):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        refuse_above(len(owner) * max(longest, 1), "a result")
    return args


def _replaced_size(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    replacement = len(new) if isinstance(new, str | bytes) else len(str(new))
    return len(text) + found * (replacement - len(old))


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 1 if _PassArg.from_obj(func) is not None else 0

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current_meter().check()
        value, rest = (args[skip], args[skip + 1 :]) if len(args) > skip else (None, ())
        if name in _WIDTH_FILTERS:
            _check_widths((*rest, *kwargs.values()))
        if name == "format":
            check_format(value)
        elif name == "replace" and isinstance(value, str) and len(rest) >= 2:
            refuse_above(_replaced_size(value, str(rest[0]), rest[1], *rest[2:3]), "a result")
        elif name == "join" and value is not None:
            value = _as_sized(value)
            args = (*args[:skip], value, *rest)
            separator = rest[0] if rest else kwargs.get("d", "")
            if isinstance(value, Sized):
                refuse_above(len(str(separator)) * len(value) + _units(value), "a result")
        elif name == "indent" and isinstance(value, str):
            width = rest[0] if rest else kwargs.get("width", 4)
            pad = width if isinstance(width, int) else len(str(width))
            refuse_above(len(value) + (value.count("\n") + 1) * max(pad, 0), "a result")
        return _check_size(func(*args, **kwargs))

    return wrapper


def _refuse_bits(bits: float) -> None:
    if bits > MAX_INT_BITS:
        raise SecurityError(f"an integer larger than {MAX_INT_BITS} bits is refused")


def bounded_mul(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        _refuse_bits(left.bit_length() + right.bit_length())
        return left * right
    for seq, count in ((left, right), (right, left)):
        if isinstance(count, int) and not isinstance(seq, int | float):
            refuse_above(_units(seq) * max(count, 0), "a repetition")
    return left * right


def _pow(left: Any, right: Any) -> Any:
    whole = isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
    if whole:
        _refuse_bits(right * math.log2(abs(left)))
    return left**right


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, str | bytes) and isinstance(right, str | bytes):
        refuse_above(len(left) + len(right), "a result")
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        refuse_above(_units(left) + _units(right), "a result")
    return left + right


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """A loop's iterable: each step draws on ``MAX_STEPS`` and checks the CPU deadline."""
    meter = current_meter()
    for item in iterable:
        meter.steps_left -= 1
        if meter.steps_left < 0:
            raise SecurityError(f"more than {MAX_STEPS} loop iterations are refused")
        meter.check()
        yield item


class _Sandbox(ImmutableSandboxedEnvironment):
    # Every operator that can be slow or build a large value; - / // on capped integers are
    # microseconds, but go through here too so a chain of them meets the CPU deadline.
    intercepted_binops = frozenset({"*", "**", "%", "+", "-", "/", "//"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        current_meter().check()
        if operator_ == "*":
            return _check_size(bounded_mul(left, right))
        if operator_ == "**":
            return _pow(left, right)
        if operator_ == "+":
            return _check_size(_add(left, right))
        if operator_ == "%":
            check_format(left)
            return _check_size(super().call_binop(context, operator_, left, right))
        return super().call_binop(context, operator_, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            check_format(value.__self__)
        return wrapped

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        current_meter().check()
        args = _check_method(__obj, args, kwargs)
        return _check_size(super().call(__context, __obj, *args, **kwargs))


def _make_environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.globals = {
        "range": _bounded_range,
        "min": min,
        "max": max,
        "abs": abs,
        "round": _bounded_round,
        "log10": math.log10,
    }
    env.filters = {name: _bounded_filter(name, f) for name, f in env.filters.items()}
    env.filters["_counted"] = _counted
    env.filters["_sized"] = _check_size
    env.tests["between"] = lambda value, low, high: low <= value <= high
    return env


ENV = _make_environment()
