"""Rule budget figures: ``python -m notifier.bench.budget [--rules N] [--quotes M]``.

Prints (1) the cost per quote of ``--rules`` quote rules on one pair, evaluated by a real
``Engine`` over ``--quotes`` quotes in-process: with native ``when:`` conditions, and with
conditions on the Jinja path (a tenth of the quotes); (2) how long each hostile template of
issue 11 holds the thread that renders it (the event loop, in the daemon) and the peak RSS of
a child process rendering it once. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

from notifier.events import QuoteEvent
from notifier.notification import Notification
from notifier.rules.compiled import Rule, compile_rule
from notifier.rules.engine import Engine
from notifier.rules.loader import parse_text
from notifier.rules.ruleset import RuleSet
from notifier.tokens import TokenTable

__all__ = ["HOSTILE", "main"]

SOL = "So11111111111111111111111111111111111111112"
USDC = "uSd2czE61Evaf76RNbq4KPpXnkiL3irdzgLFUMe3NoG"

HOSTILE = {
    "big-integer arithmetic in a loop": "{% set x = 7 ** 100000 %}{% for i in range(300) %}"
    "{% for j in range(300) %}{% if (x * x) % 10 == 11 %}{% endif %}{% endfor %}{% endfor %}",
    "big-integer arithmetic in a loop, within the integer cap": "{% set x = 7 ** 2900 %}"
    "{% for i in range(300) %}{% for j in range(300) %}{% if (x * x) // (x + 1) == 0 %}{% endif %}"
    "{% endfor %}{% endfor %}",
    "'%9999s' formatting in a loop": "{% for i in range(300) %}{% for j in range(300) %}"
    "{% if ('%9999s' % i) == 0 %}{% endif %}{% endfor %}{% endfor %}",
    "one to_bytes": "{{ (1).to_bytes(10**9, 'big') | length }}",
}


class _Discard:
    def enqueue(self, notification: Notification) -> bool:
        return True


NATIVE_WHEN = "price > {n} and hops <= 3 or price_impact_bps > {n}"
JINJA_WHEN = "(price | round(2)) > {n} and hops <= 3"


def _rules(count: int, when: str) -> list[Rule]:
    lines = ["rules:"]
    for i in range(count):
        lines += [
            f"  - id: r{i}",
            "    on: quote",
            "    pair: {in: SOL, out: USDC, amount: 1}",
            f"    when: {when.format(n=1000 + i)}",
        ]
    parsed, errors = parse_text("\n".join(lines) + "\n", "bench.yaml")
    assert not errors, errors
    return [compile_rule(item, TokenTable()) for item in parsed]


def us_per_quote(rules: int, quotes: int, when: str = NATIVE_WHEN) -> float:
    """CPU microseconds per quote for ``rules`` rules with ``when`` conditions on one pair."""
    ruleset = RuleSet(_rules(rules, when))
    engine = Engine(ruleset, _Discard())
    pair = next(iter(ruleset.by_pair))
    events = [QuoteEvent(pair, 150_000_000 + i % 1000, 3, 1, i, 0.0) for i in range(quotes)]
    started = time.thread_time()  # CPU time: other processes on a busy machine do not count
    for event in events:
        engine.handle(event)
    return (time.thread_time() - started) / quotes * 1e6


def _render_once(source: str) -> None:
    from notifier.rules.sandbox import SandboxError, compile_template  # noqa: PLC0415

    started = time.perf_counter()
    try:
        compile_template(source).render({})
        outcome = "rendered"
    except SandboxError as exc:
        outcome = str(exc)[:90]
    held = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{held:.3f}|{peak}|{outcome}")


def hostile(timeout: float) -> None:
    for name, source in HOSTILE.items():
        cmd = [sys.executable, "-m", "notifier.bench.budget", "--render", source]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)  # noqa: S603
        except subprocess.TimeoutExpired:
            print(f"  {name}: held the loop > {timeout:.0f} s (killed)")
            continue
        held, peak, outcome = done.stdout.strip().split("|", 2)
        print(f"  {name}: held the loop {float(held) * 1000:.0f} ms, peak RSS {peak} MB: {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--quotes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--timeout", type=float, default=60.0, help="per hostile template")
    parser.add_argument("--render", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render:
        _render_once(args.render)
        return
    runs = f"{args.rules} rules, {args.quotes} quotes, best of {args.repeat}"
    for name, when, quotes in (
        ("native path", NATIVE_WHEN, args.quotes),
        ("jinja path", JINJA_WHEN, args.quotes // 10),
    ):
        best = min(us_per_quote(args.rules, quotes, when) for _ in range(args.repeat))
        print(f"{name}: {best:.1f} µs per quote ({runs.replace(str(args.quotes), str(quotes))})")
    print("hostile templates:")
    hostile(args.timeout)


if __name__ == "__main__":
    main()
