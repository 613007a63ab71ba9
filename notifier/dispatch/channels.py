"""The send stage: one generation of the apprise config and one blocking send through it.

A ``Channels`` object is built from the user's apprise config file (YAML or TEXT, with tags)
and holds the ``Apprise`` objects of that generation. ``send`` (one channel) blocks, so callers
run it on the channel's lane; it reads the ``AppriseResult`` and says whether the channel took
the message, and whether trying again can help.

A ``RowSender`` is a channel of another kind (the Telegram bot's chats): it claims its tags,
which then no longer reach apprise, and sends a whole outbox row itself, on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote, urlsplit

from apprise import (
    Apprise,
    AppriseAsset,
    AppriseConfig,
    AppriseResult,
    AppriseResultStatus,
    NotifyBase,
    NotifyFormat,
    NotifyType,
)

from notifier.dispatch import console as _console  # noqa: F401 - registers console://
from notifier.secrets import Secrets, mask_urls

if TYPE_CHECKING:
    from notifier.dispatch.outbox import OutboxRow

__all__ = [
    "MATCH_ALL",
    "PRIVACY_MASK",
    "SECRET_LOGGERS",
    "Channel",
    "Channels",
    "RowSender",
    "SendResult",
    "private_label",
    "short_label",
    "tag_filter",
    "url_secrets",
]

log = logging.getLogger("notifier.dispatch")

MATCH_ALL = "all"  # apprise's tag filter that reaches every channel, tagged or not
PRIVACY_MASK = "****"  # what apprise's privacy URLs show: masked text reads the same
# apprise logs on one logger; urllib3 logs request lines (paths, queries) at debug.
SECRET_LOGGERS = ("apprise", "urllib3.connectionpool", "notifier.dispatch")
SELECTED_KEPT = 1024  # tag lists whose channels ``Channels.select`` remembers


def url_secrets() -> Secrets:
    """The redactor for the secrets ``Channels`` learns from apprise URLs."""
    return Secrets(mask=PRIVACY_MASK, name="notifier.dispatch.secrets")


_NOTIFY_TYPES: dict[str, NotifyType] = {
    "info": NotifyType.INFO,
    "success": NotifyType.SUCCESS,
    "warning": NotifyType.WARNING,
    "failure": NotifyType.FAILURE,
}


def tag_filter(tags: Sequence[str]) -> str | list[str]:
    """The apprise filter for a notification's tags: any of them; none means every channel.

    apprise's own default for ``notify()`` is ``all`` as well, so an omitted ``notify:``
    reaches tagged and untagged channels alike; services tagged ``always`` get everything.
    """
    return list(tags) if tags else MATCH_ALL


class RowSender(Protocol):
    """A channel that is not an apprise service; ``key`` is stable across restarts and
    ``label`` shows no secret."""

    @property
    def key(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def tags(self) -> tuple[str, ...]: ...

    def submit(self, row: OutboxRow, *, timeout: float) -> asyncio.Future[SendResult]:
        """Start sending ``row`` (running on return); the future never raises and is done
        within ``timeout``."""
        ...


@dataclass(frozen=True, slots=True, eq=False)
class Channel:
    """One apprise service of the config, or a ``RowSender``, as the outbox tracks it."""

    key: str  # hash of the full URL: stable across reloads, stored, never shown
    label: str  # url(privacy=True): the only form of the URL that is logged or shown
    tags: tuple[str, ...]
    service: NotifyBase | None  # None: ``sender`` sends
    sender: RowSender | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one attempt for one notification."""

    ok: bool
    delivered: frozenset[str]  # channel keys that confirmed
    failed: frozenset[str]  # channel keys worth trying again
    retryable: bool
    error: str | None = None  # secret-free summary for logs and the outbox
    uncertain: bool = False  # timed out: the channel may have taken it all the same


def _url(service: NotifyBase, *, privacy: bool = False) -> str:
    return str(service.url(privacy=privacy))  # type: ignore[no-untyped-call]


# apprise's privacy URL keeps these query parameters in the clear: ``+name`` (an HTTP header,
# e.g. Authorization), ``-name`` (a GET parameter, e.g. an API key) and ``:name`` (a payload
# field) of the json/xml/form services.
_USER_PARAMS = ("+", "-", ":")
_MASKED = ("****", "...")  # how apprise writes what it already hid


