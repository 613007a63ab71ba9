"""The ``console://`` apprise channel: prints each notification to the terminal (for the demo).

Importing this module registers the scheme with apprise, so an apprise config line
``console://`` (optionally tagged) works like any other channel.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from apprise import NotifyFormat
from apprise.decorators import notify
from apprise.manager_plugins import NotificationManager

from notifier.dispatch.plugins import install

__all__ = ["SCHEME", "render"]

SCHEME = "console"
_WIDTH = 72
_print_lock = threading.Lock()  # apprise may call from several worker threads at once


def render(title: str, body: str, notify_type: str) -> str:
    """One readable block: a rule with the severity, the title, the body, a blank line."""
    head = f"── {notify_type.upper()} "
    lines = [head + "─" * max(_WIDTH - len(head), 3)]
    if title:
        lines.append(title)
    if body:
        lines.append(body.rstrip())
    return "\n".join(lines) + "\n\n"


def _print(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    block = render(title, body, notify_type)
    with _print_lock:
        sys.stdout.write(block)
        sys.stdout.flush()
    return True


# apprise's plugin registry and decorator are untyped. Asking it first imports every plugin
# unless it imports them on demand (install).
install()
if SCHEME not in NotificationManager():  # type: ignore[no-untyped-call]
    notify(on=SCHEME, name="Console", body_format=NotifyFormat.TEXT)(_print)  # type: ignore[no-untyped-call]
