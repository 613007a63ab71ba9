"""``LiveHub``: the dashboard's state as numbered versions, so each open page is sent only what
changed since the version it has, and never more than a few messages a second.

A section (feeds, rules, alerts, pairs) is re-rendered only when its fingerprint changes; the
fast-moving values (each pair's price, each rule's states) travel as small keyed maps instead
of HTML. A page that falls behind skips the versions in between: it gets one message with
everything changed since its own, so a slow page costs nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from jinja2 import Environment

from notifier.dashboard.episodes import EpisodeLog
from notifier.dashboard.sections import MAX_ALERTS, Sections

__all__ = ["IDLE_INTERVAL", "LIVE_INTERVAL", "LiveHub"]

log = logging.getLogger(__name__)

LIVE_INTERVAL = 0.4  # seconds between looks while a page is open: updates land within a second
IDLE_INTERVAL = 2.0  # no page open: only feed up/down times and episodes are kept
SECTIONS = ("feeds", "alerts", "rules", "pairs")
VALUES = ("prices", "states")


class LiveHub:
    """Versions of the rendered sections and the keyed values; ``delta(since)`` is a message."""

    def __init__(self, sections: Sections, env: Environment, episodes: EpisodeLog) -> None:
        self.sections = sections
        self._env = env
        self.episodes = episodes
        self.boot = f"{time.time():.6f}"  # a page from an earlier run gets everything
        self.version = 0
        self.subscribers = 0
        self.refreshed_at = 0.0
        self.render_seconds = 0.0  # the last refresh's cost, for the figures in the docs
        self._html: dict[str, tuple[int, str]] = {}
        self._fingerprints: dict[str, Any] = {}
        self._values: dict[str, dict[str, tuple[int, Any]]] = {name: {} for name in VALUES}
        self._meta: tuple[int, dict[str, Any]] = (0, {})
        self._changed = asyncio.Event()
        self.closed = False
        self.context: Callable[[], dict[str, Any]] = dict  # what every template also sees
        self.observe: Callable[[float], None] = lambda _seconds: None  # each refresh's cost

    # -- building --------------------------------------------------------------------------

    def refresh(self, now: float | None = None) -> None:
        """Look at the daemon once; bump the version when anything shown changed."""
        started = time.perf_counter()
        now = time.time() if now is None else now
        s = self.sections
        version = self.version + 1
        changed = False
        alerts = s.alerts()
        s.note_alerts(alerts, now)
        feeds = s.feeds(now)
        parts: dict[str, tuple[Any, Callable[[], dict[str, Any]]]] = {
            "feeds": (feeds, lambda: {"feeds": feeds}),
            "alerts": (
                alerts,
                lambda: {"alerts": alerts[:MAX_ALERTS], "alert_total": len(alerts)},
            ),
            "rules": (s.rules_fingerprint(), lambda: {"rules": s.rules()}),
            "pairs": (s.pairs_fingerprint(), lambda: {"pairs": s.pairs()}),
        }
        for name, (fingerprint, build) in parts.items():
            if self._fingerprints.get(name) != fingerprint or name not in self._html:
                self._fingerprints[name] = fingerprint
                self._html[name] = (version, self.render(name, build()))
                changed = True
                if name == "pairs":  # prices are keyed by place: send them all again
                    self._values["prices"].clear()
        values: dict[str, dict[str, Any]] = {"prices": s.prices(), "states": s.states(alerts)}
        for name, current in values.items():
            changed |= self._update_values(name, current, version)
        meta = s.meta(now)
        meta["episodes"] = self.episodes.changes
        old = dict(self._meta[1])
        if {k: v for k, v in meta.items() if k != "now"} != {
            k: v for k, v in old.items() if k != "now"
        }:
            self._meta = (version, meta)
            changed = True
        if changed:
            self.version = version
            self._changed.set()
            self._changed = asyncio.Event()
        self.refreshed_at = now
        self.render_seconds = time.perf_counter() - started
        self.observe(self.render_seconds)

    def _update_values(self, name: str, current: dict[str, Any], version: int) -> bool:
        kept = self._values[name]
        changed = False
        for key, value in current.items():
            old = kept.get(key)
            if old is None or old[1] != value:
                kept[key] = (version, value)
                changed = True
        for key in [k for k, (_, v) in kept.items() if k not in current and v is not None]:
            kept[key] = (version, None)  # gone: the page clears it
            changed = True
        return changed

    def render(self, name: str, data: dict[str, Any]) -> str:
        return self._env.get_template(f"{name}.html").render(**self.context(), **data)

    def page_sections(self) -> dict[str, str]:
        """Every section's current HTML (the page's first paint)."""
        return {name: html for name, (_, html) in self._html.items()}

    def meta(self) -> dict[str, Any]:
        return self._meta[1]

    def values(self, name: str) -> dict[str, Any]:
        return {key: value for key, (_, value) in self._values[name].items()}

    def delta(self, since: int, boot: str | None) -> dict[str, Any]:
        """What a page at version ``since`` of run ``boot`` lacks."""
        if boot != self.boot:
            since = -1
        return {
            "v": self.version,
            "boot": self.boot,
            "full": since < 0,
            "html": {n: html for n, (v, html) in self._html.items() if v > since},
            **{
                name: {k: value for k, (v, value) in kept.items() if v > since}
                for name, kept in self._values.items()
            },
            "meta": self._meta[1] if self._meta[0] > since else None,
        }

    # -- serving ---------------------------------------------------------------------------

    async def changes(self, since: int) -> None:
        """Return once the version passes ``since`` (or the hub closes)."""
        while self.version <= since and not self.closed:
            await self._changed.wait()

    def encode(self, message: dict[str, Any]) -> bytes:
        return b"id: %d\ndata: %s\n\n" % (message["v"], orjson.dumps(message))

    async def run(self) -> None:
        """Look at the daemon while pages are open; keep feed times and episodes otherwise."""
        try:
            while True:
                live = self.subscribers > 0
                try:
                    if live:
                        self.refresh()
                    else:
                        now = time.time()
                        self.sections.feeds(now)
                        self.sections.note_alerts(self.sections.alerts(), now)
                except Exception:
                    log.exception("dashboard refresh failed")
                await asyncio.sleep(LIVE_INTERVAL if live else IDLE_INTERVAL)
        finally:
            self.close()

    def close(self) -> None:
        self.closed = True
        self._changed.set()
