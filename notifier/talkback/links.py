"""Action-link tokens: ``{public_url}/a/{token}`` names one alert episode, is signed with an
HMAC key kept in the store, expires after ``LINK_LIFETIME`` and grants only ``LINK_ACTIONS``.

A token is ``base64url(payload) "." base64url(HMAC-SHA256(key, payload))`` where the payload
is the JSON list ``[rule, key, episode since or null, expires at]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

import orjson

from notifier.talkback.model import Episode

__all__ = ["LINK_ACTIONS", "LINK_LIFETIME", "Grant", "LinkError", "LinkSigner"]

LINK_LIFETIME = 7 * 86400.0
# The three actions a link grants: name -> (what the button says, snooze/silence seconds).
LINK_ACTIONS: dict[str, tuple[str, float | None]] = {
    "ack": ("Acknowledge", None),
    "snooze": ("Snooze 1 h", 3600.0),
    "silence": ("Silence this rule 24 h", 86400.0),
}


class LinkError(Exception):
    """A link that grants nothing; the message says why (shown on the 403 page)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid token grants: actions on ``episode`` until ``expires``."""

    episode: Episode
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Signs and checks tokens with one key (``key``: the store's ``action_links`` secret)."""

    def __init__(self, key: str) -> None:
        self._key = hashlib.sha256(b"notifier action link\x00" + key.encode()).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def token(self, episode: Episode, issued_at: float) -> str:
        payload = orjson.dumps(
            [episode.rule, episode.key, episode.since, round(issued_at + LINK_LIFETIME)]
        )
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def check(self, token: str, now: float) -> Grant:
        """The grant of ``token``; ``LinkError`` when it is malformed, not signed by this
        notifier (tampered, or from another installation) or expired."""
        head, dot, tail = token.partition(".")
        malformed = LinkError("this link is not a notifier action link (it is malformed)")
        if not dot or len(token) > 2048:
            raise malformed
        try:
            payload, mac = _unb64(head), _unb64(tail)
        except (ValueError, binascii.Error):
            raise malformed from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise LinkError(
                "this link was not issued by this notifier: it was altered, or it belongs to "
                "another installation"
            )
        try:
            rule, key, since, expires = orjson.loads(payload)
            episode = Episode(str(rule), str(key), None if since is None else float(since))
            expires = float(expires)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            raise LinkError("this link is not a notifier action link (it is malformed)") from None
        if now >= expires:
            raise LinkError("this link has expired (links work for 7 days)")
        return Grant(episode, expires)

    def csrf(self, token: str, nonce: str) -> str:
        """The form value a page served for ``token`` with cookie ``nonce`` must post back."""
        return _b64(self._mac(f"csrf\x00{token}\x00{nonce}".encode()))[:32]
