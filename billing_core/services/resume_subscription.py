"""Use case: resume a paused subscription; a fresh period starts on the resume day.

The anchor moves to the moment of resumption, so the days spent paused are never billed; the
new period is invoiced at once (the credit for the unused days before the pause pays for it
first). See ``pause_subscription`` for the whole story.
"""

from __future__ import annotations

from sqlalchemy import update

from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.db import schema as t
from billing_core.errors import InvalidInput
from billing_core.periods import Schedule
from billing_core.services._common import emit_status_change
from billing_core.subscriptions import SUBSCRIPTION_LIFECYCLE, Subscription, SubscriptionEvent


def resume_subscription(
    ctx: BillingContext, *, subscription_id: int, invoice_now: bool = True
) -> Subscription:
    with ctx.transaction() as tx:
        sub = repository.get_subscription(tx.conn, subscription_id, lock=True)
        target = SUBSCRIPTION_LIFECYCLE.next(sub.status, SubscriptionEvent.RESUME, entity_id=sub.id)
        if sub.paused_at is not None and tx.now <= sub.paused_at:
            # the fresh period would start where a billed one did: (subscription, period start) is unique
            raise InvalidInput(
                "resumed_at", f"an instant after the pause at {sub.paused_at.isoformat()}", tx.now.isoformat()
            )
        schedule = Schedule(tx.now, sub.tz_name, sub.months_per_period, sub.started_at)
        start, end = schedule.period(0)
        tx.conn.execute(
            update(t.subscriptions)
            .where(t.subscriptions.c.id == sub.id)
            .values(
                status=target.value,
                anchor_at=tx.now,
                next_period_index=0,
                next_invoice_at=start,
                current_period_start=start,
                current_period_end=end,
                paused_at=None,
                usage_billed_until=tx.now,
                updated_at=tx.now,
            )
        )
        emit_status_change(
            tx,
            sub,
            target,
            "resumed",
            paused_at=sub.paused_at.isoformat() if sub.paused_at else None,
        )
    if invoice_now:
        from billing_core.services.billing_run import run_billing

        run_billing(ctx, as_of=ctx.clock.now(), subscription_ids=[subscription_id])
    with ctx.read() as conn:
        return repository.get_subscription(conn, subscription_id)
