"""A fake Telegram Bot API on loopback, written from Telegram's published Bot API docs
(https://core.telegram.org/bots/api): ``/bot<token>/METHOD`` taking parameters as a query
string, form fields or a JSON body; answers ``{"ok": true, "result": …}`` or ``{"ok": false,
"error_code": N, "description": "…", "parameters": {"retry_after": S}}``.

It implements what notifier uses — ``getMe``, ``getUpdates`` (long polling, ``offset``
confirming earlier updates, one poll at a time else 409), ``sendMessage``,
``editMessageText``, ``answerCallbackQuery`` — and refuses what the real one refuses: a wrong
token (401), an unknown method (404), an unknown chat, an empty or too long text (4096 UTF-16
units after entities), a bad ``parse_mode`` or HTML, bad ``entities``, a ``reply_markup``
that is not an inline keyboard of valid buttons (``callback_data`` 1 to 64 bytes), an unknown or
already answered callback query, an edit that changes nothing. Tests queue updates (a
button press, a command) and make the next calls of a method fail (``fail``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Self, cast

from aiohttp import web

__all__ = ["FAKE_TOKEN", "BotApiCall", "FakeBotApi", "user"]

FAKE_TOKEN = "123456789:AAFakeTokenForTestsOnly-0123456789abc"
HOST = "127.0.0.1"
BOT = {"id": 123456789, "is_bot": True, "first_name": "notifier", "username": "notifier_test_bot"}
ENTITY_TYPES = frozenset(
    {
        *("mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number"),
        *("bold", "italic", "underline", "strikethrough", "spoiler", "blockquote", "code"),
        *("expandable_blockquote", "pre", "text_link", "text_mention", "custom_emoji"),
    }
)
HTML_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a"}
    | {"code", "pre", "tg-emoji", "blockquote"}
)
KEYBOARD = "Bad Request: can't parse inline keyboard button: "


class BadRequest(Exception):
    """Answered as Telegram answers a refused call."""

    def __init__(self, description: str, code: int = 400, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.retry_after = retry_after


def user(
    user_id: int = 42, first_name: str = "Ada", username: str | None = "ada"
) -> dict[str, Any]:
    """A Telegram ``User`` object (who pressed or wrote)."""
    found: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username:
        found["username"] = username
    return found


@dataclass(frozen=True, slots=True)
class BotApiCall:
    """One request the fake answered: the method, its parameters, and the error (if any)."""

    method: str
    params: dict[str, Any]
    error: str | None
    at: float = field(default_factory=time.perf_counter)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _Html(HTMLParser):
    """Telegram's HTML style: only its tags, properly nested; the text without them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_TAGS:
            raise BadRequest(f'Bad Request: can\'t parse entities: unsupported start tag "{tag}"')
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            raise BadRequest(f'Bad Request: can\'t parse entities: unmatched end tag "{tag}"')

    def handle_data(self, data: str) -> None:
        self.text.append(data)


