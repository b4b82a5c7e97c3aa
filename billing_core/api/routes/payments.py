"""Payments, refunds, chargebacks and credit notes."""

import hashlib
import uuid
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
from billing_core.payments import ChargebackStatus
from billing_core.services.close_chargeback import close_chargeback
from billing_core.services.issue_credit_note import issue_credit_note
from billing_core.services.record_chargeback import record_chargeback
from billing_core.services.refund_payment import refund_payment

router = APIRouter(prefix="/v1")

Reader = Annotated[Caller, Depends(allow(*READERS))]


def gateway_key(caller: Caller, given: str | None) -> str:
    """The key a refund carries to the gateway: the one given, else derived from the request's
    ``Idempotency-Key`` (so that a retried request refunds once), else a fresh one."""
    if given is not None:
        return given
    if caller.idempotency_key is not None:
        digest = hashlib.sha256(f"{caller.principal.key_id}:{caller.idempotency_key}".encode()).hexdigest()
        return f"api-{digest[:48]}"
    return f"api-{uuid.uuid4().hex}"


# ------------------------------------------------------------------------------------- payments


@router.get(
    "/payments",
    response_model=m.PaymentList,
    summary="List payments",
    responses=responses(),
    tags=["payments"],
)
def list_payments(
    caller: Reader,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    customer_id: QueryId = None,
    invoice_id: QueryId = None,
) -> Response:
    rows = read(
        caller,
        lambda conn: queries.list_payments(
            conn, limit=limit, starting_after=starting_after, customer_id=customer_id, invoice_id=invoice_id
        ),
    )
    return page(m.PaymentList, m.Payment, rows)


@router.get(
    "/payments/{payment_id}",
    response_model=m.Payment,
    summary="Get a payment",
    responses=responses(),
    tags=["payments"],
)
def get_payment(payment_id: PathId, caller: Reader) -> Response:
    return answer(m.Payment.model_validate(read(caller, lambda conn: queries.get_payment(conn, payment_id))))


# -------------------------------------------------------------------------------------- refunds


@router.post(
    "/refunds",
    status_code=201,
    response_model=m.Refund,
    summary="Refund a payment",
    responses=responses(write=True),
    tags=["payments"],
)
def refund(body: m.RefundCreate, caller: Annotated[Caller, Depends(allow_write(*FINANCE))]) -> Response:
    """In full (default) or in part, through the gateway. The refund's own `idempotency_key`
    (derived from the `Idempotency-Key` header when not given) makes a repeated refund return
    the first one."""
    key = gateway_key(caller, body.idempotency_key)

    def action(ctx: BillingContext) -> m.Refund:
        result = refund_payment(
            ctx,
            payment_id=body.payment_id,
            amount_minor=body.amount_minor,
            reason=body.reason,
            idempotency_key=key,
        )
        with ctx.read() as conn:
            return m.Refund.model_validate(queries.get_refund(conn, result.id))

    return run(caller, action, status_code=201, atomic=False)


@router.get(
    "/refunds", response_model=m.RefundList, summary="List refunds", responses=responses(), tags=["payments"]
)
def list_refunds(
    caller: Reader, limit: Limit = 10, starting_after: StartingAfter = None, payment_id: QueryId = None
) -> Response:
    rows = read(
        caller,
        lambda conn: queries.list_refunds(
            conn, limit=limit, starting_after=starting_after, payment_id=payment_id
        ),
    )
    return page(m.RefundList, m.Refund, rows)


@router.get(
    "/refunds/{refund_id}",
    response_model=m.Refund,
    summary="Get a refund",
    responses=responses(),
    tags=["payments"],
)
def get_refund(refund_id: PathId, caller: Reader) -> Response:
    return answer(m.Refund.model_validate(read(caller, lambda conn: queries.get_refund(conn, refund_id))))


# ---------------------------------------------------------------------------------- chargebacks


@router.post(
    "/chargebacks",
    status_code=201,
    response_model=m.Chargeback,
    summary="Record a chargeback",
    responses=responses(write=True),
    tags=["chargebacks"],
)
def record(
    body: m.ChargebackCreate, caller: Annotated[Caller, Depends(allow_write(*BILLING_AND_FINANCE))]
) -> Response:
    """A card network pulls a payment back. Idempotent by `network_reference`: the same notice
    twice is one chargeback."""

    def action(ctx: BillingContext) -> m.Chargeback:
        chargeback = record_chargeback(ctx, **body.model_dump())
        with ctx.read() as conn:
            return m.Chargeback.model_validate(queries.get_chargeback(conn, chargeback.id))

    return run(caller, action, status_code=201)


