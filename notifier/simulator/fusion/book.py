"""The simulated Fusion order book: order state, scripting, and other makers' random flow.

Every change is announced through ``publish`` as an ``(order, event, result)``; the book does
not know who listens (the WebSocket endpoint pushes it to the chain's connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

from notifier.simulator.fusion.orders import (
    ACTIVE_STATUSES,
    ORDER_STATUSES,
    USDC,
    WETH,
    ZERO_ADDRESS,
    Order,
)

__all__ = ["OrderBook", "Publish"]

Publish = Callable[[Order, str, dict[str, Any]], None]


class OrderBook:
    """Orders of every chain, changed by scripting methods that announce each event."""

    def __init__(
        self,
        *,
        publish: Publish,
        seed: int = 0,
        random_orders: bool = False,
        order_interval: float = 2.0,
        chains: tuple[int, ...] = (1,),
    ) -> None:
        self.random_orders = random_orders
        self.order_interval = order_interval
        self.chains = chains
        self.orders: dict[str, Order] = {}
        self._publish = publish
        self._rng = random.Random(f"fusion:{seed}")
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        """Start the random flow of other makers' orders (when enabled)."""
        if self.random_orders:
            task = asyncio.create_task(self._random_flow())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Stop the random flow."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- scripting ----------------------------------------------------------------------------

    def create_order(
        self,
        chain: int = 1,
        *,
        maker: str | None = None,
        maker_asset: str = USDC,
        taker_asset: str = WETH,
        making_amount: int = 1_000_000_000,
        taking_amount: int = 300_000_000_000_000_000,
        receiver: str = ZERO_ADDRESS,
        lifetime: float = 600.0,
        is_maker_contract: bool = False,
        created_at: float | None = None,
    ) -> str:
        """Create a pending order, push ``order_created``, answer its hash.

        ``created_at`` (unix seconds, default now) back-dates the order's ``createdAt``.
        """
        return self._create(
            chain,
            maker=maker or self._address(),
            maker_asset=maker_asset,
            taker_asset=taker_asset,
            making_amount=making_amount,
            taking_amount=taking_amount,
            receiver=receiver,
            lifetime=lifetime,
            is_maker_contract=is_maker_contract,
            created_at=created_at,
        ).order_hash

    def fill_partially(self, order_hash: str, remaining: int) -> None:
        """Fill down to ``remaining`` (> 0); push ``order_filled_partially``."""
        order = self._live(order_hash)
        if not 0 < remaining < order.remaining:
            raise ValueError(f"remaining must be in 1..{order.remaining - 1}")
        self._fill(order, order.remaining - remaining)
        order.status = "partially-filled"
        self._publish(
            order,
            "order_filled_partially",
            {"orderHash": order.order_hash, "remainingMakerAmount": str(remaining)},
        )

    def fill(self, order_hash: str) -> None:
        """Fill what remains; push ``order_filled``."""
        order = self._live(order_hash)
        self._fill(order, order.remaining)
        order.status = "filled"
        self._publish(order, "order_filled", {"orderHash": order.order_hash})

    def cancel(self, order_hash: str) -> None:
        """Cancel on chain; push ``order_cancelled``."""
        order = self._live(order_hash)
        order.status = "cancelled"
        order.cancel_tx = self._hex(64)
        self._publish(order, "order_cancelled", {"orderHash": order.order_hash})

    def invalidate(self, order_hash: str, status: str = "invalid-signature") -> None:
        """Make the order invalid with REST ``status``; push ``order_invalid``."""
        if status in ACTIVE_STATUSES or status not in ORDER_STATUSES:
            raise ValueError(f"not an invalid status: {status}")
        order = self._live(order_hash)
        order.status = status
        self._publish(order, "order_invalid", {"orderHash": order.order_hash})

    def balance_change(self, order_hash: str, balance: int, allowance: int) -> None:
        """Report the maker's balance/allowance; push ``order_balance_or_allowance_change``.

        Below the remaining amount the REST status becomes ``not-enough-balance-or-allowance``
        (and the order leaves the active list); enough again restores it.
        """
        order = self._live(order_hash, allow_unfunded=True)
        if min(balance, allowance) < order.remaining:
            order.status = "not-enough-balance-or-allowance"
        else:
            order.status = "partially-filled" if order.fills else "pending"
        payload = {
            "orderHash": order.order_hash,
            "remainingMakerAmount": str(order.remaining),
            "balance": str(balance),
            "allowance": str(allowance),
        }
        self._publish(order, "order_balance_or_allowance_change", payload)

    def expire(self, order_hash: str) -> None:
        """Expire the order in REST state only: upstream pushes no event for expiry."""
        self._live(order_hash, allow_unfunded=True).status = "expired"

    def active_orders(self, chain: int) -> list[Order]:
        """Orders of ``chain`` listed as active, oldest first."""
        return [
            order
            for order in self.orders.values()
            if order.chain == chain and order.status in ACTIVE_STATUSES
        ]

    def orders_by_maker(
        self, chain: int, maker: str, since_ms: int | None = None, until_ms: int | None = None
    ) -> list[Order]:
        """Orders of ``maker`` on ``chain`` created in ``[since_ms, until_ms)``, newest first."""
        found = [
            order
            for order in self.orders.values()
            if order.chain == chain
            and order.struct["maker"].lower() == maker.lower()
            and (since_ms is None or order.created_ms >= since_ms)
            and (until_ms is None or order.created_ms < until_ms)
        ]
        return sorted(found, key=lambda order: order.created, reverse=True)

    # -- internals ------------------------------------------------------------------------------

    def _create(
        self,
        chain: int,
        *,
        maker: str,
        maker_asset: str,
        taker_asset: str,
        making_amount: int,
        taking_amount: int,
        receiver: str,
        lifetime: float,
        is_maker_contract: bool,
        random_flow: bool = False,
        created_at: float | None = None,
    ) -> Order:
        now = time.time() if created_at is None else created_at
        order_hash = f"0x{self._hex(64)}-{self._hex(31)}"
        struct = {
            "salt": str(self._rng.getrandbits(200)),
            "maker": maker,
            "receiver": receiver,
            "makerAsset": maker_asset,
            "takerAsset": taker_asset,
            "makerTraits": str(self._rng.getrandbits(250)),
            "makingAmount": str(making_amount),
            "takingAmount": str(taking_amount),
        }
        order = Order(
            chain=chain,
            order_hash=order_hash,
            quote_id=self._uuid(),
            signature="0x" + self._hex(130),
            struct=struct,
            extension="0x" + self._hex(96),
            created=now,
            deadline=now + lifetime,
            is_maker_contract=is_maker_contract,
            remaining=making_amount,
            random=random_flow,
        )
        self.orders[order_hash] = order
        self._publish(order, "order_created", order.created_payload())
        return order

    def _live(self, order_hash: str, *, allow_unfunded: bool = False) -> Order:
        order = self.orders.get(order_hash)
        if order is None:
            raise KeyError(order_hash)
        allowed = ACTIVE_STATUSES | (
            {"not-enough-balance-or-allowance"} if allow_unfunded else set()
        )
        if order.status not in allowed:
            raise ValueError(f"order {order_hash} is {order.status}")
        return order

    def _fill(self, order: Order, amount: int) -> None:
        taking = int(order.struct["takingAmount"]) * amount // max(order.making_amount, 1)
        order.fills.append(
            {
                "txHash": "0x" + self._hex(64),
                "filledMakerAmount": str(amount),
                "filledAuctionTakerAmount": str(taking),
                "takerFeeAmount": None,
            }
        )
        order.remaining -= amount

    def _hex(self, digits: int) -> str:
        return f"{self._rng.getrandbits(digits * 4):0{digits}x}"

    def _address(self) -> str:
        return "0x" + self._hex(40)

    def _uuid(self) -> str:
        h = self._hex(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    async def _random_flow(self) -> None:
        """Other makers' orders: created, partly filled, filled, cancelled, at random."""
        rng = self._rng
        while True:
            await asyncio.sleep(rng.expovariate(1 / self.order_interval))
            live = [o for o in self.orders.values() if o.random and o.status in ACTIVE_STATUSES]
            if len(live) < 3 or rng.random() < 0.4:
                making = rng.randrange(10**6, 10**12)
                self._create(
                    rng.choice(self.chains),
                    maker=self._address(),
                    maker_asset=rng.choice([USDC, WETH]),
                    taker_asset=rng.choice([WETH, USDC]),
                    making_amount=making,
                    taking_amount=making * rng.randrange(1, 10**6),
                    receiver=ZERO_ADDRESS,
                    lifetime=600.0,
                    is_maker_contract=False,
                    random_flow=True,
                )
                continue
            order = rng.choice(live)
            roll = rng.random()
            if roll < 0.4 and order.remaining > 1:
                self.fill_partially(order.order_hash, rng.randrange(1, order.remaining))
            elif roll < 0.75:
                self.fill(order.order_hash)
            elif roll < 0.9:
                self.cancel(order.order_hash)
            else:
                funds = rng.randrange(0, order.remaining * 2)
                self.balance_change(order.order_hash, funds, funds)
