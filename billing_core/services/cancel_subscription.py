"""Use case: cancel a subscription, now or at the end of the current period.

At period end: nothing changes today; at the next renewal the billing run issues a final invoice
for the usage of the last period and the subscription is canceled. Now: the subscription is
canceled at once, with a final invoice for the usage so far and waiting one-time charges, and,
with ``prorate=True``, a credit to the customer's balance for the unused prepaid days.
"""

from __future__ import annotations

from sqlalchemy import delete, update

from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.db import schema as t
from billing_core.invoices import BillingReason
from billing_core.services._common import emit_status_change, write_one
from billing_core.services.collect_payments import collect_payments
from billing_core.services.pause_subscription import stop_plan
from billing_core.subscriptions import SUBSCRIPTION_LIFECYCLE, Subscription, SubscriptionEvent


def cancel_subscription(
    ctx: BillingContext, *, subscription_id: int, at_period_end: bool = False, prorate: bool = False
) -> Subscription:
    attempt_id = None
    with ctx.transaction() as tx:
        sub = repository.get_subscription(tx.conn, subscription_id, lock=True)
        if at_period_end:
            SUBSCRIPTION_LIFECYCLE.next(sub.status, SubscriptionEvent.SCHEDULE_CANCEL, entity_id=sub.id)
            tx.conn.execute(
                update(t.subscriptions)
                .where(t.subscriptions.c.id == sub.id)
                .values(cancel_at_period_end=True, canceled_at=tx.now, updated_at=tx.now)
            )
            tx.conn.execute(
                delete(t.subscription_pending_changes).where(
                    t.subscription_pending_changes.c.subscription_id == sub.id
                )
            )
            tx.emit(
                "subscription.cancel_scheduled",
                "subscription",
                sub.id,
                subscription_id=sub.id,
                ends_at=sub.next_invoice_at.isoformat() if sub.next_invoice_at else None,
            )
        else:
            target = SUBSCRIPTION_LIFECYCLE.next(sub.status, SubscriptionEvent.CANCEL, entity_id=sub.id)
            plan = stop_plan(tx, sub, credit_unused=prorate, reason=BillingReason.SUBSCRIPTION_FINAL)
            invoice_id = None
            if plan is not None:
                written = write_one(tx, ctx, plan, source="cancel")
                invoice_id, attempt_id = written.invoice_id, written.attempt_id
            tx.conn.execute(
                update(t.subscriptions)
                .where(t.subscriptions.c.id == sub.id)
                .values(
                    status=target.value,
                    canceled_at=tx.now,
                    ended_at=tx.now,
                    next_invoice_at=None,
                    usage_billed_until=tx.now,
                    updated_at=tx.now,
                )
            )
            tx.conn.execute(
                delete(t.subscription_pending_changes).where(
                    t.subscription_pending_changes.c.subscription_id == sub.id
                )
            )
            emit_status_change(
                tx,
                sub,
                target,
                "canceled",
                invoice_id=invoice_id,
                prorated=prorate,
            )
    if attempt_id is not None:
        collect_payments(ctx, attempt_ids=[attempt_id])
    with ctx.read() as conn:
        return repository.get_subscription(conn, subscription_id)
