"""What the benchmarks feed the daemon: 512 pairs, 1,000 rules, the config and apprise file.

The pairs use synthetic mints, so prices are raw ratios (``amountOut / amount``). The load rules
sit far from any price the simulator quotes (1e-3 … 1e3), so they are evaluated on every quote
and never fire; the two latency rules watch pairs whose quote the benchmark scripts around their
threshold, so the flood's one-unit toggles make them cross a few times a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from notifier.events import PairKey
from notifier.simulator import SIM_KEYS

__all__ = [
    "AMOUNT",
    "LATENCY_ARMED",
    "LATENCY_IDLE",
    "LATENCY_PAIRS",
    "LATENCY_TAG",
    "OUT_MINT",
    "PAIR_COUNT",
    "RULE_COUNT",
    "BenchFiles",
    "bench_pairs",
    "latency_title_slot",
    "reload_rule_yaml",
    "rules_yaml",
    "scale_rule_files",
    "window_rules_yaml",
    "write_files",
]

PAIR_COUNT = 512
RULE_COUNT = 1_000
LATENCY_PAIRS = 2  # the first pairs; each also carries one latency rule
AMOUNT = "1000000"
OUT_MINT = "BenchQuoteMintXut1111111111111111111111111"  # base58: no 0, O, I or l
LATENCY_TAG = "bench"
LATENCY_THRESHOLD = 1.0000005  # between 1000000/1e6 and 1000001/1e6
LATENCY_ARMED = 1_000_000  # amountOut toggling 1000000 <-> 1000001 crosses the threshold
LATENCY_IDLE = 500_000  # toggling 500000 <-> 500001 never does
_TITLE_PREFIX = "bench latency slot "


def bench_pairs() -> list[PairKey]:
    """The 512 subscribed pairs, sorted as the daemon sorts its subscriptions."""
    digits = str.maketrans("0", "z")  # base58 has no 0
    mints = (f"BenchMint{i:03d}in{'1' * 28}".translate(digits) for i in range(512))
    return sorted((mint, OUT_MINT, AMOUNT, True) for mint in mints)


def latency_title_slot(title: str) -> int | None:
    """The slot a latency notification's title carries, or None for any other title."""
    if not title.startswith(_TITLE_PREFIX):
        return None
    tail = title.removeprefix(_TITLE_PREFIX).strip()
    return int(tail) if tail.isdigit() else None


def _pair_yaml(pair: PairKey) -> str:
    return f"{{in: {pair[0]}, out: {pair[1]}, amount: '{pair[2]}'}}"


def rules_yaml(pairs: list[PairKey]) -> str:
    """1,000 quote rules over ``pairs``: one or two per pair, a realistic mix of shapes.

    Per pair: an ``above`` threshold (every tenth a ``when:`` expression instead, evaluated by
    the Jinja sandbox); on all but the last pairs also a ``below`` (every seventh with an
    ``until:`` band). The first ``LATENCY_PAIRS`` pairs carry the latency rules instead of the
    ``below`` one.
    """
    lows = range(LATENCY_PAIRS, RULE_COUNT - len(pairs))  # 486 pairs: 512 + 2 + 486 = 1,000
    lines = ["# notifier bench: generated load rules", "rules:"]
    for i, pair in enumerate(pairs):
        where = _pair_yaml(pair)
        lines += [f"  - id: p{i:03d}-high", "    on: quote", f"    pair: {where}"]
        if i % 10 == 5:
            lines.append("    when: price > 1.0e12 and price_impact_bps < 5000")
        else:
            lines.append("    above: 1.0e12")
        if i < LATENCY_PAIRS:
            lines += [
                f"  - id: latency-{i}",
                "    on: quote",
                f"    pair: {where}",
                f"    above: {LATENCY_THRESHOLD}",
                f"    notify: [{LATENCY_TAG}]",
                f'    title: "{_TITLE_PREFIX}{{{{ slot }}}}"',
                '    body: "{{ now }}"',  # when the engine evaluated the quote
            ]
        elif i in lows:
            lines += [f"  - id: p{i:03d}-low", "    on: quote", f"    pair: {where}"]
            lines.append("    below: 1.0e-12")
            if i % 7 == 3:
                lines.append("    until: price > 1.0e-11")
    return "\n".join(lines) + "\n"


FILE_RULES = 1_000  # rules per file of a ``--rules`` run: a file stays far below 1 MB