def private_label(service: NotifyBase) -> tuple[str, set[str]]:
    """The URL ``service`` may be shown by, and the secrets that form hides.

    apprise's ``url(privacy=True)`` masks passwords and the path tokens of services that
    keep a token in the path (Telegram, Discord, Slack…), but shows header and parameter
    values and a lone user (how ``json://TOKEN@host`` carries a key); those are masked here.
    An auth scheme before a header's credentials stays readable (``Bearer%20****``).
    """
    label = _url(service, privacy=True)
    secrets: set[str] = set()
    head, sep, query = label.partition("?")
    parts = urlsplit(head)
    user, at, host = parts.netloc.rpartition("@")
    if at and ":" not in user and not any(m in user for m in _MASKED):
        secrets.add(unquote(user))
        head = head.replace(f"{parts.netloc}", f"{PRIVACY_MASK}@{host}", 1)
    fields: list[str] = []
    for field in query.split("&") if sep else []:
        name, eq, value = field.partition("=")
        if eq and value and unquote(name).startswith(_USER_PARAMS):
            plain = unquote(value)
            secrets.add(plain)
            scheme, space, credentials = plain.partition(" ")
            if space and credentials and scheme.isalpha():
                secrets.add(credentials)
                value = f"{quote(scheme)}%20{PRIVACY_MASK}"
            else:
                value = PRIVACY_MASK
        fields.append(f"{name}{eq}{value}")
    return head + sep + "&".join(fields), secrets


