"""Invoices (read, void, write off, pay) and one-time charges."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import TypeAdapter
from sqlalchemy import Connection
from starlette.responses import Response

from billing_core import queries
from billing_core.api import models as m
from billing_core.api.auth import Caller, allow, allow_write
from billing_core.api.idempotency import run
from billing_core.api.routing import (
    BILLING,
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
    renamed,
    responses,
)
from billing_core.context import BillingContext
from billing_core.invoices import InvoiceStatus
from billing_core.services.add_one_time_charge import add_one_time_charge
from billing_core.services.mark_uncollectible import mark_uncollectible
from billing_core.services.pay_invoice import pay_invoice
from billing_core.services.void_invoice import void_invoice

router = APIRouter(prefix="/v1", tags=["invoices"])

Reader = Annotated[Caller, Depends(allow(*READERS))]
ATTEMPTS = TypeAdapter(list[m.PaymentAttempt])


def _invoice(ctx: BillingContext, invoice_id: int) -> m.Invoice:
    with ctx.read() as conn:
        return m.Invoice.model_validate(queries.get_invoice(conn, invoice_id))


@router.get("/invoices", response_model=m.InvoiceList, summary="List invoices", responses=responses())
def list_(
    caller: Reader,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    customer_id: QueryId = None,
    subscription_id: QueryId = None,
    status: Annotated[InvoiceStatus | None, Query()] = None,
) -> Response:
    """Without their lines; get one invoice for its lines."""
    rows = read(
        caller,
        lambda conn: queries.list_invoices(
            conn,
            limit=limit,
            starting_after=starting_after,
            customer_id=customer_id,
            subscription_id=subscription_id,
            status=status.value if status else None,
        ),
    )
    return page(m.InvoiceList, m.Invoice, rows)


@router.get(
    "/invoices/{invoice_id}",
    response_model=m.Invoice,
    summary="Get an invoice with its lines",
    responses=responses(),
)
def get(invoice_id: PathId, caller: Reader) -> Response:
    return answer(m.Invoice.model_validate(read(caller, lambda conn: queries.get_invoice(conn, invoice_id))))


@router.get(
    "/invoices/{invoice_id}/payment_attempts",
    response_model=list[m.PaymentAttempt],
    summary="List an invoice's payment attempts",
    responses=responses(),
)
def attempts(invoice_id: PathId, caller: Reader) -> Response:
    """Every attempt to charge the invoice, first to last, with decline codes."""

    def rows(conn: Connection) -> list[m.PaymentAttempt]:
        queries.get_invoice(conn, invoice_id, lines=False)
        return [
            m.PaymentAttempt.model_validate(r)
            for r in queries.list_payment_attempts(conn, invoice_id=invoice_id)
        ]

    found = read(caller, rows)
    return Response(ATTEMPTS.dump_json(found), media_type="application/json")


@router.post(
    "/invoices/{invoice_id}/void",
    response_model=m.Invoice,
    summary="Void an invoice",
    responses=responses(write=True),
)
def void(invoice_id: PathId, caller: Annotated[Caller, Depends(allow_write(*FINANCE))]) -> Response:
    """For an invoice that should never have been issued (draft, open or uncollectible): it keeps
    its number and lines, owes nothing more, and credit it took from the balance goes back. A
    paid invoice is corrected with a credit note instead."""

    def action(ctx: BillingContext) -> m.Invoice:
        void_invoice(ctx, invoice_id=invoice_id)
        return _invoice(ctx, invoice_id)

    return run(caller, action)


@router.post(
    "/invoices/{invoice_id}/mark_uncollectible",
    response_model=m.Invoice,
    summary="Write an invoice off as uncollectible",
    responses=responses(write=True),
)
def write_off(invoice_id: PathId, caller: Annotated[Caller, Depends(allow_write(*FINANCE))]) -> Response:
    """An open invoice is written off; it can still be paid later."""

    def action(ctx: BillingContext) -> m.Invoice:
        mark_uncollectible(ctx, invoice_id=invoice_id)
        return _invoice(ctx, invoice_id)

    return run(caller, action)


@router.post(
    "/invoices/{invoice_id}/pay",
    response_model=m.InvoicePayment,
    summary="Charge an invoice now",
    responses=responses(write=True),
)
def pay(
    invoice_id: PathId,
    caller: Annotated[Caller, Depends(allow_write(*BILLING_AND_FINANCE))],
    body: m.PayIn | None = None,
) -> Response:
    """Attempt to charge the remaining amount to the customer's default card (or the given one).
    A decline is an answer, not an error: the attempt carries its decline code and the invoice
    stays open."""
    card = body.payment_method_id if body is not None else None

    def action(ctx: BillingContext) -> m.InvoicePayment:
        pay_invoice(ctx, invoice_id=invoice_id, payment_method_id=card)
        with ctx.read() as conn:
            attempt = queries.last_payment_attempt(conn, invoice_id)
            return m.InvoicePayment(
                attempt=m.PaymentAttempt.model_validate(attempt) if attempt else None,
                invoice=m.Invoice.model_validate(queries.get_invoice(conn, invoice_id)),
            )

    return run(caller, action, atomic=False)


@router.post(
    "/one_time_charges",
    status_code=201,
    response_model=m.OneTimeCharge,
    summary="Charge a customer once",
    responses=responses(write=True),
    tags=["invoices"],
)
def one_time_charge(
    body: m.OneTimeChargeCreate, caller: Annotated[Caller, Depends(allow_write(*BILLING))]
) -> Response:
    """With `subscription_id` the charge waits for that subscription's next invoice; without it,
    it is invoiced (and charged) at once."""

    def action(ctx: BillingContext) -> m.OneTimeCharge:
        with renamed({"currency_code": "currency"}):
            result = add_one_time_charge(
                ctx,
                customer_id=body.customer_id,
                description=body.description,
                unit_amount_minor=body.unit_amount_minor,
                currency_code=body.currency,
                quantity=body.quantity,
                subscription_id=body.subscription_id,
            )
        with ctx.read() as conn:
            return m.OneTimeCharge.model_validate(queries.get_one_time_charge(conn, result.charge_id))

    return run(caller, action, status_code=201, atomic=False)
