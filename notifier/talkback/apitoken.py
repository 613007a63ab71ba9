"""The HTTP API's bearer token: ``http.token`` when set, else a random one created at first
start in ``{state_dir}/api_token`` (mode 0600), which the CLI on the same machine reads."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["TOKEN_FILE", "TokenFileError", "ensure_token", "read_token"]

TOKEN_FILE = "api_token"  # noqa: S105 - a file name, not a secret


class TokenFileError(Exception):
    """The token file cannot be created or read; the message names it (never the token)."""


def read_token(state_dir: Path) -> str | None:
    """The token in ``state_dir``'s token file, or None when there is none (or it cannot be
    read by this user)."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return (state_dir / TOKEN_FILE).read_text(encoding="utf-8").strip() or None
    return None


def ensure_token(state_dir: Path, configured: str) -> str:
    """``configured`` when set; else the token file's, created (0600) when missing."""
    if configured.strip():
        return configured.strip()
    path = state_dir / TOKEN_FILE
    found = read_token(state_dir)
    if found:
        return found
    token = secrets.token_urlsafe(32)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        found = read_token(state_dir)
        if found:
            return found
        raise TokenFileError(f"{path}: the API token file is empty or unreadable") from None
    except OSError as exc:
        raise TokenFileError(
            f"{path}: cannot create the API token file ({exc.strerror or exc})"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token