class FakeBotApi:
    """``async with FakeBotApi() as api``: ``api.url`` goes in ``telegram.api_url``."""

    def __init__(self, token: str = FAKE_TOKEN, chats: tuple[int, ...] = (1001, 2002)) -> None:
        self.token = token
        self.chats = set(chats)
        self.calls: list[BotApiCall] = []
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}  # (chat, message_id)
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._open_queries: set[str] = set()
        self._failures: dict[str, list[tuple[int, str, int | None]]] = {}
        self._changed = asyncio.Condition()
        self._polling = False
        self.max_hold = 2.0  # a long poll answers [] after this at most: quick test teardown
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._route)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self.url = f"http://{HOST}:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what tests do ---------------------------------------------------------------------

    def fail(
        self, method: str, status: int, *, times: int = 1, retry_after: int | None = None
    ) -> None:
        """The next ``times`` calls of ``method`` answer ``status`` (429 with ``retry_after``)."""
        description = {
            409: "Conflict: terminated by other getUpdates request; make sure that only one "
            "bot instance is running",
            429: "Too Many Requests: retry after",
            502: "Bad Gateway",
        }.get(status, "Internal Server Error")
        self._failures.setdefault(method, []).extend([(status, description, retry_after)] * times)

    def press(self, message: dict[str, Any], data: str, who: dict[str, Any] | None = None) -> int:
        """Queue a ``callback_query`` for a button with ``data`` under ``message`` (as the
        bot last sent or edited it); returns the update id."""
        query_id = str(next(self._query_ids))
        self._open_queries.add(query_id)
        query = {
            "id": query_id,
            "from": who or user(),
            "message": json.loads(json.dumps(message)),
            "chat_instance": f"ci-{message['chat']['id']}",
            "data": data,
        }
        return self._queue({"callback_query": query})

    def press_button(
        self, message: dict[str, Any], text: str, who: dict[str, Any] | None = None
    ) -> int:
        """Press the button labelled ``text`` under ``message``."""
        for row in message.get("reply_markup", {}).get("inline_keyboard", []):
            for button in row:
                if button["text"] == text:
                    return self.press(message, button["callback_data"], who)
        raise AssertionError(f"no button {text!r} under message {message.get('message_id')}")

    def write(self, chat_id: int, text: str, who: dict[str, Any] | None = None) -> int:
        """Queue a text ``message`` (a command) from ``who`` in ``chat_id``; returns its
        ``message_id``."""
        message_id = next(self._message_ids)
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": who or user(),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            length = len(text.split(maxsplit=1)[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        self._queue({"message": message})
        return message_id

    def replies(self, chat_id: int, message_id: int) -> list[dict[str, Any]]:
        """What the bot sent in reply to ``message_id``."""
        return [
            m
            for m in self.sent(chat_id)
            if m.get("reply_to_message", {}).get("message_id") == message_id
        ]

    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent (as they are now, edits applied), oldest first."""
        return [
            m
            for (chat, _), m in sorted(self.messages.items(), key=lambda kv: kv[0][1])
            if chat_id is None or chat == chat_id
        ]

    def of(self, method: str, *, ok: bool | None = None) -> list[BotApiCall]:
        return [
            c for c in self.calls if c.method == method and (ok is None or (c.error is None) == ok)
        ]

    @property
    def pending_updates(self) -> int:
        return len(self._updates)

    async def wait_until(self, predicate: Callable[[], object], timeout: float = 20.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    # -- the HTTP side ---------------------------------------------------------------------

    def _queue(self, body: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, **body})
        asyncio.get_running_loop().create_task(self._notify())
        return update_id

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _route(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = {}
        try:
            params = await _params(request)
            result = await self._answer(request.match_info["token"], method, params)
        except BadRequest as exc:
            self.calls.append(BotApiCall(method, params, str(exc)))
            await self._notify()
            answer: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": str(exc)}
            if exc.retry_after is not None:
                answer["parameters"] = {"retry_after": exc.retry_after}
            return web.json_response(answer, status=exc.code)
        self.calls.append(BotApiCall(method, params, None))
        await self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _answer(self, token: str, method: str, params: dict[str, Any]) -> Any:
        if token != self.token:
            raise BadRequest("Unauthorized", 401)
        handler = getattr(self, f"_m_{method.lower()}", None)  # methods are case-insensitive
        if handler is None:
            raise BadRequest("Not Found", 404)
        failures = self._failures.get(method)
        if failures:
            status, description, retry_after = failures.pop(0)
            raise BadRequest(description, status, retry_after)
        return await handler(params)

    # -- methods ---------------------------------------------------------------------------

    async def _m_getme(self, params: dict[str, Any]) -> Any:
        return BOT

    async def _m_getupdates(self, params: dict[str, Any]) -> Any:
        if self._polling:
            raise BadRequest(
                "Conflict: terminated by other getUpdates request; make sure that only one "
                "bot instance is running",
                409,
            )
        offset = _int(params, "offset", 0)
        limit = _int(params, "limit", 100)
        timeout = _int(params, "timeout", 0)
        if not 1 <= limit <= 100:
            raise BadRequest("Bad Request: limit must be between 1 and 100")
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]  # confirmed
        self._polling = True
        try:
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(max(timeout, 0), self.max_hold)):
                        await self._changed.wait_for(lambda: bool(self._updates))
        finally:
            self._polling = False
        return self._updates[:limit]

    async def _m_sendmessage(self, params: dict[str, Any]) -> Any:
        chat = self._chat(params)
        text, entities = _text(params)
        markup = _markup(params.get("reply_markup"))
        message_id = next(self._message_ids)
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": BOT,
            "chat": {"id": chat, "type": "private" if chat > 0 else "group"},
            "date": int(time.time()),
            "text": text,
        }
        if entities:
            message["entities"] = entities
        if markup and markup.get("inline_keyboard"):
            message["reply_markup"] = markup
        reply = _json(params.get("reply_parameters"), "reply parameters")
        if isinstance(reply, dict):
            message["reply_to_message"] = {"message_id": _int(reply, "message_id", 0)}
        self.messages[(chat, message_id)] = message
        return message

    async def _m_editmessagetext(self, params: dict[str, Any]) -> Any:
        if "inline_message_id" in params:
            raise BadRequest("Bad Request: MESSAGE_ID_INVALID")
        chat = self._chat(params)
        key = (chat, _int(params, "message_id", -1))
        old = self.messages.get(key)
        if old is None:
            raise BadRequest("Bad Request: message to edit not found")
        text, entities = _text(params)
        markup = _markup(params.get("reply_markup"))
        new = {**old, "text": text, "edit_date": int(time.time())}
        new.pop("entities", None)
        new.pop("reply_markup", None)
        if entities:
            new["entities"] = entities
        if markup and markup.get("inline_keyboard"):
            new["reply_markup"] = markup
        if {k: v for k, v in new.items() if k != "edit_date"} == {
            k: v for k, v in old.items() if k != "edit_date"
        }:
            raise BadRequest(
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message"
            )
        self.messages[key] = new
        return new

    async def _m_answercallbackquery(self, params: dict[str, Any]) -> Any:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._open_queries:
            raise BadRequest(
                "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(params.get("text", ""))) > 200:
            raise BadRequest("Bad Request: MESSAGE_TOO_LONG")
        self._open_queries.discard(query_id)
        return True

    def _chat(self, params: dict[str, Any]) -> int:
        if "chat_id" not in params:
            raise BadRequest("Bad Request: chat_id is empty")
        try:
            chat = int(params["chat_id"])
        except (TypeError, ValueError):
            raise BadRequest("Bad Request: chat not found") from None
        if chat not in self.chats:
            raise BadRequest("Bad Request: chat not found")
        return chat


async def _params(request: web.Request) -> dict[str, Any]:
    """Query string, form fields or a JSON body, as the Bot API accepts them."""
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise BadRequest("Bad Request: can't parse JSON") from None
            if not isinstance(body, dict):
                raise BadRequest("Bad Request: JSON body must be an object")
            params.update(body)
        else:
            params.update(await request.post())
    return params


def _int(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"Bad Request: invalid {name} specified") from None


def _json(value: Any, name: str) -> Any:
    """A parameter that is a JSON-serialized object: a string in a form, an object in JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise BadRequest(f"Bad Request: can't parse {name} JSON object") from None
    return value