class _LoadErrors(logging.Filter):
    """While this thread parses a config: masks every URL in apprise's log records (some
    echo a raw config line, secrets included) and collects the warnings as errors."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self._thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self._thread:
            return True
        try:
            message = mask_urls(record.getMessage(), PRIVACY_MASK)
        except (TypeError, ValueError):
            return True
        record.msg, record.args = message, None
        if record.levelno >= logging.WARNING:
            self.messages.append(message)
        return True


class Channels:
    """One generation of the apprise config: its services, the ``Apprise`` that selects
    them by tag, and one ``Apprise`` per service that sends."""

    def __init__(
        self,
        services: Sequence[NotifyBase],
        errors: Sequence[str],
        redactor: Secrets,
        senders: Sequence[RowSender] = (),
    ) -> None:
        self.asset = _asset()
        self.apprise = Apprise(asset=self.asset)
        self.errors = list(errors)
        self.redactor = redactor
        self._by_service: dict[int, Channel] = {}
        self._by_apprise_label: dict[str, str] = {}  # apprise's privacy URL -> our label
        self._senders: dict[str, Apprise] = {}  # channel key -> an Apprise of that one service
        self.channels: list[Channel] = []
        for service in services:
            full = _url(service)
            label, hidden = private_label(service)
            password = getattr(service, "password", None)
            if isinstance(password, str):
                hidden.add(password)
            redactor.learn_url(full, label, hidden)
            self._by_apprise_label[_url(service, privacy=True)] = label
            channel = Channel(
                key=hashlib.sha256(full.encode()).hexdigest()[:24],
                label=label,
                tags=tuple(sorted(str(t) for t in service.tags)),
                service=service,
            )
            self.apprise.add(service)
            self._senders[channel.key] = Apprise([service], asset=self.asset)
            self.channels.append(channel)
            self._by_service[id(service)] = channel
        self.apprise_count = len(self.channels)
        self.senders = tuple(senders)  # a reload keeps them
        self._own = [Channel(s.key, s.label, s.tags, None, s) for s in senders]
        self._claimed = frozenset(tag for s in senders for tag in s.tags)
        # What ``select`` found per tag list: a generation never changes its services, and
        # apprise's look-up costs tens of µs on every send's path (several times per row).
        self._selected: dict[tuple[str, ...], tuple[Channel, ...]] = {}
        self.channels += self._own

    @classmethod
    def load(cls, path: Path, redactor: Secrets, senders: Sequence[RowSender] = ()) -> Channels:
        """Parse ``path``; every problem apprise reports lands in ``errors`` (URLs masked,
        without the path: callers prefix it). With ``senders``, apprise may have nothing."""
        if not path.is_file():
            return cls([], [] if senders else ["apprise config not found"], redactor, senders)
        collector = _LoadErrors()
        apprise_log = logging.getLogger("apprise")
        apprise_log.addFilter(collector)
        try:
            config = AppriseConfig(asset=_asset())  # the services it makes carry this asset
            config.add(str(path))
            services = list(config.services())
        finally:
            apprise_log.removeFilter(collector)
        errors = list(collector.messages)
        if not services and not errors and not senders:
            errors.append("no notification URLs found")
        return cls(services, errors, redactor, senders)

    def load_again(self, path: Path) -> Channels:
        """The next generation: ``path`` parsed again, the same senders and redactor."""
        return Channels.load(path, self.redactor, self.senders)

    def replaced_by(self, loaded: Channels, path: Path) -> bool:
        """Whether ``loaded`` (read from ``path``) should replace this generation, said in the
        log: a config that yields no channel at all does not replace a working one."""
        if loaded.apprise_count or not self.apprise_count:
            log.info(
                "apprise config %s: %d channel(s), %d problem(s)",
                path,
                len(loaded),
                len(loaded.errors),
            )
            return True
        log.warning(
            "apprise config %s has no usable channel; keeping the previous %d", path, len(self)
        )
        return False

    def __len__(self) -> int:
        return len(self.channels)

    def select(self, tags: Sequence[str]) -> list[Channel]:
        """The channels apprise would notify for these tags (see ``tag_filter``), less the
        tags a ``RowSender`` claims, which go to it instead."""
        key = tuple(tags)
        found = self._selected.get(key)
        if found is None:
            if len(self._selected) >= SELECTED_KEPT:  # tags typed in chat commands, say
                self._selected.clear()
            found = self._selected[key] = tuple(self._find(key))
        return list(found)

    def _find(self, tags: tuple[str, ...]) -> list[Channel]:
        rest = [t for t in tags if t not in self._claimed]
        own = [c for c in self._own if set(c.tags) & set(tags)]
        if tags and not rest:
            return own
        return [
            self._by_service[id(service)]
            for service in self.apprise.find(tag_filter(rest), resolve=False)
            if id(service) in self._by_service
        ] + own

    def send(
        self, channel: Channel, *, title: str, body: str, severity: str, timeout: float | None
    ) -> SendResult:
        """Send to one channel through an ``Apprise`` holding only its service; blocks, so
        run it in a thread. ``timeout`` bounds the whole call (apprise then answers TIMEOUT,
        but runs the service on a thread of its own to do so); with None apprise calls the
        service on this thread and the caller bounds its wait (the send stage does).

        One call per channel is what lets each channel have its own lane; apprise's tag
        priority escalation across services is not used.
        """
        if not body.strip():
            # apprise services refuse an empty body; the title doubles as the body.
            body = title.strip() or "(no text)"
        sender = self._senders.get(channel.key)
        if sender is None:
            return SendResult(False, frozenset(), frozenset(), False, "channel not loaded")
        result = sender.notify(
            body=body,
            title=title,
            notify_type=_NOTIFY_TYPES.get(severity, NotifyType.INFO),
            body_format=NotifyFormat.TEXT,
            tag=MATCH_ALL,
            timeout=timeout or 0,  # 0: no deadline, no thread hop
        )
        with result:
            return self._read(result, channel)

    def _read(self, result: AppriseResult, channel: Channel) -> SendResult:
        keys = frozenset({channel.key})
        if result.status == AppriseResultStatus.SUCCESS:
            return SendResult(True, keys, frozenset(), False)
        if not result.results:
            # apprise refused the call itself (e.g. a message it cannot prepare): a retry
            # would be refused the same way.
            return SendResult(False, frozenset(), frozenset(), False, self._summary(result))
        if all(r.status == AppriseResultStatus.SUCCESS for r in result.results):
            return SendResult(True, keys, frozenset(), False)  # PARTIAL: a skipped entry
        uncertain = result.status == AppriseResultStatus.TIMEOUT  # it may still arrive
        return SendResult(False, frozenset(), keys, True, self._summary(result), uncertain)

    def _summary(self, result: AppriseResult) -> str:
        parts: list[str] = []
        for service in result.results:
            label = self._by_apprise_label.get(service.url, service.url)
            messages = [e.message for e in service.logs() if e.level in {"WARNING", "ERROR"}]
            detail = f": {messages[-1]}" if messages else ""
            parts.append(f"{service.name} {label} {service.status.name.lower()}{detail}")
        if not parts:
            messages = [e.message for e in result.call_logs()]
            parts.append(f"apprise {result.status.name.lower()}: " + "; ".join(messages[-2:]))
        return self.redactor("; ".join(parts))


def _asset() -> AppriseAsset:
    """apprise's settings for our services: no per-service deadline of apprise's own, since
    with one apprise calls even a single service through its thread pool, a second thread hop
    on every send's path. The send stage bounds the wait instead (``send.late_answer``), and
    the services keep their socket timeouts."""
    return AppriseAsset(service_timeout=0)


def describe(channel: Channel) -> dict[str, Any]:
    """A channel as ``status`` shows it: privacy URL and tags only."""
    return {"url": channel.label, "tags": list(channel.tags)}


def short_label(channel: Channel) -> str:
    """A privacy URL without its query (apprise's own options): short enough to scan."""
    return channel.label.partition("?")[0]
