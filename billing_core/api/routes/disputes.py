"""Disputes: a customer contests an invoice or a payment; finance reviews and resolves."""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from billing_core import queries
from billing_core.api import models as m
from billing_core.api.auth import Caller, allow, allow_write
from billing_core.api.idempotency import run
from billing_core.api.routing import (
    BILLING_AND_FINANCE,
    FINANCE,
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
from billing_core.disputes import DisputeStatus
from billing_core.services.advance_dispute import (
    categorize_dispute,
    resolve_dispute,
    review_dispute,
    withdraw_dispute,
)
from billing_core.services.open_dispute import open_dispute

router = APIRouter(prefix="/v1", tags=["disputes"])

Reader = Annotated[Caller, Depends(allow(*READERS))]


def _then_read(
    dispute_id: int, change: Callable[[BillingContext], object]
) -> Callable[[BillingContext], m.Dispute]:
    def action(ctx: BillingContext) -> m.Dispute:
        change(ctx)
        with ctx.read() as conn:
            return m.Dispute.model_validate(queries.get_dispute(conn, dispute_id))

    return action


@router.post(
    "/disputes",
    status_code=201,
    response_model=m.Dispute,
    summary="Open a dispute",
    responses=responses(write=True),
)
def open_(
    body: m.DisputeCreate, caller: Annotated[Caller, Depends(allow_write(*BILLING_AND_FINANCE))]
) -> Response:
    """Against an invoice or a payment (exactly one), in the customer's own words."""

    def action(ctx: BillingContext) -> m.Dispute:
        dispute = open_dispute(ctx, **body.model_dump())
        with ctx.read() as conn:
            return m.Dispute.model_validate(queries.get_dispute(conn, dispute.id))

    return run(caller, action, status_code=201)


@router.get("/disputes", response_model=m.DisputeList, summary="List disputes", responses=responses())
def list_(
    caller: Reader,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    customer_id: QueryId = None,
    status: Annotated[DisputeStatus | None, Query()] = None,
) -> Response:
    rows = read(
        caller,
        lambda conn: queries.list_disputes(
            conn,
            limit=limit,
            starting_after=starting_after,
            customer_id=customer_id,
            status=status.value if status else None,
        ),
    )
    return page(m.DisputeList, m.Dispute, rows)


@router.get(
    "/disputes/{dispute_id}", response_model=m.Dispute, summary="Get a dispute", responses=responses()
)
def get(dispute_id: PathId, caller: Reader) -> Response:
    return answer(m.Dispute.model_validate(read(caller, lambda conn: queries.get_dispute(conn, dispute_id))))


@router.post(
    "/disputes/{dispute_id}/review",
    response_model=m.Dispute,
    summary="Take a dispute into review",
    responses=responses(write=True),
)
def review(
    dispute_id: PathId,
    caller: Annotated[Caller, Depends(allow_write(*FINANCE))],
    body: m.DisputeReview | None = None,
) -> Response:
    category = body.category if body is not None else None
    return run(
        caller,
        _then_read(dispute_id, lambda ctx: review_dispute(ctx, dispute_id=dispute_id, category=category)),
    )


@router.post(
    "/disputes/{dispute_id}/categorize",
    response_model=m.Dispute,
    summary="Set or correct a dispute's category",
    responses=responses(write=True),
)
def categorize(
    dispute_id: PathId,
    body: m.DisputeCategorize,
    caller: Annotated[Caller, Depends(allow_write(*BILLING_AND_FINANCE))],
) -> Response:
    """By a person, or by the dispute classifier (a service key)."""
    return run(
        caller,
        _then_read(
            dispute_id, lambda ctx: categorize_dispute(ctx, dispute_id=dispute_id, category=body.category)
        ),
    )


@router.post(
    "/disputes/{dispute_id}/resolve",
    response_model=m.Dispute,
    summary="Resolve a dispute",
    responses=responses(write=True),
)
def resolve(
    dispute_id: PathId, body: m.DisputeResolve, caller: Annotated[Caller, Depends(allow_write(*FINANCE))]
) -> Response:
    """With an outcome: `refunded`, `credited` (issue the refund or credit note apart) or `upheld`."""
    return run(
        caller,
        _then_read(
            dispute_id,
            lambda ctx: resolve_dispute(ctx, dispute_id=dispute_id, outcome=body.outcome, note=body.note),
        ),
    )


@router.post(
    "/disputes/{dispute_id}/withdraw",
    response_model=m.Dispute,
    summary="Withdraw a dispute",
    responses=responses(write=True),
)
def withdraw(
    dispute_id: PathId,
    caller: Annotated[Caller, Depends(allow_write(*BILLING_AND_FINANCE))],
    body: m.DisputeWithdraw | None = None,
) -> Response:
    """The customer takes the dispute back."""
    note = body.note if body is not None else ""
    return run(
        caller, _then_read(dispute_id, lambda ctx: withdraw_dispute(ctx, dispute_id=dispute_id, note=note))
    )
