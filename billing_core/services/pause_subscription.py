"""Use case: pause a subscription; its unused days are credited and paused days never billed.

Pausing at ``P`` within a period ``[S, E)`` that was billed in advance credits the unused days
``[P, E)`` of the licensed items to the customer's balance and invoices the metered usage up to
``P``. Nothing is billed while paused. Resuming at ``R`` starts a fresh period at ``R`` (the
anchor moves to the resume day), so the paused days are never back-billed, and the credit
pays for the first days after the pause.
"""

from __future__ import annotations

from sqlalchemy import update

from billing_core.context import BillingContext, Tx
from billing_core.db import repository
from billing_core.db import schema as t
from billing_core.invoices import BillingReason, LineDraft
from billing_core.invoicing import (
    InvoicePlan,
    OneTimeCharge,
    PricingCache,
    current_period_prepaid,
    one_time_lines,
    proration_lines,
)
from billing_core.money import currency
from billing_core.services._common import accrued_usage_lines, emit_status_change, write_one
from billing_core.services.collect_payments import collect_payments
from billing_core.subscriptions import SUBSCRIPTION_LIFECYCLE, Subscription, SubscriptionEvent


def pause_subscription(ctx: BillingContext, *, subscription_id: int) -> Subscription:
    attempt_id = None
    with ctx.transaction() as tx:
        sub = repository.get_subscription(tx.conn, subscription_id, lock=True)
        target = SUBSCRIPTION_LIFECYCLE.next(sub.status, SubscriptionEvent.PAUSE, entity_id=sub.id)
        plan = stop_plan(tx, sub, credit_unused=True, reason=BillingReason.SUBSCRIPTION_UPDATE)
        invoice_id = None
        if plan is not None:
            written = write_one(tx, ctx, plan, source="pause")
            invoice_id, attempt_id = written.invoice_id, written.attempt_id
        tx.conn.execute(
            update(t.subscriptions)
            .where(t.subscriptions.c.id == sub.id)
            .values(
                status=target.value,
                paused_at=tx.now,
                next_invoice_at=None,
                usage_billed_until=tx.now,
                updated_at=tx.now,
            )
        )
        emit_status_change(
            tx,
            sub,
            target,
            "paused",
            invoice_id=invoice_id,
        )
    if attempt_id is not None:
        collect_payments(ctx, attempt_ids=[attempt_id])
    with ctx.read() as conn:
        return repository.get_subscription(conn, subscription_id)


def stop_plan(tx: Tx, sub: Subscription, *, credit_unused: bool, reason: BillingReason) -> InvoicePlan | None:
    """The invoice for stopping now: usage so far, and credit for unused prepaid days if asked.

    One-time charges still waiting for this subscription are invoiced with it.
    """
    prices = repository.load_prices(tx.conn, [i.price_id for i in sub.items])
    cache = PricingCache()
    cur = currency(sub.currency)
    lines: list[LineDraft] = []
    if credit_unused and current_period_prepaid(sub):
        lines += proration_lines(sub, sub.items, prices, at=tx.now, credit=True, cache=cache)
    lines += accrued_usage_lines(tx, sub, prices, cache)
    charges = pending_one_time(tx, sub.id)
    lines += one_time_lines(charges, sub.id)
    if not lines:
        return None
    customer = repository.get_customer(tx.conn, sub.customer_id)
    tax_rate = repository.get_tax_rate(tx.conn, customer.tax_rate_id) if customer.tax_rate_id else None
    totals = cache.assemble(cur, lines, None, tax_rate, customer.balance_minor)
    return InvoicePlan(
        customer_id=sub.customer_id,
        subscription_id=sub.id,
        currency=cur,
        reason=reason,
        period_start=None,
        period_end=None,
        lines=lines,
        totals=totals,
        payment_method_id=customer.default_payment_method_id,
        one_time_charge_ids=tuple(c.id for c in charges),
    )


def pending_one_time(tx: Tx, subscription_id: int) -> list[OneTimeCharge]:
    return [
        OneTimeCharge(charge_id, description, quantity, unit, code)
        for charge_id, description, quantity, unit, code in tx.bulk.query(
            "SELECT id, description, quantity, unit_amount_minor, currency FROM one_time_charges"
            " WHERE subscription_id = ? AND invoice_id IS NULL ORDER BY id",
            (subscription_id,),
        )
    ]
