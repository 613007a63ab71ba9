"""Talkback wired into a daemon: the facade, the delivery stage, the API token, the HTTP
routes, the timer that ends silences and snoozes, and the status parts. The daemon builds one
``TalkbackService`` after its engine and dispatcher and calls it in a few places."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from notifier.config import ConfigError, HttpSettings, Settings
from notifier.listen import parse_listen
from notifier.logs import register_secret
from notifier.talkback.actions import Talkback
from notifier.talkback.api import TalkbackApi, silence_json
from notifier.talkback.apitoken import ensure_token
from notifier.talkback.endings import AlertBook
from notifier.talkback.gate import Gate
from notifier.talkback.pages import ActionPages
from notifier.talkback.quiet import QuietHours
from notifier.timestamps import rfc3339

if TYPE_CHECKING:
    from aiohttp import web

    from notifier.dispatch import Dispatcher
    from notifier.dispatch.channels import Channels
    from notifier.store import Store

__all__ = ["MAX_TIMER_SLEEP", "TalkbackService"]

log = logging.getLogger("notifier.talkback")

MAX_TIMER_SLEEP = 1.0  # look for ended silences and snoozes at least this often
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def _loopback_listen(listen: str) -> bool:
    try:
        host = parse_listen(listen)[0] if listen.strip() else "127.0.0.1"
    except ConfigError:
        return True  # the HTTP API refuses the address itself
    return host is not None and (host in LOOPBACK_HOSTS or host.startswith("127."))


class TalkbackService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        engine: AlertBook,
        dispatcher: Dispatcher,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._dispatcher = dispatcher
        public_url = settings.http.public_url.strip()
        self.talkback = Talkback(store, engine, dispatcher, clock=clock, public_url=public_url)
        dispatcher.stage = Gate(store, self.talkback, QuietHours(settings.quiet_hours))
        self.token = ensure_token(
            settings.effective_state_dir, settings.http.token.get_secret_value()
        )
        register_secret(self.token)
        self.pages = ActionPages(self.talkback, public_url)
        self.api = TalkbackApi(self, self.token, open_reads=_loopback_listen(settings.http.listen))
        self._wake = asyncio.Event()
        self.talkback.on_change(self._wake.set)
        self.talkback.on_change(dispatcher.wake)  # a silence ended early: re-check the outbox

    def http_settings(self, http: HttpSettings) -> HttpSettings:
        """The HTTP settings with the effective token: control routes need it, loopback too."""
        return http.model_copy(update={"token": SecretStr(self.token)})

    def install(self, app: web.Application) -> None:
        """Register the talkback routes and access rules on the daemon's application."""
        self.api.install(app)

    def channels(self) -> Channels:
        return self._dispatcher.channels

    def wake(self) -> None:
        """Look for ended silences and snoozes now (a test that moved the clock)."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: when a silence or snooze ends, notify what still fires."""
        clock = self.talkback.clock
        while True:
            self._wake.clear()
            try:
                self.talkback.endings()
            except sqlite3.OperationalError as exc:
                self._dispatcher.store_failed(exc)
            except Exception:
                log.exception("ending silences and snoozes failed; trying again")
            next_end = self.talkback.next_end()
            delay = MAX_TIMER_SLEEP
            if next_end is not None:
                delay = min(max(next_end - clock(), 0.0), MAX_TIMER_SLEEP)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    # -- the status document ---------------------------------------------------------------

    def alerts(self, alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The status document's alerts with ``acknowledged``, ``snoozed_until`` (RFC 3339)
        and ``silenced_by``."""
        return [
            {**a, "snoozed_until": rfc3339(a["snoozed_until"])}
            for a in self.talkback.annotate(alerts)
        ]

    def status(self) -> dict[str, Any]:
        """The status document's ``talkback`` part: silences, acknowledgements, snoozes."""
        tb = self.talkback
        return {
            "silences": [silence_json(s) for s in tb.silences()],
            "acknowledged": [
                {"rule": a.rule, "key": a.key, "by": a.by, "at": rfc3339(a.at)} for a in tb.acks()
            ],
            "snoozed": [
                {"rule": s.rule, "key": s.key, "until": rfc3339(s.until), "by": s.by}
                for s in tb.snoozes()
            ],
            "action_links": bool(tb.public_url),
            "withheld": self._withheld(),
        }

    def _withheld(self) -> dict[str, int]:
        """Outbox rows not sent: ``silenced`` (silence, snooze, acknowledged) and ``held``
        (quiet hours); they count among the outbox's ``sent`` and ``digested``."""
        rows = self.store.read(
            "SELECT withheld, COUNT(*) FROM outbox WHERE withheld IS NOT NULL GROUP BY withheld"
        )
        counts = {"silenced": 0, "held": 0}
        counts.update({str(kind): int(count) for kind, count in rows})
        return counts
