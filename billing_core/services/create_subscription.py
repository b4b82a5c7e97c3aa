"""Use case: subscribe a customer to one or more prices."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert

from billing_core.clock import utc
from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.db import schema as t
from billing_core.db.repository import inserted_id
from billing_core.errors import CurrencyMismatch, InvalidInput
from billing_core.periods import Schedule, first_anchor
from billing_core.services._common import (
    check_metric_not_taken,
    items_json,
    metered_codes,
    parse_items,
)
from billing_core.subscriptions import Subscription, SubscriptionStatus


def create_subscription(
    ctx: BillingContext,
    *,
    customer_id: int,
    items: list[dict[str, int]],
    coupon_id: int | None = None,
    trial_days: int | None = None,
    start_at: datetime | None = None,
    invoice_now: bool = True,
) -> Subscription:
    """Start a subscription; its first period is invoiced at once unless a trial comes first.

    ``trial_days`` defaults to the longest trial of the prices. The billing anchor is the
    customer's ``billing_anchor_day`` when set (the first period is then prorated to it), else
    the start. With ``invoice_now`` the first invoice is issued and paid right after the
    subscription is committed (the billing run would do it anyway).
    """
    with ctx.transaction() as tx:
        customer = repository.get_customer(tx.conn, customer_id)
        parsed, prices = parse_items(tx.conn, items, currency_code=customer.currency)
        check_metric_not_taken(tx.conn, customer.id, metered_codes(parsed, prices))
        coupon = repository.get_coupon(tx.conn, coupon_id) if coupon_id is not None else None
        if coupon is not None and coupon.currency is not None and coupon.currency.code != customer.currency:
            raise CurrencyMismatch("coupon_id", f"a coupon in {customer.currency}", coupon.currency.code)
        days = max(p.trial_days for p in prices.values()) if trial_days is None else trial_days
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 730:
            raise InvalidInput("trial_days", "a whole number of days between 0 and 730", trial_days)
        start = utc(start_at, "start_at") if start_at is not None else tx.now
        trial_end = start + timedelta(days=days) if days else None
        anchor = first_anchor(start, customer.timezone, customer.billing_anchor_day, trial_end)
        months = next(iter(prices.values())).months_per_period
        schedule = Schedule(anchor, customer.timezone, months, start)
        first = -1 if anchor > start and trial_end is None else 0
        status = SubscriptionStatus.TRIALING if trial_end else SubscriptionStatus.ACTIVE
        period = (start, trial_end) if trial_end else schedule.period(first)
        sub_id = inserted_id(
            tx.conn.execute(
                insert(t.subscriptions).values(
                    customer_id=customer.id,
                    status=status.value,
                    currency=customer.currency,
                    tz_name=customer.timezone,
                    months_per_period=months,
                    started_at=start,
                    anchor_at=anchor,
                    trial_end=trial_end,
                    next_period_index=first,
                    next_invoice_at=schedule.boundary(first),
                    current_period_start=period[0],
                    current_period_end=period[1],
                    coupon_id=coupon.id if coupon else None,
                    usage_billed_until=trial_end or start,
                    created_at=tx.now,
                    updated_at=tx.now,
                )
            )
        )
        tx.conn.execute(
            insert(t.subscription_items),
            [{"subscription_id": sub_id, "price_id": i.price_id, "quantity": i.quantity} for i in parsed],
        )
        tx.emit(
            "subscription.created",
            "subscription",
            sub_id,
            subscription_id=sub_id,
            customer_id=customer.id,
            status=status.value,
            currency=customer.currency,
            items=items_json(parsed),
            trial_end=trial_end.isoformat() if trial_end else None,
            started_at=start.isoformat(),
            coupon_id=coupon.id if coupon else None,
        )
    if invoice_now and status is SubscriptionStatus.ACTIVE:
        from billing_core.services.billing_run import run_billing

        run_billing(ctx, as_of=max(ctx.clock.now(), start), subscription_ids=[sub_id])
    with ctx.read() as conn:
        return repository.get_subscription(conn, sub_id)
