"""Talking back (SPEC §9): silences, acknowledgements, snoozes, quiet hours, the API token and
action links. ``actions.Talkback`` is the facade every front end (HTTP API, CLI, action-link
page, Telegram bot) calls; ``gate.Gate`` is the delivery stage right before sending.

Import the submodules themselves: this package imports nothing, so ``notifier.config`` can
read ``settings`` without a cycle.
"""

from __future__ import annotations

__all__: list[str] = []
