"""Helpers for dated stories: a small catalog, customers with cards, and reading invoices back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from billing_core.context import BillingContext
from billing_core.db import schema as t
from billing_core.services.add_payment_method import add_payment_method
from billing_core.services.create_customer import create_customer
from billing_core.services.create_product import create_product


@dataclass
class World:
    ctx: BillingContext
    product_id: int

    def customer(self, currency: str = "USD", timezone: str = "UTC", **kwargs: Any) -> int:
        c = create_customer(
            self.ctx,
            email=f"c{id(kwargs)}@example.com",
            name="Customer",
            currency=currency,
            timezone=timezone,
            **kwargs,
        )
        add_payment_method(
            self.ctx, customer_id=c.id, brand="visa", bin="424242", last4="4242", exp_month=12, exp_year=2030
        )
        return c.id

    def invoices(self, customer_id: int) -> list[dict[str, Any]]:
        with self.ctx.read() as conn:
            rows = (
                conn.execute(
                    select(t.invoices)
                    .where(t.invoices.c.customer_id == customer_id)
                    .order_by(t.invoices.c.id)
                )
                .mappings()
                .all()
            )
            out = []
            for row in rows:
                lines = (
                    conn.execute(
                        select(t.invoice_lines)
                        .where(t.invoice_lines.c.invoice_id == row["id"])
                        .order_by(t.invoice_lines.c.position)
                    )
                    .mappings()
                    .all()
                )
                out.append({**row, "lines": [dict(line) for line in lines]})
            return out

    def subscription(self, subscription_id: int) -> dict[str, Any]:
        with self.ctx.read() as conn:
            return dict(
                conn.execute(select(t.subscriptions).where(t.subscriptions.c.id == subscription_id))
                .mappings()
                .one()
            )

    def balance(self, customer_id: int) -> int:
        with self.ctx.read() as conn:
            return int(
                conn.execute(
                    select(t.customers.c.balance_minor).where(t.customers.c.id == customer_id)
                ).scalar_one()
            )

    def events(self, event_type: str) -> list[dict[str, Any]]:
        with self.ctx.read() as conn:
            return [
                dict(r)
                for r in conn.execute(
                    select(t.outbox).where(t.outbox.c.event_type == event_type).order_by(t.outbox.c.seq)
                ).mappings()
            ]


@pytest.fixture
def world(ctx: BillingContext) -> World:
    return World(ctx, create_product(ctx, name="Recoup Cloud").id)
