"""Use case: create a customer."""

from __future__ import annotations

from sqlalchemy import insert, select

from billing_core.context import BillingContext
from billing_core.customers import Customer, validate_customer, validate_signup_context
from billing_core.db import repository
from billing_core.db import schema as t
from billing_core.db.repository import inserted_id
from billing_core.errors import IdempotencyConflict


def create_customer(
    ctx: BillingContext,
    *,
    email: str,
    name: str,
    currency: str,
    timezone: str = "UTC",
    country: str = "US",
    language: str = "en",
    billing_anchor_day: int | None = None,
    tax_rate_id: int | None = None,
    external_id: str | None = None,
    signup_channel: str | None = None,
    signup_ip: str | None = None,
    signup_device_id: str | None = None,
    signup_ip_country: str | None = None,
) -> Customer:
    """Create a customer. With an ``external_id`` already on file, return that customer.

    ``signup_channel``, ``signup_ip``, ``signup_ip_country`` and ``signup_device_id`` record where
    the customer signed up from (for the fraud screen); each is optional, and the ``customer.created`` event carries the
    ones given.
    """
    values = validate_customer(
        email=email,
        name=name,
        currency_code=currency,
        timezone=timezone,
        country=country,
        language=language,
        billing_anchor_day=billing_anchor_day,
        external_id=external_id,
    )
    context = validate_signup_context(
        signup_channel=signup_channel,
        signup_ip=signup_ip,
        signup_device_id=signup_device_id,
        signup_ip_country=signup_ip_country,
    )
    with ctx.transaction() as tx:
        if external_id is not None:
            existing = (
                tx.conn.execute(select(t.customers).where(t.customers.c.external_id == external_id))
                .mappings()
                .first()
            )
            if existing is not None:
                if existing["email"] != email or existing["currency"] != values["currency"]:
                    raise IdempotencyConflict(
                        "external_id", "a new external_id, or the same email and currency", external_id
                    )
                return repository.customer_from_row(existing)
        if tax_rate_id is not None:
            repository.get_tax_rate(tx.conn, tax_rate_id)
        customer_id = inserted_id(
            tx.conn.execute(
                insert(t.customers).values(
                    **values,
                    **context,
                    tax_rate_id=tax_rate_id,
                    balance_minor=0,
                    created_at=tx.now,
                    updated_at=tx.now,
                )
            )
        )
        tx.emit(
            "customer.created",
            "customer",
            customer_id,
            customer_id=customer_id,
            currency=values["currency"],
            country=values["country"],
            timezone=values["timezone"],
            language=values["language"],
            tax_rate_id=tax_rate_id,
            **{name: value for name, value in context.items() if value is not None},
        )
        return repository.get_customer(tx.conn, customer_id)