def scale_rule_files(pairs: list[PairKey], count: int) -> dict[str, str]:
    """``count`` quote rules spread evenly over ``pairs``, in files of ``FILE_RULES``, plus the
    latency rules in a file of their own.

    The mix of ``rules_yaml``, at every size: ``above`` and ``below`` thresholds, each at its own
    level and all far from any quoted price (so none fires), every seventh ``below`` with an
    ``until:`` band, and every tenth rule a ``when:`` expression instead of a threshold.
    """
    files: dict[str, str] = {}
    for start in range(0, count, FILE_RULES):
        lines = ["# notifier bench: generated load rules", "rules:"]
        for i in range(start, min(count, start + FILE_RULES)):
            pair, level = pairs[i % len(pairs)], 1 + i // len(pairs)
            lines += [f"  - id: s{i:06d}", "    on: quote", f"    pair: {_pair_yaml(pair)}"]
            if i % 10 == 5:
                lines.append(f"    when: price > {level}.0e12 and price_impact_bps < 5000")
            elif i % 2:
                lines.append(f"    above: {level}.0e12")
            else:
                lines.append(f"    below: {level}.0e-15")
                if i % 7 == 3:
                    lines.append(f"    until: price > {level}.0e-14")
        files[f"load-{start // FILE_RULES:03d}.yaml"] = "\n".join(lines) + "\n"
    lines = ["rules:"]
    for i, pair in enumerate(pairs[:LATENCY_PAIRS]):
        lines += [
            f"  - id: latency-{i}",
            "    on: quote",
            f"    pair: {_pair_yaml(pair)}",
            f"    above: {LATENCY_THRESHOLD}",
            f"    notify: [{LATENCY_TAG}]",
            f'    title: "{_TITLE_PREFIX}{{{{ slot }}}}"',
            '    body: "{{ now }}"',
        ]
    files["latency.yaml"] = "\n".join(lines) + "\n"
    return files


WINDOW_RULE_COUNT = 200
_WINDOW_WHENS = (
    "pct_change('{w}') < -99.99",
    "min_price('{w}') < 1.0e-12",
    "avg_price('{w}') > 1.0e12",
)
_WINDOWS = ("1m", "5m", "15m", "1h", "4h", "24h")


def window_rules_yaml(pairs: list[PairKey]) -> str:
    """200 rules reading the quote history, spread over ``pairs``: ``pct_change``,
    ``min_price`` and ``avg_price`` over 1 m to 24 h, never true, so every quote evaluates them."""
    lines = ["# notifier bench: generated window rules", "rules:"]
    for i in range(WINDOW_RULE_COUNT):
        pair = pairs[(i * 5) % len(pairs)]
        when = _WINDOW_WHENS[i % len(_WINDOW_WHENS)].format(w=_WINDOWS[i % len(_WINDOWS)])
        lines += [f"  - id: w{i:03d}", "    on: quote", f"    pair: {_pair_yaml(pair)}"]
        lines.append(f'    when: "{when}"')
    return "\n".join(lines) + "\n"


def reload_rule_yaml(n: int, pair: PairKey) -> str:
    """The hot-reload file's n-th version: one rule with a new id each save."""
    return (
        "rules:\n"
        f"  - id: reload-{n}\n"
        "    on: quote\n"
        f"    pair: {_pair_yaml(pair)}\n"
        "    above: 1.0e12\n"
    )


@dataclass(frozen=True, slots=True)
class BenchFiles:
    """A daemon's config, rules dir and state dir in one temporary directory."""

    root: Path
    config: Path
    rules_dir: Path
    state_dir: Path
    http_port: int

    @property
    def reload_file(self) -> Path:
        return self.rules_dir / "reload.yaml"


def write_files(
    root: Path, *, quotes_url: str, http_port: int, notify_port: int, pairs: list[PairKey]
) -> BenchFiles:
    """Write the daemon's config (quotes only, bench:// channel, no rate limit) under ``root``."""
    rules_dir = root / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    (rules_dir / "load.yaml").write_text(rules_yaml(pairs), encoding="utf-8")
    apprise = root / "apprise.yml"
    apprise.write_text(
        f"urls:\n  - bench://127.0.0.1:{notify_port}:\n      tag: {LATENCY_TAG}\n",
        encoding="utf-8",
    )
    config = root / "notifier.toml"
    config.write_text(
        f'rules_dir = "{rules_dir}"\n'
        f'state_dir = "{root / "state"}"\n'
        f'apprise_config = "{apprise}"\n'
        "errors_to = []\n"
        'log_level = "INFO"\n'
        "\n[http]\n"
        f'listen = "127.0.0.1:{http_port}"\n'
        "\n[fusion]\nenabled = false\n"
        "\n[intents]\nenabled = false\n"
        "\n[quotes]\n"
        f'url = "{quotes_url}"\n'
        f'api_key = "{SIM_KEYS.quotes}"\n'
        # The latency rules fire ~10 times a second: lift the per-tag budget off their path.
        f'\n[delivery.rate_limits.{LATENCY_TAG}]\ncount = 1000000\nper = "1s"\n',
        encoding="utf-8",
    )
    return BenchFiles(root, config, rules_dir, root / "state", http_port)
