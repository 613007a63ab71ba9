"""What the bot hears: button presses and commands, obeyed only from ``telegram.chat_ids``.

A press is checked (the chat, the button's signature, the alert episode of the outbox row it
names, through ``BotActions.row_episode``), applied
through ``BotActions``, answered (``answerCallbackQuery``) and written into the message
(``editMessageText``: who did what, when). Anything from another chat changes nothing: a
press is answered "not allowed", a command gets no reply, and each such chat is logged once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from notifier.talkback.model import TalkbackError
from notifier.telegram.actions import ActionError, BotActions, EpisodeView
from notifier.telegram.api import BotApi, BotApiError
from notifier.telegram.buttons import Action, ButtonSigner, without
from notifier.telegram.commands import Commands
from notifier.telegram.messages import appended, who

__all__ = ["CALL_TIMEOUT", "Incoming"]

log = logging.getLogger("notifier.telegram")

CALL_TIMEOUT = 10.0  # an answer or an edit: the person is waiting
SNOOZE = 3600.0
SILENCE = 86400.0
MAX_STRANGERS = 1000  # chats remembered as logged; past this the set starts over
_DONE: dict[Action, str] = {
    "ack": "✔️ Acknowledged",
    "snooze": "💤 Snoozed for 1h",
    "silence": "🔕 Rule silenced for 24h",
}


class Incoming:
    """Handles one update at a time (``handle``); the poller feeds it."""

    def __init__(
        self,
        api: BotApi,
        signer: ButtonSigner,
        actions: BotActions,
        chat_ids: Iterable[int],
        *,
        summary: Callable[[], str],
        now: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._signer = signer
        self._actions = actions
        self._allowed = frozenset(chat_ids)
        self._now = now
        self._strangers: set[int] = set()
        self.commands = Commands(actions, summary, now=now)
        self.username = ""  # the bot's own, from getMe: "/cmd@other_bot" is not for it

    async def handle(self, update: Mapping[str, Any]) -> None:
        callback = update.get("callback_query")
        message = update.get("message")
        if isinstance(callback, dict):
            await self._press(callback)
        elif isinstance(message, dict) and isinstance(message.get("text"), str):
            await self._command(message)

    # -- buttons ---------------------------------------------------------------------------

    async def _press(self, query: dict[str, Any]) -> None:
        message = query.get("message")
        chat = _chat_id(message)
        if chat is None or chat not in self._allowed or not isinstance(message, dict):
            self._stranger(chat, "a button press")
            await self._answer(query, "Not allowed.")
            return
        button = self._signer.check(query.get("data"))
        episode = None if button is None else self._actions.row_episode(button.row_id)
        if button is None or episode is None:
            await self._answer(query, "This button is no longer valid.")
            return
        by = who(query.get("from"))
        try:
            done = self._apply(button.action, episode, by)
        except (ActionError, TalkbackError) as exc:
            await self._answer(query, str(exc))
            return
        log.info("telegram: %s %s %s by %s", button.action, episode.rule, episode.key, by)
        await self._answer(query, done)
        if "message_id" not in message:
            return
        stamp = time.strftime("%H:%M UTC", time.gmtime(self._now()))
        text, entities = appended(message, f"{done} by {by} at {stamp}")
        await self._call(
            "editMessageText",
            {
                "chat_id": chat,
                "message_id": message["message_id"],
                "text": text,
                "entities": entities,
                "reply_markup": without(message.get("reply_markup"), query["data"]),
            },
        )

    def _apply(self, action: Action, pressed: EpisodeView, by: str) -> str:
        """Do what the button says to the episode its message speaks of; the line that says
        it was done."""
        actions = self._actions
        by = f"telegram: {by}"
        if action == "silence":
            silence_id = actions.add_silence(
                {"rule": pressed.rule},
                ends_at=self._now() + SILENCE,
                comment=f"from Telegram, on {pressed.rule} {pressed.key}",
                created_by=by,
            )
            return f"{_DONE[action]} (silence {silence_id})"
        if action == "snooze":
            actions.snooze(pressed.rule, pressed.key, SNOOZE, by)
            return _DONE[action]
        now = actions.episode(pressed.rule, pressed.key)
        if now is None or now.since is None or now.since != pressed.since:
            # acknowledging a later episode from an old message would hide a new problem
            raise ActionError("That alert is over: nothing to acknowledge.")
        actions.ack(pressed.rule, pressed.key, by)
        return _DONE[action]

    async def _answer(self, query: Mapping[str, Any], text: str) -> None:
        await self._call(
            "answerCallbackQuery", {"callback_query_id": query.get("id"), "text": text}
        )

    # -- commands --------------------------------------------------------------------------

    async def _command(self, message: dict[str, Any]) -> None:
        text = str(message["text"]).strip()
        if not text.startswith("/"):
            return
        name, _, rest = text[1:].partition(" ")
        name, _, addressee = name.partition("@")
        if addressee and self.username and addressee.lower() != self.username.lower():
            return  # a group's command for another bot
        chat = _chat_id(message)
        if chat not in self._allowed:
            self._stranger(chat, f"the command /{name}")
            return
        reply = self.commands.run(name.lower(), rest.strip(), who(message.get("from")))
        params = {
            "chat_id": chat,
            "text": reply,
            "link_preview_options": {"is_disabled": True},
            "reply_parameters": {
                "message_id": message.get("message_id"),
                "allow_sending_without_reply": True,
            },
        }
        await self._call("sendMessage", params)

    # -- both ------------------------------------------------------------------------------

    def _stranger(self, chat: int | None, what: str) -> None:
        key = chat if chat is not None else 0
        if key in self._strangers:
            return
        if len(self._strangers) >= MAX_STRANGERS:
            self._strangers.clear()
        self._strangers.add(key)
        log.warning(
            "telegram: ignored %s from chat %s, which is not in telegram.chat_ids "
            "(said once per chat)",
            what,
            chat,
        )

    async def _call(self, method: str, params: Mapping[str, Any]) -> None:
        try:
            await self._api.call(method, params, within=CALL_TIMEOUT)
        except BotApiError as exc:
            log.warning("telegram: %s", exc)


def _chat_id(message: object) -> int | None:
    chat = message.get("chat") if isinstance(message, dict) else None
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    return chat_id if isinstance(chat_id, int) else None
