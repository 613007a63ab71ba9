"""One member of an HA group: stand by until the lease is free, then run the daemon as the
active member until stopped or until the lease is lost, then stand by again.

Only the active member runs sources, rules and delivery, on a ``Daemon`` built afresh at each
takeover from the shared store (pending ``for:`` timers, firing alerts, unconfirmed sends,
the order cache), so its sources reconnect and reconcile as after a restart. The store's
``Fence`` (``store/fence.py``) makes every transaction check the epoch in the database, and
every read and transaction check the lease's validity on this machine's monotonic clock, so
a member that froze and woke up after a takeover writes and sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from notifier.config import ConfigError, Settings
from notifier.daemon import Daemon, StartupError
from notifier.dispatch.channels import Channels, url_secrets
from notifier.ha.lease import Lease, LeaseState, Member
from notifier.ha.standby import StandbyView
from notifier.http import HttpApi, HttpError
from notifier.logs import register_secret
from notifier.metrics import Metrics
from notifier.rules import RulesDirError
from notifier.store import Fence, StoreError
from notifier.store.postgres import PostgresStore, address, store_password
from notifier.systemd import SystemdNotifier

__all__ = ["Group", "GroupSystemd", "run_group"]

log = logging.getLogger("notifier.ha")

STEP_DOWN_GRACE = 1.0  # seconds a fenced member gives sends already in flight


class GroupSystemd(SystemdNotifier):
    """sd_notify for a member: a step-down shuts a daemon down without STOPPING=1."""

    def __init__(self) -> None:
        super().__init__()
        self.exiting = False

    def stopping(self) -> None:
        if self.exiting:
            super().stopping()


class _HaCollector(Collector):
    def __init__(self, group: Group) -> None:
        self._group = group

    def collect(self) -> Iterable[Metric]:
        group = self._group
        role = GaugeMetricFamily(
            "notifier_ha_role", "1 for this member's role in the HA group", labels=["role"]
        )
        for name in ("active", "standby"):
            role.add_metric([name], 1.0 if group.role == name else 0.0)
        yield role
        age = group.lease_age()
        yield GaugeMetricFamily(
            "notifier_ha_lease_age_seconds",
            "Seconds since the active member's lease was last renewed (-1: no lease)",
            value=-1.0 if age is None else age,
        )
        yield CounterMetricFamily(
            "notifier_ha_takeovers", "Times this member took the lease over", value=group.takeovers
        )


class Group:
    """The member's life: ``prepare``, then ``serve`` (standby ⇄ active) until stopped."""

    def __init__(
        self, settings: Settings, *, record: Path | None = None, grace: float = 10.0
    ) -> None:
        self.settings = settings
        self.grace = grace  # the stop budget for in-flight sends (systemd's stop timeout)
        self.ha = settings.ha
        self.record = record
        self.systemd = GroupSystemd()
        self.me = Member(member=f"{uuid.uuid4().hex[:12]}", url=settings.http.listen or None)
        self.role = "standby"
        self.takeovers = 0
        self.holder: str | None = None
        self.members: list[dict[str, Any]] = []
        self.daemon: Daemon | None = None
        self.fence: Fence | None = None
        self.store: PostgresStore | None = None
        self._lease_seen: LeaseState | None = None
        self._renewed_at: float | None = None  # monotonic, start of the last good renewal
        self._http: HttpApi | None = None
        self._store_problem: str | None = None
        self.metrics = Metrics()
        self._collector = _HaCollector(self)
        self.metrics.registry.register(self._collector)
        self.view = StandbyView(settings, self.metrics, self.status)
        password = store_password()
        if password:
            register_secret(password)
        self._password = password
        self.lease = Lease(
            settings.store,
            address(settings.store),
            password=password,
            lease=self.ha.lease,
            timeout=self.ha.renew_every,
        )

    # -- what status and metrics show --------------------------------------------------------

    def lease_age(self) -> float | None:
        if self.role == "active" and self._renewed_at is not None:
            return round(time.monotonic() - self._renewed_at, 3)
        seen = self._lease_seen
        return None if seen is None else round(max(seen.now - seen.renewed_at, 0.0), 3)

    def status(self) -> dict[str, Any]:
        return {
            "member": self.me.member,
            "role": self.role,
            "epoch": self.fence.epoch if self.fence and self.role == "active" else None,
            "holder": self.holder,
            "lease_age_s": self.lease_age(),
            "takeover_s": self.ha.takeover,
            "takeovers": self.takeovers,
            "store": address(self.settings.store),
            "store_problem": self._store_problem,
            "members": self.members,
        }

    # -- phases ------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Check what the member would run (apprise config, rules), listen, connect."""
        channels = Channels.load(self.settings.apprise_config, url_secrets())
        if channels.errors:
            raise StartupError(f"{self.settings.apprise_config}: " + "; ".join(channels.errors))
        try:
            result = await asyncio.to_thread(self.view.check_rules)
        except RulesDirError as exc:
            raise StartupError(str(exc)) from None
        for error in result.errors:
            log.error("%s", error)
        await self._listen()
        self.systemd.ready()
        self.systemd.status("standby: connecting to the store")

    async def _connect(self, stop: asyncio.Event) -> PostgresStore | None:
        """The shared store, migrated; retried until it answers (or ``stop``)."""
        delay = self.ha.poll_every
        while not stop.is_set():
            try:
                return await asyncio.to_thread(
                    PostgresStore.connect,
                    self.settings.store,
                    password=self._password,
                    idle_timeout=self.ha.lease / 2,
                )
            except StoreError as exc:
                if not exc.retryable:
                    raise StartupError(str(exc)) from None
                self._problem(str(exc))
            await _wait(stop, delay)
            delay = min(delay * 2, self.ha.takeover)
        return None

    async def serve(self, stop: asyncio.Event) -> None:
        self.store = await self._connect(stop)
        if self.store is None:
            return
        log.info(
            "HA member %s on %s: standing by (takeover %ss)",
            self.me.member, address(self.settings.store), self.ha.takeover,
        )  # fmt: skip
        while not stop.is_set():
            epoch, begun = await self._stand_by(stop)
            if epoch is None:
                break
            await self._be_active(stop, epoch, begun)

    async def close(self, grace: float) -> None:
        self.systemd.exiting = True
        self.systemd.stopping()
        await self._unlisten()
        self.me.role, self.me.reason = "stopped", "stopped"
        with contextlib.suppress(sqlite3.Error):
            await asyncio.to_thread(self.lease.heartbeat, self.me)
        self.lease.close()
        if self.store is not None:
            self.store.close()
        log.info("HA member %s stopped", self.me.member)

    def request_reload(self) -> None:
        if self.daemon is not None:
            self.daemon.request_reload()
        else:
            asyncio.get_running_loop().create_task(asyncio.to_thread(self.view.check_rules))

    # -- standby -----------------------------------------------------------------------------

    async def _stand_by(self, stop: asyncio.Event) -> tuple[int | None, float]:
        """Look at the lease every ``poll_every``; take it when it is free or expired."""
        self.role = "standby"
        await self._listen()
        while not stop.is_set():
            begun = time.monotonic()
            try:
                epoch = await asyncio.to_thread(self._standby_round)
            except sqlite3.Error as exc:
                self._problem(str(exc))
            else:
                self._solved()
                if epoch is not None:
                    return epoch, begun
            if self.systemd.watchdog_interval() is not None:  # the active's daemon pings it
                self.systemd.watchdog()
            await _wait(stop, self.ha.poll_every)
        return None, 0.0

    def _standby_round(self) -> int | None:
        """(worker thread) Say we stand by, try the lease, read the group."""
        self.lease.heartbeat(self.me)
        epoch = self.lease.acquire(self.me.member)
        if epoch is None:
            self._lease_seen = self.lease.state()
            self.holder = self._lease_seen.holder if self._lease_seen else None
            self.members = self.lease.members()
            self.systemd.status(f"standby; active member: {self.holder or 'none'}")
        return epoch

    # -- active ------------------------------------------------------------------------------

    async def _be_active(self, stop: asyncio.Event, epoch: int, begun: float) -> None:
        assert self.store is not None
        fence = Fence(self.me.member, epoch, begun + self.ha.valid_for)
        self.fence, self.store.fence = fence, fence
        self._renewed_at, self.holder = begun, self.me.member
        previous = self._lease_seen.holder if self._lease_seen else None
        why = f"the lease of {previous} expired" if previous else "no member held the lease"
        self.takeovers += 1
        self.role = "active"
        self.me.role, self.me.epoch, self.me.reason = "active", epoch, why
        self.me.takeovers = self.takeovers
        log.warning("HA: this member %s is now ACTIVE (epoch %d): %s", self.me.member, epoch, why)
        with contextlib.suppress(sqlite3.Error):  # the group's view says so at once
            await asyncio.to_thread(self._active_round, fence)
        await self._unlisten()
        daemon = Daemon(
            self.settings,
            notifier=self.systemd,
            record=self.record,
            store=self.store,
            ha_status=self.status,
        )
        self.daemon = daemon
        try:
            await daemon.startup()
            daemon.metrics.registry.register(self._collector)
        except BaseException:
            fence.revoke("start-up failed")
            await daemon.shutdown(grace=STEP_DOWN_GRACE)
            self.daemon = None
            await self._release(fence)
            raise
        keeper = asyncio.create_task(self._keep(fence), name="ha:lease")
        runner = asyncio.create_task(daemon.run(stop), name="ha:daemon")
        await asyncio.wait({keeper, runner}, return_when=asyncio.FIRST_COMPLETED)
        if keeper.done() and not keeper.cancelled() and not runner.done():
            reason = keeper.result()
            fence.revoke(reason)
            runner.cancel()
            self.role = "standby"
            self.me.role, self.me.epoch, self.me.reason = "standby", None, reason
            log.error("HA: stepping down to standby (epoch %d): %s", epoch, reason)
            await daemon.shutdown(grace=STEP_DOWN_GRACE)
            self.daemon = None
            return
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        try:
            runner.result()  # a core task that died is raised, as without HA
        finally:
            await daemon.shutdown(grace=self.grace)
            fence.revoke("stopped")
            self.daemon = None
            await self._release(fence)

    async def _keep(self, fence: Fence) -> str:
        """Renew the lease every ``renew_every``; return why it was lost."""
        while True:
            await asyncio.sleep(self.ha.renew_every)
            begun = time.monotonic()
            left = fence.valid_until - begun
            if left <= 0:
                return "the lease lapsed before it could be renewed (this member was frozen?)"
            try:
                ours = await asyncio.wait_for(asyncio.to_thread(self._active_round, fence), left)
            except TimeoutError:
                return "the store did not answer the lease renewal in time"
            except sqlite3.Error as exc:
                self._problem(str(exc))
                if time.monotonic() >= fence.valid_until:
                    return f"the store is unreachable: {exc}"
                continue
            if not ours:
                return "another member took the lease over (this member was frozen or cut off)"
            self._solved()
            fence.extend(begun + self.ha.valid_for)
            self._renewed_at = begun

    def _active_round(self, fence: Fence) -> bool:
        """(worker thread) Renew; say we are active; read the group."""
        if not self.lease.renew(fence.holder, fence.epoch):
            return False
        try:
            self.lease.heartbeat(self.me)
            self.members = self.lease.members()
        except sqlite3.Error:
            pass  # the lease is what matters; the member list is shown as last read
        return True

    async def _release(self, fence: Fence) -> None:
        try:
            await asyncio.to_thread(self.lease.release, fence.holder, fence.epoch)
            log.info("HA: released the lease (epoch %d): a standby takes over", fence.epoch)
        except sqlite3.Error as exc:
            log.warning("HA: could not release the lease (%s): it expires by itself", exc)

    # -- plumbing ----------------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._http is not None or not self.settings.http.listen:
            return
        try:
            self._http = HttpApi(self.view, self.settings.http)
            await self._http.start()
        except (ConfigError, HttpError, OSError) as exc:
            self._http = None
            raise StartupError(str(exc)) from exc

    async def _unlisten(self) -> None:
        if self._http is not None:
            await self._http.stop()
            self._http = None

    def _problem(self, problem: str) -> None:
        if self._store_problem is None:
            log.error("HA: store unreachable (%s); retrying", problem)
        self._store_problem = problem

    def _solved(self) -> None:
        if self._store_problem is not None:
            log.info("HA: the store answers again")
            self._store_problem = None


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return


async def run_group(
    settings: Settings,
    record: Path | None,
    install_signals: Callable[[asyncio.Event, Callable[[], None]], None],
    refusal: Callable[[str], None],
    grace: float,
) -> int:
    """``notifier run`` with a PostgreSQL store: exit status as the CLI's."""
    group = Group(settings, record=record, grace=grace)
    stop = asyncio.Event()
    install_signals(stop, group.request_reload)
    try:
        await group.prepare()
        await group.serve(stop)
    except StartupError as exc:
        refusal(str(exc))
        await group.close(grace)
        return 1 if exc.retryable else 78
    await group.close(grace)
    return 0
