"""Use case: change a subscription's prices or quantities, now or at the period end.

``effective="immediately"`` (an upgrade, typically) prorates on the customer's calendar: a
credit for the unused days of the current period on the old items, a charge for the same days
on the new ones, and the metered usage so far on the old items. The net is invoiced at once; a
net credit goes to the customer's balance. The subscription's coupon, if it still applies,
reduces the proration too, without being used up. ``effective="period_end"`` (a downgrade,
typically) schedules the new items for the next renewal and changes nothing today.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, insert

from billing_core.catalog import Price
from billing_core.context import BillingContext, Tx
from billing_core.db import repository
from billing_core.db import schema as t
from billing_core.errors import InvalidInput
from billing_core.invoices import BillingReason, LineDraft
from billing_core.invoicing import (
    InvoicePlan,
    PricingCache,
    current_period_prepaid,
    proration_lines,
)
from billing_core.money import currency
from billing_core.services._common import (
    accrued_usage_lines,
    check_metric_not_taken,
    items_json,
    metered_codes,
    parse_items,
    write_one,
)
from billing_core.services.collect_payments import collect_payments
from billing_core.subscriptions import (
    SUBSCRIPTION_LIFECYCLE,
    Subscription,
    SubscriptionEvent,
    SubscriptionItem,
)


@dataclass(frozen=True)
class PlanChange:
    subscription: Subscription
    effective: str
    invoice_id: int | None = None
    amount_due_minor: int = 0


def change_plan(
    ctx: BillingContext,
    *,
    subscription_id: int,
    items: list[dict[str, int]],
    effective: str = "immediately",
) -> PlanChange:
    if effective not in ("immediately", "period_end"):
        raise InvalidInput("effective", "immediately or period_end", effective)
    attempt_id = None
    invoice_id = None
    due = 0
    with ctx.transaction() as tx:
        sub = repository.get_subscription(tx.conn, subscription_id, lock=True)
        SUBSCRIPTION_LIFECYCLE.next(sub.status, SubscriptionEvent.CHANGE_PLAN, entity_id=sub.id)
        if sub.cancel_at_period_end:
            raise InvalidInput(
                "subscription.cancel_at_period_end", "false (a subscription that is not ending)", True
            )
        new_items, new_prices = parse_items(tx.conn, items, currency_code=sub.currency)
        months = next(iter(new_prices.values())).months_per_period
        if months != sub.months_per_period:
            raise InvalidInput(
                "items[0].price_id",
                f"a price billed every {sub.months_per_period} month(s), like the subscription",
                f"every {months} month(s)",
            )
        check_metric_not_taken(
            tx.conn, sub.customer_id, metered_codes(new_items, new_prices), exclude_subscription=sub.id
        )
        tx.conn.execute(
            delete(t.subscription_pending_changes).where(
                t.subscription_pending_changes.c.subscription_id == sub.id
            )
        )
        if effective == "period_end":
            if sub.next_invoice_at is None:
                raise InvalidInput(
                    "effective", "immediately (the subscription has no next renewal)", effective
                )
            tx.conn.execute(
                insert(t.subscription_pending_changes).values(
                    subscription_id=sub.id,
                    effective_at=sub.next_invoice_at,
                    items=json.dumps(items_json(new_items)),
                    created_at=tx.now,
                )
            )
            tx.emit(
                "subscription.plan_change_scheduled",
                "subscription",
                sub.id,
                subscription_id=sub.id,
                effective_at=sub.next_invoice_at.isoformat(),
                items=items_json(new_items),
            )
        else:
            old_prices = repository.load_prices(tx.conn, [i.price_id for i in sub.items])
            plan = _proration_plan(tx, sub, old_prices, new_items, new_prices)
            if plan is not None:
                written = write_one(tx, ctx, plan, source="plan_change")
                invoice_id, attempt_id, due = written.invoice_id, written.attempt_id, written.amount_due_minor
                tx.bulk.execute(
                    "UPDATE subscriptions SET usage_billed_until = ?, updated_at = ? WHERE id = ?",
                    (tx.bulk.instant(tx.now), tx.bulk.instant(tx.now), sub.id),
                )
            tx.conn.execute(
                delete(t.subscription_items).where(t.subscription_items.c.subscription_id == sub.id)
            )
            tx.conn.execute(
                insert(t.subscription_items),
                [
                    {"subscription_id": sub.id, "price_id": i.price_id, "quantity": i.quantity}
                    for i in new_items
                ],
            )
            tx.emit(
                "subscription.plan_changed",
                "subscription",
                sub.id,
                subscription_id=sub.id,
                effective="immediately",
                items=items_json(new_items),
                previous_items=items_json(sub.items),
                invoice_id=invoice_id,
            )
    if attempt_id is not None:
        collect_payments(ctx, attempt_ids=[attempt_id])
    with ctx.read() as conn:
        return PlanChange(repository.get_subscription(conn, subscription_id), effective, invoice_id, due)


def _proration_plan(
    tx: Tx,
    sub: Subscription,
    old_prices: dict[int, Price],
    new_items: tuple[SubscriptionItem, ...],
    new_prices: dict[int, Price],
) -> InvoicePlan | None:
    """Credit for unused days on the old items, charge on the new, usage so far; None if nothing."""
    cache = PricingCache()
    lines: list[LineDraft] = []
    if current_period_prepaid(sub):
        lines += proration_lines(sub, sub.items, old_prices, at=tx.now, credit=True, cache=cache)
        lines += proration_lines(sub, new_items, new_prices, at=tx.now, credit=False, cache=cache)
    lines += accrued_usage_lines(tx, sub, old_prices, cache)
    if not lines:
        return None
    cur = currency(sub.currency)
    customer = repository.get_customer(tx.conn, sub.customer_id)
    coupon = repository.get_coupon(tx.conn, sub.coupon_id) if sub.coupon_id else None
    use_coupon = coupon if coupon is not None and coupon.applies_to_invoice(sub.discounted_invoices) else None
    tax_rate = repository.get_tax_rate(tx.conn, customer.tax_rate_id) if customer.tax_rate_id else None
    totals = cache.assemble(cur, lines, use_coupon, tax_rate, customer.balance_minor)
    return InvoicePlan(
        customer_id=sub.customer_id,
        subscription_id=sub.id,
        currency=cur,
        reason=BillingReason.SUBSCRIPTION_UPDATE,
        period_start=None,
        period_end=None,
        lines=lines,
        totals=totals,
        payment_method_id=customer.default_payment_method_id,
    )
