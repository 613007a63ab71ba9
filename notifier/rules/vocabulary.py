"""What rules can name: the variables of each kind, and the default messages."""

from __future__ import annotations

__all__ = [
    "COMMON_VARIABLES",
    "DEFAULT_BODIES",
    "DEFAULT_TITLES",
    "INTENT_FIELDS",
    "OVERDUE_TITLE",
    "RESOLVED_PREFIX",
    "TEMPLATE_VARIABLES",
    "VARIABLES",
    "WHY_LINE",
]

COMMON_VARIABLES = frozenset({"rule", "transition", "now", "key"})
TEMPLATE_VARIABLES = frozenset({"why"})  # set when a message is made, not for conditions
INTENT_FIELDS = frozenset(
    {
        "from_amount_lots",
        "from_network_id",
        "from_token",
        "from_token_id",
        "to_network_id",
        "to_token",
        "to_token_id",
        "to_min_amount_lots",
        "to_max_amount_lots",
        "from_address",
        "to_address",
        "from_decimals",
        "to_decimals",
    }
)
VARIABLES: dict[str, frozenset[str]] = {
    "quote": frozenset(
        {
            "price",
            "amount_in",
            "amount_out",
            "amount_out_raw",
            "price_impact_bps",
            "hops",
            "slot",
            "pair",
            "previous_price",
            "token_in",
            "token_out",
            "exact_in",
        }
    ),
    "order": frozenset(
        {
            "event",
            "order_hash",
            "chain",
            "maker",
            "receiver",
            "maker_asset",
            "taker_asset",
            "making_amount",
            "taking_amount",
            "remaining_maker_amount",
            "filled_fraction",
            "deadline",
            "maker_asset_symbol",
            "taker_asset_symbol",
            "making_amount_human",
            "taking_amount_human",
            "remaining_maker_amount_human",
            "reconciled",
            "reason",
            "tx",
            "slot",
            "resolver",
        }
    ),
    "intent": frozenset(
        {
            "intent_id",
            "status",
            "previous_status",
            "label",
            "age",
            "swap_metadata",
            "created_at",
            "terminal",
            *INTENT_FIELDS,
        }
    ),
    "feed": frozenset({"feed", "up", "detail", "down_since", "down_seconds"}),
}

DEFAULT_TITLES = {
    "quote": "{{ rule.id }}: {{ pair }} at {{ price | round(6) }}",
    "order": "{{ rule.id }}: {{ event | replace('order_', '') | replace('_', ' ') }} "
    "{{ order_hash[:10] }}",
    "intent": "{{ rule.id }}: intent {{ label or intent_id[:8] }} {{ status }}",
    "feed": "{{ rule.id }}: {{ feed }} feed {{ 'up' if up else 'down' }}",
}
OVERDUE_TITLE = (
    "{{ rule.id }}: intent {{ label or intent_id[:8] }} overdue ({{ status }}"
    "{% if age is not none %} after {{ (age / 60) | round | int }} min{% endif %})"
)
DEFAULT_BODIES = {
    "quote": "{{ rule.description or rule.id }}: {{ amount_in }} {{ token_in }} → "
    "{{ amount_out }} {{ token_out }}, impact {{ price_impact_bps }} bps, {{ hops }} hop(s)",
    "order": "{{ rule.description or rule.id }}: order {{ order_hash }} on chain {{ chain }}"
    "{% if maker %}, maker {{ maker }}{% endif %}"
    "{% if filled_fraction is not none %}, {{ (filled_fraction * 100) | round(1) }}% filled"
    "{% endif %}",
    "intent": "{{ rule.description or rule.id }}: {{ intent_id }} is {{ status }}"
    "{% if previous_status %} (was {{ previous_status }}){% endif %}"
    "{% if age is not none %}, {{ (age / 60) | round(1) }} min old{% endif %}",
    "feed": "{{ rule.description or rule.id }}: {{ detail }}",
}
WHY_LINE = "{% if why %}\nwhy: {{ why }}{% endif %}"  # the default body ends with it
RESOLVED_PREFIX = "RESOLVED "
