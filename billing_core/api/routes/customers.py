"""Customers and their payment methods."""

from typing import Annotated

from fastapi import APIRouter, Depends
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
    QueryText,
    StartingAfter,
    answer,
    page,
    read,
    responses,
)
from billing_core.context import BillingContext
from billing_core.services.add_payment_method import add_payment_method
from billing_core.services.create_customer import create_customer

router = APIRouter(prefix="/v1", tags=["customers"])


@router.post(
    "/customers",
    status_code=201,
    response_model=m.Customer,
    summary="Create a customer",
    responses=responses(write=True),
)
def create(body: m.CustomerCreate, caller: Annotated[Caller, Depends(allow_write(*BILLING))]) -> Response:
    """Create a customer. With an `external_id` already on file (same email and currency), the
    existing customer is returned instead of a second one."""

    def action(ctx: BillingContext) -> m.Customer:
        customer = create_customer(ctx, **body.model_dump())
        with ctx.read() as conn:
            return m.Customer.model_validate(queries.get_customer(conn, customer.id))

    return run(caller, action, status_code=201)


@router.get("/customers", response_model=m.CustomerList, summary="List customers", responses=responses())
def list_(
    caller: Annotated[Caller, Depends(allow(*READERS))],
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    email: QueryText = None,
) -> Response:
    rows = read(
        caller,
        lambda conn: queries.list_customers(conn, limit=limit, starting_after=starting_after, email=email),
    )
    return page(m.CustomerList, m.Customer, rows)


@router.get(
    "/customers/{customer_id}", response_model=m.Customer, summary="Get a customer", responses=responses()
)
def get(customer_id: PathId, caller: Annotated[Caller, Depends(allow(*READERS))]) -> Response:
    return answer(
        m.Customer.model_validate(read(caller, lambda conn: queries.get_customer(conn, customer_id)))
    )


@router.post(
    "/customers/{customer_id}/payment_methods",
    status_code=201,
    response_model=m.PaymentMethod,
    summary="Attach a card to a customer",
    responses=responses(write=True),
)
def add_card(
    customer_id: PathId,
    body: m.PaymentMethodCreate,
    caller: Annotated[Caller, Depends(allow_write(*BILLING))],
) -> Response:
    """Attach a card (by default it becomes the customer's default card). Only the card's brand,
    BIN, last four digits and expiry are kept."""

    def action(ctx: BillingContext) -> m.PaymentMethod:
        card = add_payment_method(ctx, customer_id=customer_id, **body.model_dump())
        with ctx.read() as conn:
            return m.PaymentMethod.model_validate(queries.get_payment_method(conn, card.id))

    return run(caller, action, status_code=201)


@router.get(
    "/customers/{customer_id}/payment_methods",
    response_model=m.PaymentMethodList,
    summary="List a customer's cards",
    responses=responses(),
)
def list_cards(
    customer_id: PathId,
    caller: Annotated[Caller, Depends(allow(*READERS))],
    limit: Limit = 10,
    starting_after: StartingAfter = None,
) -> Response:
    rows = read(
        caller,
        lambda conn: queries.list_payment_methods(
            conn, customer_id=customer_id, limit=limit, starting_after=starting_after
        ),
    )
    return page(m.PaymentMethodList, m.PaymentMethod, rows)
