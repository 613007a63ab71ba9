"""What the bot needs from the daemon: the talkback facade's actions (SPEC §9 semantics live
there; the bot only calls them) and a one-line summary for ``/status``.

Written as protocols of the facade's signatures (``notifier.talkback.actions.Talkback``), so
the bot can be tested and typed without importing the facade's internals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["ActionError", "BotActions", "DoneView", "EpisodeView", "SilenceView"]


class ActionError(Exception):
    """The bot's own refusal (bad command arguments, a button whose episode is over); the
    message says why, for the person who asked."""


class DoneView(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def key(self) -> str | None: ...


class EpisodeView(Protocol):
    @property
    def rule(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def since(self) -> float | None: ...  # when the firing episode began; None: an event


class MatchersView(Protocol):
    def describe(self) -> str: ...


class SilenceView(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def matchers(self) -> MatchersView: ...

    @property
    def ends_at(self) -> float: ...

    @property
    def comment(self) -> str: ...

    @property
    def created_by(self) -> str: ...


class BotActions(Protocol):
    """Called on the event loop; each call is quick (a store transaction at most). Refusals
    raise an exception of ``errors`` whose message a user can act on."""

    def alerts(self) -> list[dict[str, Any]]:
        """Firing and pending alerts with ``acknowledged``, ``snoozed_until``, ``silenced_by``."""
        ...

    def silences(self) -> Sequence[SilenceView]: ...

    def episode(self, rule: str, key: str) -> EpisodeView | None: ...

    def row_episode(self, row_id: int) -> EpisodeView | None:
        """The episode the outbox row (a message with buttons) speaks of."""
        ...

    def ack(self, rule: str, key: str | None, by: str) -> DoneView: ...

    def snooze(self, rule: str, key: str | None, seconds: float, by: str) -> DoneView: ...

    def add_silence(
        self,
        matchers: Mapping[str, Any],
        *,
        ends_at: float,
        comment: str = "",
        created_by: str,
    ) -> str: ...

    def expire_silence(self, silence_id: str, by: str) -> DoneView: ...
