"""The ``--rules`` run's table (Markdown, as the README shows it) and its plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from notifier.bench.report import SCALE_TARGETS, Results

__all__ = ["plot_scale", "render_scale"]


def _verdict(point: dict[str, Any], figure: str, value: float) -> str:
    target = SCALE_TARGETS.get(point["rules"], {}).get(figure)
    if target is None:
        return ""
    met = value >= target if figure == "ratio" else value <= target
    return "" if met else " ✗"


def _row(p: dict[str, Any]) -> str:
    b, lat, rel = p["burst"], p["latency"], p["reload"]
    low, high = b["ratio_range"]
    cells = [
        f"{p['rules']:,}",
        f"{b['daemon_frames_per_s'] / 1000:,.0f}k",
        f"{b['bare_frames_per_s'] / 1000:,.0f}k",
        f"{b['ratio']:.2f}{_verdict(p, 'ratio', b['ratio'])} ({low:.2f} to {high:.2f})",
        f"{p['ready_first_s']:.2f} / {p['ready_s']:.2f} s{_verdict(p, 'ready_s', p['ready_s'])}",
        f"{p['rss_mb']:.0f} MB{_verdict(p, 'rss_mb', p['rss_mb'])}",
        f"{rel['p50_ms']:.0f} / {rel['p95_ms']:.0f} ms"
        f"{_verdict(p, 'reload_p95_ms', rel['p95_ms'])}",
        f"{lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} ms"
        f"{_verdict(p, 'latency_p99_ms', lat['p99_ms'])}",
    ]
    return "| " + " | ".join(cells) + " |"


def render_scale(r: Results) -> str:
    """One row per rule count; ✗ marks a figure that misses its issue #15 target."""
    m = r.machine
    lines = [
        f"notifier bench --rules ({r.plan} run): {m['cpu']}, {m['usable_cores']} usable cores, "
        f"{m['implementation']} {m['python']}, "
        f"load average at start {m['loadavg_at_start'][0]:.2f}",
        "",
        "| rules | daemon frames/s | bare frames/s | ratio (range) | READY first / restart "
        "| RSS | reload p50 / p95 | latency p50 / p99 |",
        "|---|---|---|---|---|---|---|---|",
        *(_row(p) for p in r.scale),
        "",
        "burst: 60,000 quote frames written at once, drained by the daemon and the bare reader "
        "in turn (median of the pairs); reload: one file of 1,000 rules changed among the rest; "
        "latency: simulator write -> apprise call at 5,000 frames/s; RSS after those phases.",
    ]
    if r.error:
        lines.append(f"ERROR: {r.error}")
    return "\n".join(lines) + "\n"


def plot_scale(r: Results, path: Path) -> bool:
    """Draw the cost curve to ``path`` (PNG); False when matplotlib is not installed."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 - a bench-only extra, loaded when plotting

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    points = sorted(r.scale, key=lambda p: p["rules"])
    rules = [p["rules"] for p in points]
    panels: list[tuple[str, list[float], dict[int, float], str]] = [
        ("burst-drain ratio daemon / bare", [p["burst"]["ratio"] for p in points], {}, "ratio"),
        ("READY=1 after a restart (s)", [p["ready_s"] for p in points], {}, "ready_s"),
        ("VmRSS (MB)", [p["rss_mb"] for p in points], {}, "rss_mb"),
        ("hot reload of one file, p95 (ms)", [p["reload"]["p95_ms"] for p in points], {},
         "reload_p95_ms"),
        ("latency p99 at 5,000 frames/s (ms)", [p["latency"]["p99_ms"] for p in points], {},
         "latency_p99_ms"),
    ]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    for ax, (title, values, _, figure) in zip(axes, panels, strict=True):
        ax.plot(rules, values, marker="o")
        for count, targets in SCALE_TARGETS.items():
            if figure in targets:
                ax.plot([count], [targets[figure]], marker="_", markersize=18, color="red")
        ax.set_xscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("rules (512 pairs)")
        ax.grid(True, alpha=0.3)
    fig.suptitle("notifier bench --rules: cost against the rule count (red: issue #15 targets)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
