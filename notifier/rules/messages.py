"""What a rule says when it fires, repeats, resolves or sees an event: its title and body
templates rendered into a ``Notification`` for the sink."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from notifier.notification import Notification, Severity
from notifier.rules.compiled import Rule
from notifier.rules.sandbox import BudgetExceeded, SandboxError
from notifier.rules.vocabulary import RESOLVED_PREFIX

__all__ = ["Transition", "notification"]

Transition = Literal["firing", "repeat", "resolved", "event"]


def notification(
    rule: Rule,
    key: str,
    variables: Mapping[str, Any],
    transition: Transition,
    *,
    now: float,
    dedup: str,
    on_error: Callable[[Rule, str, Exception], None],
    episode: float | None = None,
) -> Notification:
    """The notification for one transition of ``rule`` at ``key``; a template that fails
    is reported to ``on_error`` and replaced by a line saying so. A title that ran past its
    budget stops the rule: its body is not rendered."""
    context = {**variables, **rule.variables_base, "transition": transition, "key": key}
    title, over_budget = _render(rule, "title", context, on_error)
    body = title if over_budget else _render(rule, "body", context, on_error)[0]
    severity: Severity = rule.severity
    if transition == "resolved":
        title, severity = RESOLVED_PREFIX + title, "success"
    return Notification(
        key=dedup,
        rule_id=rule.id,
        title=title,
        body=body,
        severity=severity,
        tags=rule.tags,
        created_at=now,
        event_at=_float_or_none(variables.get("event_at")),
        why=str(variables.get("why") or ""),
        alert_key=key,
        transition=transition,
        episode=episode,
        source=rule.source,
    )


def _render(
    rule: Rule,
    which: Literal["title", "body"],
    context: Mapping[str, Any],
    on_error: Callable[[Rule, str, Exception], None],
) -> tuple[str, bool]:
    """The rendered text, or a line saying why it failed; True when it ran past its budget."""
    template = rule.title if which == "title" else rule.body
    try:
        return template.render(context), False
    except SandboxError as exc:
        on_error(rule, which, exc)
        return f"{rule.id}: ({which} failed to render: {exc})", isinstance(exc, BudgetExceeded)


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
