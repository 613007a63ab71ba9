"""Simulated Changelly intent status: ``GET /v1/intents/{id}`` with ``X-Api-Key`` (UPSTREAMS §3).

Answers the flat §3.2 shape, or per intent the nested alternative (``nested=True``). An intent's
status advances by a script of ``(status, delay_s)`` steps, or by `IntentApi.set_status`; the
``swap_metadata`` timestamps and transactions fill in as statuses are reached. Faults:
`IntentApi.fail_next` (5xx) and `IntentApi.rate_limit_next` (429 with ``Retry-After``). Every
request is recorded per intent id (`IntentApi.hits`) so tests can check a client's pacing.

Unknown ids answer 404 ``{"code": 404, "type": "not_found", "message": …}`` and auth failures 401
with the same body shape; neither is documented upstream (UPSTREAMS §3.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from notifier.simulator.wire import iso, json_response

__all__ = ["INTENT_STATUSES", "Hit", "Intent", "IntentApi"]

INTENT_STATUSES = frozenset(
    {"Created", "Approved", "Verified", "Failed", "Deposited", "Finished", "Expired", "Refunded"}
)
_ZERO = "0x" + "0" * 40


@dataclass(frozen=True, slots=True)
class Hit:
    """One request for an intent: when (``time.time()``) and the status answered."""

    at: float
    status: int


@dataclass(slots=True)
class Intent:
    """One simulated intent: its response fields, script and request log."""

    intent_id: str
    status: str
    created_at: float
    fields: dict[str, Any]
    metadata: dict[str, Any]
    nested: bool = False
    parties: dict[str, Any] = field(default_factory=dict)  # nested-shape only fields
    script: deque[tuple[str, float]] = field(default_factory=deque)
    history: list[tuple[str, float]] = field(default_factory=list)
    wake: asyncio.Event | None = None

    def body(self) -> dict[str, Any]:
        """The response body, flat (§3.2) or nested (§3.2 alternative)."""
        if not self.nested:
            return {
                "intent_id": self.intent_id,
                "status": self.status,
                **self.fields,
                "swap_metadata": dict(self.metadata),
            }
        f, m = {**self.parties, **self.fields}, self.metadata
        return {
            "intent_id": self.intent_id,
            "status": self.status,
            "from": {
                "address": f["from_address"],
                "tx": m["user_deposit_tx"],
                "tx_at": m["user_deposited_at"],
                "network_id": f["from_network_id"],
                "token_id": f["from_token_id"],
                "contract_address": f["from_token"],
                "decimals": f["from_decimals"],
                "amount": _human(f["from_amount_lots"], f["from_decimals"]),
            },
            "to": {
                "address": f["to_address"],
                "tx": m["fulfill_tx"],
                "tx_at": m["fulfilled_at"],
                "network_id": f["to_network_id"],
                "token_id": f["to_token_id"],
                "contract_address": f["to_token"],
                "decimals": f["to_decimals"],
                "min_amount": _human(f["to_min_amount_lots"], f["to_decimals"]),
                "max_amount": _human(f["to_max_amount_lots"], f["to_decimals"]),
            },
        }


class IntentApi:
    """The intent-status upstream: route, intents, scripts and fault injection."""

    def __init__(self, *, key: str, seed: int = 0) -> None:
        self.key = key
        self.intents: dict[str, Intent] = {}
        self.hits: dict[str, list[Hit]] = {}
        self._rng = random.Random(f"intents:{seed}")
        self._faults: deque[tuple[int, int | None, str | None]] = deque()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the scripts of intents added before the server started."""
        self._started = True
        for intent in self.intents.values():
            self._run_script(intent)

    async def stop(self) -> None:
        """Stop every script."""
        self._started = False
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def routes(self) -> list[web.RouteDef]:
        """The status route at its real path."""
        return [web.get("/v1/intents/{intent_id}", self.handle)]

    # -- scripting ----------------------------------------------------------------------------

    def add_intent(
        self,
        intent_id: str | None = None,
        status: str = "Created",
        created_at: float | None = None,
        script: Iterable[tuple[str, float]] = (),
        *,
        nested: bool = False,
        fields: Mapping[str, Any] | None = None,
    ) -> str:
        """Add an intent (``created_at`` in unix seconds, default now) and start its script.

        ``script`` steps ``(status, delay_s)`` run one after the other, each delay counted from
        the previous step. ``fields`` overrides the flat response fields (``from_amount_lots``…).
        """
        intent_id = intent_id or self._uuid()
        _check(status)
        steps = deque((_check(s), float(d)) for s, d in script)
        created = time.time() if created_at is None else created_at
        values: dict[str, Any] = {
            "from_amount_lots": "1000000",
            "from_network_id": 1,
            "from_token": "0xdac17f958d2ee523a2206206994597c13d831ec7",
            "from_token_id": 1,
            "to_network_id": 4,
            "to_token": "So11111111111111111111111111111111111111112",
            "to_token_id": 4,
            "to_min_amount_lots": "6500000",
            "to_max_amount_lots": "6600000",
        }
        values.update(fields or {})
        parties = {
            "from_address": "0x" + self._hex(40),
            "to_address": "49HbQ9M6w1xh9J8G5mWbPU3dQ8Rn1H6GKcBVCzQ9gfVz",
            "from_decimals": 6,
            "to_decimals": 9,
        }
        metadata: dict[str, Any] = {
            "id": self._uuid(),
            "proxy_address": "0x" + self._hex(40),
            "user_deposit_tx": None,
            "fulfill_tx": None,
            "swap_tx": None,
            "created_at": iso(created),
            "user_deposited_at": None,
            "fulfilled_at": None,
            "swapped_at": None,
            "refunded_at": None,
        }
        intent = Intent(intent_id, "Created", created, values, metadata, nested, parties, steps)
        self.intents[intent_id] = intent
        if status != "Created":
            self.set_status(intent_id, status)
        else:
            intent.history.append((status, time.time()))
        if self._started:
            self._run_script(intent)
        return intent_id

    def set_status(self, intent_id: str, status: str) -> None:
        """Move an intent to ``status`` now, filling the matching metadata timestamps."""
        intent = self.intents[intent_id]
        _check(status)
        now = time.time()
        meta = intent.metadata
        if status in ("Deposited", "Finished", "Refunded") and meta["user_deposited_at"] is None:
            meta["user_deposit_tx"] = "0x" + self._hex(64)
            meta["user_deposited_at"] = iso(now)
        if status == "Finished":
            meta["fulfill_tx"] = meta["fulfill_tx"] or "0x" + self._hex(64)
            meta["fulfilled_at"] = meta["fulfilled_at"] or iso(now)
            meta["swap_tx"] = meta["swap_tx"] or "0x" + self._hex(64)
            meta["swapped_at"] = meta["swapped_at"] or iso(now)
        if status == "Refunded":
            meta["refunded_at"] = meta["refunded_at"] or iso(now)
        intent.status = status
        intent.history.append((status, now))

    def advance(self, intent_id: str) -> str | None:
        """Apply the next scripted status now; answers it, or None when the script is done."""
        intent = self.intents[intent_id]
        if not intent.script:
            return None
        status, _ = intent.script.popleft()
        self.set_status(intent_id, status)
        if intent.wake is not None:
            intent.wake.set()
        return status

    def remove(self, intent_id: str) -> None:
        """Forget an intent: later requests answer 404."""
        self.intents.pop(intent_id, None)
        task = self._tasks.pop(intent_id, None)
        if task is not None:
            task.cancel()

    def fail_next(self, n: int = 1, status: int = 500, intent_id: str | None = None) -> None:
        """The next ``n`` requests (for ``intent_id``, or any) answer ``status`` and an error."""
        self._faults.extend((status, None, intent_id) for _ in range(n))

    def rate_limit_next(
        self, n: int = 1, retry_after: int = 1, intent_id: str | None = None
    ) -> None:
        """The next ``n`` requests answer 429 with ``Retry-After: retry_after`` (seconds)."""
        self._faults.extend((429, retry_after, intent_id) for _ in range(n))

    def request_count(self, intent_id: str) -> int:
        """Requests received for ``intent_id`` (any answer)."""
        return len(self.hits.get(intent_id, ()))

    # -- HTTP -----------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /v1/intents/{id}``."""
        intent_id = request.match_info["intent_id"]
        response = self._answer(request, intent_id)
        self.hits.setdefault(intent_id, []).append(Hit(time.time(), response.status))
        return response

    def _answer(self, request: web.Request, intent_id: str) -> web.Response:
        if request.headers.get("X-Api-Key") != self.key:
            return _error(401, "unauthorized", "invalid or missing api key")
        fault = self._take_fault(intent_id)
        if fault is not None:
            status, retry_after = fault
            if status == 429:
                headers = {"Retry-After": str(retry_after)}
                return _error(429, "rate_limited", "too many requests", headers)
            return _error(status, "internal_error", "internal error")
        intent = self.intents.get(intent_id)
        if intent is None:
            return _error(404, "not_found", f"intent {intent_id} not found")
        return json_response(intent.body())

    def _take_fault(self, intent_id: str) -> tuple[int, int | None] | None:
        for index, (status, retry_after, target) in enumerate(self._faults):
            if target in (None, intent_id):
                del self._faults[index]
                return status, retry_after
        return None

    def _run_script(self, intent: Intent) -> None:
        if intent.script and intent.intent_id not in self._tasks:
            intent.wake = asyncio.Event()
            task = asyncio.create_task(self._script(intent))
            self._tasks[intent.intent_id] = task

    async def _script(self, intent: Intent) -> None:
        wake = intent.wake
        assert wake is not None
        try:
            while intent.script:
                _, delay = intent.script[0]
                try:
                    await asyncio.wait_for(wake.wait(), delay)
                except TimeoutError:
                    if intent.script:
                        self.advance(intent.intent_id)
                wake.clear()
        finally:
            self._tasks.pop(intent.intent_id, None)

    def _hex(self, digits: int) -> str:
        return f"{self._rng.getrandbits(digits * 4):0{digits}x}"

    def _uuid(self) -> str:
        h = self._hex(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _check(status: str) -> str:
    if status not in INTENT_STATUSES:
        raise ValueError(f"unknown intent status: {status}")
    return status


def _human(lots: str, decimals: int) -> str:
    """Integer lots as a decimal string in token units."""
    whole, frac = divmod(int(lots), 10**decimals)
    text = f"{whole}.{frac:0{decimals}d}".rstrip("0").rstrip(".") if decimals else str(whole)
    return text or "0"


def _error(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_response({"code": status, "type": kind, "message": message}, status, headers)
