"""Subscriptions and their lifecycle: create, change plan, pause, resume, cancel."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from billing_core import queries
from billing_core.api import models as m
from billing_core.api.auth import Caller, allow, allow_write
from billing_core.api.idempotency import run
from billing_core.api.routing import (
    BILLING,
    READERS,
    Limit,
    PathId,
    QueryId,
    StartingAfter,
    answer,
    page,
    read,
    responses,
)
from billing_core.context import BillingContext
from billing_core.services.cancel_subscription import cancel_subscription
from billing_core.services.change_plan import change_plan
from billing_core.services.create_subscription import create_subscription
from billing_core.services.pause_subscription import pause_subscription
from billing_core.services.resume_subscription import resume_subscription
from billing_core.subscriptions import SubscriptionStatus

router = APIRouter(prefix="/v1", tags=["subscriptions"])

Reader = Annotated[Caller, Depends(allow(*READERS))]
Writer = Annotated[Caller, Depends(allow_write(*BILLING))]


def _subscription(ctx: BillingContext, subscription_id: int) -> m.Subscription:
    with ctx.read() as conn:
        return m.Subscription.model_validate(queries.get_subscription(conn, subscription_id))


def _items(items: list[m.ItemIn]) -> list[dict[str, int]]:
    return [item.model_dump(exclude_none=True) for item in items]


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=m.Subscription,
    summary="Subscribe a customer",
    responses=responses(write=True),
)
def create(body: m.SubscriptionCreate, caller: Writer) -> Response:
    """Subscribe a customer to one or more prices (one currency, one interval). Unless a trial
    comes first, the first period is invoiced and charged at once (`invoice_now`); find the
    invoice with `GET /v1/invoices?subscription_id=`."""

    def action(ctx: BillingContext) -> m.Subscription:
        sub = create_subscription(
            ctx,
            customer_id=body.customer_id,
            items=_items(body.items),
            coupon_id=body.coupon_id,
            trial_days=body.trial_days,
            start_at=body.start_at,
            invoice_now=body.invoice_now,
        )
        return _subscription(ctx, sub.id)

    return run(caller, action, status_code=201, atomic=False)


@router.get(
    "/subscriptions", response_model=m.SubscriptionList, summary="List subscriptions", responses=responses()
)
def list_(
    caller: Reader,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    customer_id: QueryId = None,
    status: Annotated[SubscriptionStatus | None, Query()] = None,
) -> Response:
    rows = read(
        caller,
        lambda conn: queries.list_subscriptions(
            conn,
            limit=limit,
            starting_after=starting_after,
            customer_id=customer_id,
            status=status.value if status else None,
        ),
    )
    return page(m.SubscriptionList, m.Subscription, rows)


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=m.Subscription,
    summary="Get a subscription",
    responses=responses(),
)
def get(subscription_id: PathId, caller: Reader) -> Response:
    return answer(
        m.Subscription.model_validate(
            read(caller, lambda conn: queries.get_subscription(conn, subscription_id))
        )
    )


@router.post(
    "/subscriptions/{subscription_id}/change_plan",
    response_model=m.PlanChange,
    summary="Change a subscription's prices or quantities",
    responses=responses(write=True),
)
def change(subscription_id: PathId, body: m.PlanChangeIn, caller: Writer) -> Response:
    """`immediately` prorates on the customer's calendar (credit for the unused days of the old
    items, charge for the new ones) and invoices the net at once; `period_end` schedules the new
    items for the next renewal (a downgrade, typically)."""

    def action(ctx: BillingContext) -> m.PlanChange:
        result = change_plan(
            ctx, subscription_id=subscription_id, items=_items(body.items), effective=body.effective
        )
        return m.PlanChange(
            effective=result.effective,
            invoice_id=result.invoice_id,
            amount_due_minor=result.amount_due_minor,
            subscription=_subscription(ctx, subscription_id),
        )

    return run(caller, action, atomic=body.effective == "period_end")


@router.post(
    "/subscriptions/{subscription_id}/pause",
    response_model=m.Subscription,
    summary="Pause a subscription",
    responses=responses(write=True),
)
def pause(subscription_id: PathId, caller: Writer) -> Response:
    """The unused prepaid days are credited to the customer's balance and usage so far is
    invoiced; nothing is billed while paused."""

    def action(ctx: BillingContext) -> m.Subscription:
        pause_subscription(ctx, subscription_id=subscription_id)
        return _subscription(ctx, subscription_id)

    return run(caller, action, atomic=False)


@router.post(
    "/subscriptions/{subscription_id}/resume",
    response_model=m.Subscription,
    summary="Resume a paused subscription",
    responses=responses(write=True),
)
def resume(subscription_id: PathId, caller: Writer, body: m.ResumeIn | None = None) -> Response:
    """A fresh period starts today (paused days are never billed) and is invoiced at once unless
    `invoice_now` is false."""
    invoice_now = body.invoice_now if body is not None else True

    def action(ctx: BillingContext) -> m.Subscription:
        resume_subscription(ctx, subscription_id=subscription_id, invoice_now=invoice_now)
        return _subscription(ctx, subscription_id)

    return run(caller, action, atomic=False)


@router.post(
    "/subscriptions/{subscription_id}/cancel",
    response_model=m.Subscription,
    summary="Cancel a subscription, now or at the period end",
    responses=responses(write=True),
)
def cancel(subscription_id: PathId, caller: Writer, body: m.CancelIn | None = None) -> Response:
    """Now: a final invoice for usage so far (and, with `prorate`, a credit for unused prepaid
    days). At period end: nothing changes today; the next renewal issues the final invoice."""
    options = body or m.CancelIn()

    def action(ctx: BillingContext) -> m.Subscription:
        cancel_subscription(
            ctx, subscription_id=subscription_id, at_period_end=options.at_period_end, prorate=options.prorate
        )
        return _subscription(ctx, subscription_id)

    return run(caller, action, atomic=options.at_period_end)