@router.post(
    "/chargebacks/{chargeback_id}/close",
    response_model=m.Chargeback,
    summary="Close a chargeback, won or lost",
    responses=responses(write=True),
    tags=["chargebacks"],
)
def close(
    chargeback_id: PathId,
    body: m.ChargebackClose,
    caller: Annotated[Caller, Depends(allow_write(*BILLING_AND_FINANCE))],
) -> Response:
    def action(ctx: BillingContext) -> m.Chargeback:
        close_chargeback(ctx, chargeback_id=chargeback_id, won=body.won)
        with ctx.read() as conn:
            return m.Chargeback.model_validate(queries.get_chargeback(conn, chargeback_id))

    return run(caller, action)


@router.get(
    "/chargebacks",
    response_model=m.ChargebackList,
    summary="List chargebacks",
    responses=responses(),
    tags=["chargebacks"],
)
def list_chargebacks(
    caller: Reader,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    payment_id: QueryId = None,
    status: Annotated[ChargebackStatus | None, Query()] = None,
) -> Response:
    rows = read(
        caller,
        lambda conn: queries.list_chargebacks(
            conn,
            limit=limit,
            starting_after=starting_after,
            payment_id=payment_id,
            status=status.value if status else None,
        ),
    )
    return page(m.ChargebackList, m.Chargeback, rows)


@router.get(
    "/chargebacks/{chargeback_id}",
    response_model=m.Chargeback,
    summary="Get a chargeback",
    responses=responses(),
    tags=["chargebacks"],
)
def get_chargeback(chargeback_id: PathId, caller: Reader) -> Response:
    return answer(
        m.Chargeback.model_validate(read(caller, lambda conn: queries.get_chargeback(conn, chargeback_id)))
    )


# --------------------------------------------------------------------------------- credit notes


@router.post(
    "/credit_notes",
    status_code=201,
    response_model=m.CreditNote,
    summary="Issue a credit note",
    responses=responses(write=True),
    tags=["credit notes"],
)
def issue(body: m.CreditNoteCreate, caller: Annotated[Caller, Depends(allow_write(*FINANCE))]) -> Response:
    """Correct a finalized invoice without editing it: `reduce_amount_due` (an open invoice),
    `customer_balance` (credit the next invoices consume) or `refund` (back to the card)."""
    key = gateway_key(caller, body.idempotency_key) if body.outcome == "refund" else body.idempotency_key

    def action(ctx: BillingContext) -> m.CreditNote:
        note = issue_credit_note(
            ctx,
            invoice_id=body.invoice_id,
            amount_minor=body.amount_minor,
            reason=body.reason,
            outcome=body.outcome,
            memo=body.memo,
            idempotency_key=key,
        )
        with ctx.read() as conn:
            return m.CreditNote.model_validate(queries.get_credit_note(conn, note.id))

    return run(caller, action, status_code=201, atomic=body.outcome != "refund")


@router.get(
    "/credit_notes",
    response_model=m.CreditNoteList,
    summary="List credit notes",
    responses=responses(),
    tags=["credit notes"],
)
def list_credit_notes(
    caller: Reader,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    invoice_id: QueryId = None,
    customer_id: QueryId = None,
) -> Response:
    rows = read(
        caller,
        lambda conn: queries.list_credit_notes(
            conn, limit=limit, starting_after=starting_after, invoice_id=invoice_id, customer_id=customer_id
        ),
    )
    return page(m.CreditNoteList, m.CreditNote, rows)


@router.get(
    "/credit_notes/{credit_note_id}",
    response_model=m.CreditNote,
    summary="Get a credit note",
    responses=responses(),
    tags=["credit notes"],
)
def get_credit_note(credit_note_id: PathId, caller: Reader) -> Response:
    return answer(
        m.CreditNote.model_validate(read(caller, lambda conn: queries.get_credit_note(conn, credit_note_id)))
    )
