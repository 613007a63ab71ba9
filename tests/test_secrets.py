"""The one secret redactor: learnt or registered secrets never reach a log line."""

from __future__ import annotations

import logging

from notifier.secrets import Secrets, mask_secrets, mask_urls

TOKEN = "t0k3n-abc+def"


def test_secrets_learnt_from_a_url_are_masked_in_text_encoded_too() -> None:
    """What the full URL shows and its privacy form hides is a secret, URL-encoded or not."""
    secrets = Secrets(mask="****")
    secrets.learn_url(f"json://bot:{TOKEN}@127.0.0.1:9/x", "json://bot:****@127.0.0.1:9/x")
    assert secrets(f"auth {TOKEN} then t0k3n-abc%2Bdef") == "auth **** then ****"
    assert secrets("json://bot@127.0.0.1:9/x") == "json://bot@127.0.0.1:9/x"  # 4+ chars only


def test_the_filter_masks_message_args_and_traceback() -> None:
    """A secret in the arguments or in an exception's text is masked before any handler."""
    secrets = Secrets()
    secrets.add([TOKEN])
    exc = RuntimeError(f"refused {TOKEN}")
    record = logging.LogRecord(
        "x", logging.ERROR, "f", 1, "key %s", (TOKEN,), (RuntimeError, exc, None)
    )
    assert secrets.filter(record)
    assert record.getMessage() == "key ***"
    assert record.exc_text is not None
    assert TOKEN not in record.exc_text
    assert "RuntimeError: refused ***" in record.exc_text


def test_longest_secret_first_and_short_values_ignored() -> None:
    assert mask_secrets("abcdef abcd", ["abcdef", "abcd"]) == "*** ***"
    secrets = Secrets()
    secrets.add(["", "ab", "abcd", "abcdef"])
    assert secrets("ab abcdef") == "ab ***"
    assert mask_urls("bad url wss://x/?key=1 here") == "bad url wss://*** here"