def _text(params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("Bad Request: message text is empty")
    mode = params.get("parse_mode")
    entities = _json(params.get("entities", []), "entities")
    if mode is not None:
        if mode == "HTML":
            parser = _Html()
            parser.feed(text)
            parser.close()
            if parser.open:
                raise BadRequest(
                    f"Bad Request: can't parse entities: unclosed tag {parser.open[-1]}"
                )
            text = "".join(parser.text)
        elif mode not in {"MarkdownV2", "Markdown"}:
            raise BadRequest(f"Bad Request: unsupported parse_mode {mode}")
    if not text.strip():
        raise BadRequest("Bad Request: message text is empty")
    if utf16_len(text) > 4096:
        raise BadRequest("Bad Request: message is too long")
    if not isinstance(entities, list):
        raise BadRequest("Bad Request: entities must be an array")
    for entity in entities:
        if (
            not isinstance(entity, dict)
            or entity.get("type") not in ENTITY_TYPES
            or not isinstance(entity.get("offset"), int)
            or not isinstance(entity.get("length"), int)
            or entity["offset"] < 0
            or entity["length"] < 1
            or entity["offset"] + entity["length"] > utf16_len(text)
        ):
            raise BadRequest(f"Bad Request: can't parse entities: invalid entity {entity!r}")
    return text, entities


def _markup(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    markup = _json(value, "reply keyboard")
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise BadRequest(KEYBOARD + 'field "inline_keyboard" must be an Array of Arrays')
    for row in rows:
        for button in row:
            if (
                not isinstance(button, dict)
                or not isinstance(button.get("text"), str)
                or not button["text"]
            ):
                raise BadRequest(KEYBOARD + "Text buttons are unallowed in the inline keyboard")
            kinds = [k for k in ("callback_data", "url", "switch_inline_query") if k in button]
            if len(kinds) != 1:
                raise BadRequest(KEYBOARD + "exactly one of the optional fields must be used")
            data = button.get("callback_data")
            if "callback_data" in button and (
                not isinstance(data, str) or not 1 <= len(data.encode()) <= 64
            ):
                raise BadRequest("Bad Request: BUTTON_DATA_INVALID")
    return cast("dict[str, Any]", markup)
