"""Helpers for dunning stories: a customer whose payment fails, and the engine run day by day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.dunning.policy import DunningPolicy
from billing_core.payments import DeclineCode, ScriptedGateway
from billing_core.services.create_price import create_price
from billing_core.services.create_subscription import create_subscription
from billing_core.services.run_dunning import DunningRunResult, run_dunning
from tests.scenarios.conftest import World


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@dataclass
class Dunning:
    """A world with a frozen clock and a scripted gateway, and ways to look at the engine's tables."""

    world: World
    clock: FrozenClock
    gateway: ScriptedGateway

    @property
    def ctx(self) -> BillingContext:
        return self.world.ctx

    def price(self, amount_minor: int, interval: str = "month", currency: str = "USD") -> int:
        return create_price(
            self.ctx,
            product_id=self.world.product_id,
            currency=currency,
            model="flat",
            interval=interval,
            unit_amount_minor=amount_minor,
        ).id

    def failing_subscription(
        self,
        decline: DeclineCode,
        *,
        amount_minor: int = 30_00,
        customer: int | None = None,
        interval: str = "month",
    ) -> tuple[int, int, int]:
        """A customer (or ``customer``) subscribed now, whose first payment is declined with ``decline``.

        Returns (customer id, subscription id, invoice id).
        """
        customer_id = customer if customer is not None else self.world.customer()
        price = self.price(amount_minor, interval)
        self.gateway.push(decline)
        sub = create_subscription(
            self.ctx, customer_id=customer_id, items=[{"price_id": price, "quantity": 1}]
        )
        invoice = self.world.invoices(customer_id)[-1]
        assert invoice["subscription_id"] == sub.id
        return customer_id, sub.id, invoice["id"]

    def run(
        self, day: datetime | None = None, policy: DunningPolicy | None = None, **kw: Any
    ) -> DunningRunResult:
        if day is not None:
            self.clock.set(day)
        return run_dunning(self.ctx, as_of=self.clock.now(), policy=policy, **kw)

    def run_days(self, start: datetime, days: range, **kw: Any) -> list[DunningRunResult]:
        return [self.run(start + timedelta(days=d), **kw) for d in days]

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.ctx.read() as conn:
            return Bulk(conn).query(sql, params)

    def process(self, invoice_id: int) -> dict[str, Any]:
        with self.ctx.read() as conn:
            from sqlalchemy import select

            from billing_core.db.schema_dunning import dunning_processes as p

            return dict(conn.execute(select(p).where(p.c.invoice_id == invoice_id)).mappings().one())

    def actions(self, invoice_id: int) -> list[tuple[int, str, str | None, str]]:
        """(day, action, channel, outcome) of the invoice's executed actions, in step order."""
        return [
            (day, action, channel, outcome)
            for day, action, channel, outcome in self.query(
                "SELECT day, action, channel, outcome FROM dunning_actions WHERE invoice_id = ? ORDER BY step",
                invoice_id,
            )
        ]

    def invoice(self, invoice_id: int) -> dict[str, Any]:
        rows = [i for i in self.world.invoices(self.world_customer(invoice_id)) if i["id"] == invoice_id]
        return rows[0]

    def world_customer(self, invoice_id: int) -> int:
        return int(self.query("SELECT customer_id FROM invoices WHERE id = ?", invoice_id)[0][0])

    def subscription_status(self, subscription_id: int) -> str:
        return str(self.world.subscription(subscription_id)["status"])

    def charges(self) -> int:
        """Charges the gateway was asked for (a repeated idempotency key is not a new charge)."""
        return len(self.gateway.requests)


@pytest.fixture
def world(ctx: BillingContext) -> World:
    from billing_core.services.create_product import create_product

    return World(ctx, create_product(ctx, name="Recoup Cloud").id)


@pytest.fixture
def dunning(world: World, clock: FrozenClock, gateway: ScriptedGateway) -> Dunning:
    return Dunning(world, clock, gateway)
