"""Real notification receivers on loopback for tests: an HTTP endpoint and an SMTP server.

``HttpReceiver`` records what apprise's ``json://`` plugin posts and can answer an error
status for a while, or leave requests hanging. ``SmtpReceiver`` is an aiosmtpd server that
records every message. Both run in the test's event loop (apprise sends from worker threads,
so the loop stays free to serve them) and offer ``wait_until`` instead of sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol, Self

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = [
    "FakeClock",
    "HttpReceiver",
    "Post",
    "ReceivedMail",
    "SmtpReceiver",
    "closed_port_url",
    "running",
    "wait_until",
    "write_apprise_yaml",
]

HOST = "127.0.0.1"


class FakeClock:
    """An injectable wall clock (``now=clock``) that only moves when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


def write_apprise_yaml(path: Path, channels: Sequence[tuple[str, str]]) -> Path:
    """An apprise YAML config at ``path``: one entry per (url, comma-separated tags or "")."""
    lines = ["version: 1", "urls:"]
    for url, tags in channels:
        lines.append(f"  - {url}:" if tags else f"  - {url}")
        if tags:
            lines.append(f"      tag: {tags}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def closed_port_url(path: str = "dead") -> str:
    """A ``json://`` URL to a loopback port nobody listens on: fails fast, every time."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    return f"json://{HOST}:{port}/{path}"


class _Loop(Protocol):
    async def run(self) -> None: ...

    async def drain(self, timeout: float) -> None: ...  # noqa: ASYNC109 - mirrors Dispatcher


@asynccontextmanager
async def running(loop: _Loop, grace: float = 10.0) -> AsyncIterator[asyncio.Task[None]]:
    """Run a delivery loop (``Dispatcher.run``) for the block, then drain it."""
    task = asyncio.create_task(loop.run())
    try:
        yield task
    finally:
        await loop.drain(grace)
        await asyncio.wait_for(task, grace)


async def wait_until(
    predicate: Callable[[], object],
    timeout: float = 15.0,  # noqa: ASYNC109 - a polling helper; callers name their budget
    interval: float = 0.01,
) -> None:
    """Poll ``predicate`` until it holds; fail the test with a clear message after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


class _Recorder:
    """A loopback server whose waiters re-check a condition whenever something arrives."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()

    async def _close(self) -> None:
        """Stop serving: what each receiver does on leaving its ``async with`` block."""
        raise NotImplementedError

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(
        self,
        predicate: Callable[[], object],
        timeout: float = 15.0,  # noqa: ASYNC109 - same signature as the module-level helper
    ) -> None:
        """Wait until ``predicate`` holds, re-checking on each arrival."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)


@dataclass(frozen=True, slots=True)
class Post:
    """One request the HTTP receiver got, and the status it answered."""

    path: str
    payload: dict[str, Any]
    status: int
    authorization: str | None

    @property
    def title(self) -> str:
        return str(self.payload.get("title", ""))

    @property
    def message(self) -> str:
        return str(self.payload.get("message", ""))

    @property
    def type(self) -> str:
        return str(self.payload.get("type", ""))


class HttpReceiver(_Recorder):
    """An aiohttp server on ``127.0.0.1:<free port>`` that apprise's ``json://`` posts to.

    ``fail_status`` (settable) makes it answer that status instead of 200; ``delay``
    (settable) makes it answer that many seconds late (a slow channel: apprise waits only
    if the URL's ``rto`` allows); ``hang_next(n)`` makes the next ``n`` requests hang
    unanswered (and unrecorded in ``posts``) until the receiver closes: a channel that took
    the bytes but never confirmed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[Post] = []
        self.fail_status: int | None = None
        self.delay = 0.0
        self.arrivals = 0  # requests that reached the handler, answered or not
        self.hanging = 0  # requests currently left hanging
        self._hang_budget = 0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def _close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "hook", *, user: str = "", password: str = "") -> str:
        """The apprise URL for this receiver, optionally with basic-auth credentials."""
        auth = f"{user}:{password}@" if user else ""
        return f"json://{auth}{HOST}:{self.port}/{path}"

    def hang_next(self, count: int = 1) -> None:
        """Leave the next ``count`` requests unanswered until the receiver closes."""
        self._hang_budget += count

    @property
    def delivered(self) -> list[Post]:
        """Posts answered with a 2xx status: what a real endpoint would have accepted."""
        return [p for p in self.posts if 200 <= p.status < 300]

    def delivered_titles(self) -> list[str]:
        return [p.title for p in self.delivered]

    async def _handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.arrivals += 1
        if self._hang_budget > 0:
            self._hang_budget -= 1
            self.hanging += 1
            await self._notify()
            await self._closing.wait()
            return web.Response(status=503)
        if self.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.delay)
        status = self.fail_status or 200
        self.posts.append(
            Post(
                path=request.path,
                payload=payload,
                status=status,
                authorization=request.headers.get("Authorization"),
            )
        )
        await self._notify()
        return web.json_response({"ok": status == 200}, status=status)


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage = field(repr=False)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def text(self) -> str:
        """Every text part of the message, decoded."""
        parts = [
            part.get_content()
            for part in self.message.walk()
            if part.get_content_maintype() == "text"
        ]
        return "\n".join(str(p) for p in parts)


class SmtpReceiver(_Recorder):
    """An aiosmtpd server on ``127.0.0.1:<free port>``, plain SMTP without TLS or AUTH."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[ReceivedMail] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="localhost", loop=loop), HOST, 0
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def url(self, to: str = "ops@example.com", sender: str = "notifier@example.com") -> str:
        """The apprise ``mailto://`` URL: plain SMTP on this port (insecure mode, no login)."""
        return f"mailto://{HOST}:{self.port}?from={sender}&to={to}&mode=insecure"

    def subjects(self) -> list[str]:
        return [m.subject for m in self.messages]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(
            ReceivedMail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=parsed,
            )
        )
        await self._notify()
        return "250 Message accepted for delivery"
