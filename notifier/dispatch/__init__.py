"""Delivery: rule decisions become durable outbox rows, then apprise messages."""

from __future__ import annotations

from notifier.dispatch.dispatcher import Dispatcher
from notifier.dispatch.probe import ChannelResult, check_apprise_config, notify_test
from notifier.notification import Notification, Severity

__all__ = [
    "ChannelResult",
    "Dispatcher",
    "Notification",
    "Severity",
    "check_apprise_config",
    "notify_test",
]
