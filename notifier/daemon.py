"""The daemon: sources → event queue → rule engine → dispatcher, with reload and health.

``Daemon`` knows nothing of signals or exit codes: the CLI turns SIGTERM into ``stop`` and
SIGHUP into ``request_reload()``; tests drive the same object in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from notifier import __version__
from notifier.config import ConfigError, Settings
from notifier.dashboard import Dashboard
from notifier.dispatch import Dispatcher
from notifier.evaluation import consume, run_timers
from notifier.eventqueue import EventQueue
from notifier.heap import release_heap, settle_heap
from notifier.history.book import HistoryBook
from notifier.history.persist import HistoryStore
from notifier.http import HttpApi, HttpError
from notifier.metrics import Metrics
from notifier.recorder import Recorder
from notifier.reloading import RuleReloading
from notifier.rules import ReloadResult, RuleRepository, RulesDirError
from notifier.rules.engine import Engine
from notifier.rules.metering import Budget
from notifier.rules.state import StateStore
from notifier.sources import SOURCES, Source, SourceContext, load_plugins
from notifier.statusdoc import alerts_json, feed_json, intents_json, pairs_json, rules_json
from notifier.store import Store, StoreError
from notifier.systemd import SystemdNotifier
from notifier.talkback.apitoken import TokenFileError, ensure_token
from notifier.talkback.service import TalkbackService
from notifier.telegram import Telegram

__all__ = ["Daemon", "StartupError", "running"]

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The daemon cannot start: bad apprise config, unusable listen address, unusable state.

    The message starts with the path or key at fault. ``retryable`` is True when starting
    again may help (a full disk), False when someone must act first (exit code 78).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class Daemon(RuleReloading):
    """One running notifier: ``startup``, ``run`` until stopped, ``shutdown``."""

    def __init__(
        self,
        settings: Settings,
        *,
        notifier: SystemdNotifier | None = None,
        record: Path | None = None,
        clock: Callable[[], float] = time.time,  # delivery and talkback (tests move it)
        store: Store | None = None,
        ha_status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._given_store = store  # an HA group's shared store: the group closes it
        self._ha_status = ha_status
        self.ha_role = "active" if ha_status else None  # /readyz and status say it
        self.metrics = Metrics()
        self._record = Recorder(record) if record else None
        self.history = HistoryBook(settings.history.max_window)
        self.queue = EventQueue(self._record, self.history)
        self.systemd = notifier or SystemdNotifier()
        self.started_at = time.time()
        self.sources: list[Source] = []
        self.reloads = 0
        self.last_reload: ReloadResult | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._reload_requested = asyncio.Event()
        self._reloading = asyncio.Lock()
        self._timer_changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._watch_stop = asyncio.Event()
        self.watching = asyncio.Event()  # set once file changes are being watched
        self.rules_dir_error: str | None = None  # the rules dir is gone: the last rules run on
        self.http: HttpApi | None = None
        self._announced = False  # READY=1 sent: STATUS= from then on, never a half-built one

    # -- phases ----------------------------------------------------------------------------

    async def startup(self) -> None:
        s = self.settings
        try:
            self.store = self._given_store or Store.open(s.effective_state_dir)
        except StoreError as exc:  # names the path; a damaged file was already moved aside
            raise StartupError(str(exc), retryable=exc.retryable) from None
        try:  # before anything runs: a refusal is one line
            ensure_token(s.effective_state_dir, s.http.token.get_secret_value())
        except TokenFileError as exc:  # names the file, never the token
            raise StartupError(str(exc)) from None
        self.tokens = s.token_table()
        budget = Budget(cpu=s.limits.eval_cpu, memory=int(s.limits.eval_memory))
        self.repository = RuleRepository(
            s.rules_dir,
            self.tokens,
            budget,
            max_bytes=s.rules_max_bytes,
            max_window=s.history.max_window,
        )
        self.telegram = Telegram(s.telegram)  # its chats are channels; it listens from run()
        bots = self.telegram.senders
        self.dispatcher = Dispatcher(self.store, s, self.metrics, now=self.clock, senders=bots)
        channel_errors = self.dispatcher.channel_errors  # loaded by its constructor
        if channel_errors:
            raise StartupError(f"{s.apprise_config}: " + "; ".join(channel_errors))
        try:
            first = await asyncio.to_thread(self.repository.reload)
        except RulesDirError as exc:
            raise StartupError(str(exc)) from None
        self.engine = Engine(
            first.ruleset,
            self.dispatcher,
            tokens=self.tokens,
            store=StateStore(self.store),
            metrics=self.metrics,
            on_disabled=self._rule_disabled,
            on_failed=self._rule_failed,
            history=self.history,
        )
        try:
            self._history_store = HistoryStore(self.store.history())
        except StoreError as exc:  # history.db beside the store: names the path
            raise StartupError(str(exc), retryable=exc.retryable) from None
        self._history_store.load(self.history)
        self._after_reload(first, time.perf_counter())
        tb = self.talkback = TalkbackService(
            self.store, s, self.engine, self.dispatcher, clock=self.clock
        )
        dash = self.dashboard = Dashboard(self, token=tb.token, open_reads=tb.api.open_reads)
        self._create_sources(first)
        if s.http.listen:
            try:
                self.http = HttpApi(self, tb.http_settings(s.http), [tb.install, dash.install])
                await self.http.start()
            except (ConfigError, HttpError, OSError) as exc:  # each message names http.listen
                raise StartupError(str(exc)) from exc
        self._spawn_tasks(tb)
        self._announced = True
        self.systemd.ready()
        asyncio.get_running_loop().call_soon(settle_heap)  # right after READY, once
        self._publish_status()
        log.info(
            "notifier %s started: %d rules, sources %s, http %s",
            __version__,
            len(first.ruleset.rules),
            ", ".join(src.name for src in self.sources) or "none",
            self.http.bound_url if self.http else "off",
        )

    def _create_sources(self, first: ReloadResult) -> None:
        """Every registered source (built-in and plugins) the config enables."""
        s = self.settings
        context = SourceContext(settings=s, sink=self.queue, metrics=self.metrics, store=self.store)
        table = dict(SOURCES)
        for problem in load_plugins(table):
            log.error("source plugin: %s", problem)
        for kind in table.values():
            source = kind.create(context)
            if source is not None:
                source.set_interest(self._interest(first))
                self.sources.append(source)

    def _spawn_tasks(self, tb: TalkbackService) -> None:
        """The daemon's tasks; those named ``source:…`` may fail without stopping it."""
        spawn = self._spawn
        spawn(self.dispatcher.run(), "dispatcher")
        failed, changed = self.dispatcher.store_failed, self._timer_changed
        starts = self.dispatcher.start_committed  # after each batch: its decisions' sends
        spawn(
            consume(self.queue, self.engine, failed, self._idle, changed, after_batch=starts),
            "engine",
        )
        spawn(run_timers(self.engine, failed, changed), "timers")
        spawn(self._reloader(), "reloader")
        spawn(self._watch(), "watcher")
        spawn(self._health(), "health")
        spawn(self._history_store.keep_saved(self.history), "history")
        spawn(tb.run(), "talkback")
        spawn(self.telegram.run(tb.talkback, self.summary), "source:telegram")
        for source in self.sources:
            spawn(source.run(), f"source:{source.name}")

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set or a core task dies."""
        stopper = asyncio.create_task(stop.wait())
        core = [t for t in self._tasks if not t.get_name().startswith("source:")]
        done, _ = await asyncio.wait([stopper, *core], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception():
                raise RuntimeError(f"{task.get_name()} failed") from task.exception()

    async def shutdown(self, grace: float = 10.0) -> None:
        """STOPPING, stop intake, drain deliveries within ``grace``, cancel the rest."""
        self.systemd.stopping()
        self._watch_stop.set()
        intake = [t for t in self._tasks if t.get_name() != "dispatcher"]
        for task in intake:
            task.cancel()
        await asyncio.gather(*intake, return_exceptions=True)
        if hasattr(self, "_history_store"):
            self._history_store.save_quietly(self.history)
        if hasattr(self, "dispatcher"):
            try:
                await self.dispatcher.drain(grace)
            except Exception:
                log.exception("delivery drain failed")
            await self.telegram.close()  # after the drain: the bot's last sends need it
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.stop()
        if self._record is not None:
            self._record.close()
        if hasattr(self, "store") and self._given_store is None:
            self.store.close()
        release_heap()
        if self._announced:  # a refused start-up is one line, written by the CLI
            log.info("notifier stopped")

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    # -- evaluation ------------------------------------------------------------------------

    async def settled(self) -> None:
        """Return once every event emitted so far has been evaluated (a test barrier)."""
        while True:
            await self._idle.wait()
            if not len(self.queue):
                return
            await asyncio.sleep(0)  # the consumer has not woken up for the new events yet

    async def dispatcher_idle(self) -> None:
        """Return once evaluation settled and nothing due is left in the outbox."""
        await self.settled()
        await self.dispatcher.wait_settled()

    # -- health ----------------------------------------------------------------------------

    async def _health(self) -> None:
        interval = self.systemd.watchdog_interval()
        period = min(interval or 5.0, 5.0)
        while True:
            started = time.monotonic()
            await asyncio.sleep(period)
            lag = time.monotonic() - started - period
            self.metrics.loop_lag.set(max(lag, 0.0))
            self.metrics.outbox_pending.set(self.dispatcher.pending_count())
            core_alive = all(
                not t.done() for t in self._tasks if not t.get_name().startswith("source:")
            )
            if interval is not None and core_alive:
                self.systemd.watchdog()
            self._publish_status()

    def _publish_status(self) -> None:
        if self._announced:
            self.systemd.status(self.summary())

    def summary(self) -> str:
        up = sum(1 for s in self.sources if s.status().up)
        rules = len(self.engine.rules.rules) if hasattr(self, "engine") else 0
        counts = self.engine.alert_counts() if hasattr(self, "engine") else {}
        failed = sum(1 for f in self.last_reload.files if f.failed) if self.last_reload else 0
        disabled = len(self.engine.disabled()) if hasattr(self, "engine") else 0
        text = f"feeds {up}/{len(self.sources)} up, {rules} rules, {counts.get('firing', 0)} firing"
        if counts.get("pending"):
            text += f", {counts['pending']} pending"
        text += f", {disabled} rule(s) disabled" if disabled else ""
        text += f", {failed} rule file(s) with errors" if failed else ""
        return text + (", rules dir missing" if self.rules_dir_error else "")

    # -- DaemonView (HTTP API) -------------------------------------------------------------

    def feeds_ready(self) -> tuple[bool, list[str]]:
        down = [s.name for s in self.sources if not s.status().up]
        if (problem := self.dispatcher.store_problem) is not None:
            down.append(problem)
        return not down, down

    def status(self) -> dict[str, Any]:
        files = self.last_reload.files if self.last_reload else ()
        disabled: dict[str, list[str]] = {}
        for rule in self.engine.disabled():  # over budget: among its file's errors
            disabled.setdefault(rule.error.location.path, []).append(str(rule.error))
        return {
            "version": __version__,
            "uptime_s": round(time.time() - self.started_at, 1),
            "ready": self.feeds_ready()[0],
            "summary": self.summary(),
            "feeds": [feed_json(src.status()) for src in self.sources],
            "rules": rules_json(self.engine.rules, self.settings.rules_dir, files, disabled)
            | {"dir_error": self.rules_dir_error},
            "alerts": self.alerts(),
            "alert_counts": self.engine.alert_counts(),
            "pairs": pairs_json(self.history, self.engine.rules.windows),
            "outbox": self.dispatcher.stats(),
            "talkback": self.talkback.status(),
            **intents_json(self._poller()),
            **({"ha": self._ha_status()} if self._ha_status else {}),
        }

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        """Firing and pending alerts (or only those in ``state``), as the status document has
        them."""
        return self.talkback.alerts(alerts_json(self.engine.alerts(), state))

    def _poller(self) -> Any:
        for source in self.sources:
            if source.name == "intent":
                return source
        return None

    def track_intent(self, intent_id: str, label: str | None) -> bool:
        poller = self._poller()
        if poller is None:
            raise RuntimeError("the intent feed is disabled")
        return bool(poller.track(intent_id, label))

    def untrack_intent(self, intent_id: str) -> bool:
        poller = self._poller()
        if poller is None:
            raise RuntimeError("the intent feed is disabled")
        return bool(poller.untrack(intent_id))


@contextlib.asynccontextmanager
async def running(settings: Settings, **kwargs: Any) -> AsyncIterator[Daemon]:
    """Start a daemon in-process for tests and the demo; shut it down on exit."""
    daemon = Daemon(settings, **kwargs)
    await daemon.startup()
    try:
        yield daemon
    finally:
        await daemon.shutdown(grace=5.0)
