"""Use case: charge a customer once, on the next renewal of a subscription or right now."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert

from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.db import schema as t
from billing_core.db.repository import inserted_id
from billing_core.errors import CurrencyMismatch, InvalidInput
from billing_core.invoices import BillingReason
from billing_core.invoicing import InvoicePlan, OneTimeCharge, PricingCache, one_time_lines
from billing_core.money import check_minor, currency
from billing_core.services._common import LIVE_STATUSES, write_one
from billing_core.services.collect_payments import collect_payments


@dataclass(frozen=True)
class OneTimeChargeResult:
    charge_id: int
    invoice_id: int | None


def add_one_time_charge(
    ctx: BillingContext,
    *,
    customer_id: int,
    description: str,
    unit_amount_minor: int,
    currency_code: str,
    quantity: int = 1,
    subscription_id: int | None = None,
) -> OneTimeChargeResult:
    """With ``subscription_id`` the charge waits for that subscription's next invoice; without
    it, it is invoiced (and the payment attempted) at once."""
    if not isinstance(description, str) or not description.strip():
        raise InvalidInput("description", "a non-empty description", description)
    amount = check_minor(unit_amount_minor, "unit_amount_minor")
    if amount <= 0:
        raise InvalidInput("unit_amount_minor", "an amount of minor units > 0", amount)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise InvalidInput("quantity", "a whole number >= 1", quantity)
    cur = currency(currency_code)
    attempt_id = None
    invoice_id = None
    with ctx.transaction() as tx:
        customer = repository.get_customer(tx.conn, customer_id)
        if cur.code != customer.currency:
            raise CurrencyMismatch("currency_code", f"the customer's currency {customer.currency}", cur.code)
        if subscription_id is not None:
            sub = repository.get_subscription(tx.conn, subscription_id)
            if sub.customer_id != customer.id:
                raise InvalidInput(
                    "subscription_id", f"a subscription of customer {customer.id}", subscription_id
                )
            if sub.status not in LIVE_STATUSES or sub.next_invoice_at is None:
                raise InvalidInput("subscription_id", "a subscription with a next renewal", subscription_id)
            # a billing run planning this subscription's renewal right now must plan it again
            tx.bulk.execute(
                "UPDATE subscriptions SET updated_at = ? WHERE id = ?",
                (tx.bulk.instant(tx.now), subscription_id),
            )
        charge_id = inserted_id(
            tx.conn.execute(
                insert(t.one_time_charges).values(
                    customer_id=customer.id,
                    subscription_id=subscription_id,
                    description=description.strip(),
                    quantity=quantity,
                    unit_amount_minor=amount,
                    currency=cur.code,
                    created_at=tx.now,
                )
            )
        )
        tx.emit(
            "one_time_charge.created",
            "customer",
            customer.id,
            charge_id=charge_id,
            customer_id=customer.id,
            subscription_id=subscription_id,
            amount_minor=amount * quantity,
            currency=cur.code,
            description=description.strip(),
        )
        if subscription_id is None:
            charge = OneTimeCharge(charge_id, description.strip(), quantity, amount, cur.code)
            lines = one_time_lines([charge], None)
            tax_rate = (
                repository.get_tax_rate(tx.conn, customer.tax_rate_id) if customer.tax_rate_id else None
            )
            totals = PricingCache().assemble(cur, lines, None, tax_rate, customer.balance_minor)
            written = write_one(
                tx,
                ctx,
                InvoicePlan(
                    customer_id=customer.id,
                    subscription_id=None,
                    currency=cur,
                    reason=BillingReason.MANUAL,
                    period_start=None,
                    period_end=None,
                    lines=lines,
                    totals=totals,
                    payment_method_id=customer.default_payment_method_id,
                    one_time_charge_ids=(charge_id,),
                ),
                source="manual",
            )
            invoice_id, attempt_id = written.invoice_id, written.attempt_id
    if attempt_id is not None:
        collect_payments(ctx, attempt_ids=[attempt_id])
    return OneTimeChargeResult(charge_id, invoice_id)
