"""Use case: attach a card to a customer (and make it the default)."""

from __future__ import annotations

import hashlib

from sqlalchemy import insert, update

from billing_core.context import BillingContext
from billing_core.customers import PaymentMethod, validate_card
from billing_core.db import repository
from billing_core.db import schema as t
from billing_core.db.repository import inserted_id


def add_payment_method(
    ctx: BillingContext,
    *,
    customer_id: int,
    brand: str,
    bin: str,
    last4: str,
    exp_month: int,
    exp_year: int,
    fingerprint: str | None = None,
    make_default: bool = True,
) -> PaymentMethod:
    values = validate_card(brand=brand, bin=bin, last4=last4, exp_month=exp_month, exp_year=exp_year)
    with ctx.transaction() as tx:
        customer = repository.get_customer(tx.conn, customer_id, lock=True)
        print_ = (
            fingerprint
            or hashlib.sha256(f"{customer.id}:{bin}:{last4}:{exp_month}:{exp_year}".encode()).hexdigest()[:32]
        )
        pm_id = inserted_id(
            tx.conn.execute(
                insert(t.payment_methods).values(
                    customer_id=customer.id,
                    brand=str(values["brand"]),
                    bin=bin,
                    last4=last4,
                    exp_month=exp_month,
                    exp_year=exp_year,
                    fingerprint=print_,
                    created_at=tx.now,
                )
            )
        )
        if make_default:
            tx.conn.execute(
                update(t.customers)
                .where(t.customers.c.id == customer.id)
                .values(default_payment_method_id=pm_id, updated_at=tx.now)
            )
        tx.emit(
            "payment_method.attached",
            "customer",
            customer.id,
            customer_id=customer.id,
            payment_method_id=pm_id,
            brand=str(values["brand"]),
            bin=bin,
            last4=last4,
            exp_month=exp_month,
            exp_year=exp_year,
            default=make_default,
        )
        return repository.get_payment_method(tx.conn, pm_id)
