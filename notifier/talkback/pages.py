"""The action-link page, ``/a/{token}``: what a tap on a message's link opens on a phone.

GET shows the alert (rule, key, state, since, its ``why`` when it has one) and three buttons,
each a POST form. The forms are CSRF-protected without a login: the page sets a random
``SameSite=Strict`` cookie and each form carries an HMAC of the token and that cookie, which a
page of another site can neither read nor forge. A tampered, expired or foreign token, or one
whose alert episode is over, gets 403 with a page saying why, and nothing changes.
"""

from __future__ import annotations

import hmac
import html
import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from notifier.talkback.links import LINK_ACTIONS, LinkError
from notifier.talkback.model import Episode, TalkbackError
from notifier.timestamps import rfc3339

if TYPE_CHECKING:
    from notifier.talkback.actions import Talkback

__all__ = ["ActionPages"]

COOKIE = "notifier_csrf"
STYLE = (
    "body{font:16px/1.4 system-ui,sans-serif;margin:0;padding:1rem;max-width:36rem}"
    "h1{font-size:1.3rem}dl{display:grid;grid-template-columns:auto 1fr;gap:.2rem .8rem}"
    "dt{color:#555}dd{margin:0;overflow-wrap:anywhere}form{margin:.6rem 0}"
    "button{width:100%;padding:.9rem;font-size:1.05rem;border-radius:.5rem;border:1px solid #888}"
    ".why{background:#f4f4f4;padding:.6rem;border-radius:.4rem;overflow-wrap:anywhere}"
    ".refused{color:#a00}"
)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    response = web.Response(text=text, status=status, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    )
    return response


def _refused(reason: str, status: int = 403) -> web.Response:
    body = (
        '<h1 class="refused">This link cannot be used</h1>'
        f"<p>{html.escape(reason)}.</p><p>Nothing was changed.</p>"
    )
    return _page("notifier: refused", body, status)


class ActionPages:
    """Serves ``/a/{token}`` for ``talkback`` (its signer checks the tokens)."""

    def __init__(self, talkback: Talkback, public_url: str = "") -> None:
        self._talkback = talkback
        parts = urlsplit(public_url)
        self._secure = parts.scheme == "https"
        # Behind a reverse proxy under a prefix, the browser sees the page under it.
        self._cookie_path = f"{parts.path.rstrip('/')}/a/"

    def install(self, app: web.Application) -> None:
        app.router.add_get("/a/{token}", self._show)
        app.router.add_post("/a/{token}", self._act)

    async def _show(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        try:
            episode = self._talkback.current(token)
        except LinkError as exc:
            return _refused(str(exc).rstrip("."))
        nonce = request.cookies.get(COOKIE) or secrets.token_urlsafe(24)
        csrf = self._talkback.signer.csrf(token, nonce)
        content = self._alert(episode) + self._buttons(episode, csrf)
        response = _page(f"notifier: {episode.rule}", content)
        response.set_cookie(
            COOKIE,
            nonce,
            path=self._cookie_path,
            httponly=True,
            samesite="Strict",
            secure=self._secure,
            max_age=7 * 86400,
        )
        return response

    async def _act(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        form = await request.post()
        nonce = request.cookies.get(COOKIE, "")
        posted = str(form.get("csrf", ""))
        expected = self._talkback.signer.csrf(token, nonce)
        if not nonce or not hmac.compare_digest(posted.encode(), expected.encode()):
            return _refused(
                "this form did not come from this link's page (or its cookie is gone); open "
                "the link again and press the button there"
            )
        try:
            done = self._talkback.act(token, str(form.get("action", "")), "action link")
        except LinkError as exc:
            return _refused(str(exc).rstrip("."))
        except TalkbackError as exc:
            return _refused(str(exc).rstrip("."), status=409)
        body = f"<h1>Done</h1><p>{html.escape(done.text)}.</p>"
        return _page("notifier: done", body)

    def _alert(self, episode: Episode) -> str:
        st = self._talkback.state(episode.rule, episode.key)
        rows = [("Rule", episode.rule), ("Key", episode.key)]
        why = None
        if st is not None:
            rows += [("State", st.state), ("Since", rfc3339(st.since) or "")]
            why = st.variables.get("why")
        cells = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in rows)
        head = f"<h1>{html.escape(episode.rule)}</h1><dl>{cells}</dl>"
        return head + (f'<p class="why">{html.escape(str(why))}</p>' if why else "")

    def _buttons(self, episode: Episode, csrf: str) -> str:
        forms = []
        for action, (label, _) in LINK_ACTIONS.items():
            if action == "ack" and episode.since is None:
                continue  # an event's message: nothing fires, nothing to acknowledge
            forms.append(
                f'<form method="post"><input type="hidden" name="action" value="{action}">'
                f'<input type="hidden" name="csrf" value="{html.escape(csrf)}">'
                f"<button>{html.escape(label)}</button></form>"
            )
        return "".join(forms)
