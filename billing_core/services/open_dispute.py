"""Use case: a customer opens a dispute against an invoice or a payment, in their own words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.disputes import (
    MAX_MESSAGE_LENGTH,
    DisputeCategory,
    DisputeOutcome,
    DisputeStatus,
)
from billing_core.errors import InvalidInput
from billing_core.money import check_minor


@dataclass(frozen=True)
class Dispute:
    id: int
    customer_id: int
    invoice_id: int | None
    payment_id: int | None
    amount_minor: int
    currency: str
    message: str
    category: DisputeCategory | None
    status: DisputeStatus
    outcome: DisputeOutcome | None
    opened_at: datetime


def open_dispute(
    ctx: BillingContext,
    *,
    customer_id: int,
    message: str,
    amount_minor: int,
    invoice_id: int | None = None,
    payment_id: int | None = None,
) -> Dispute:
    """A customer contests an invoice or a payment, in their own words."""
    if (invoice_id is None) == (payment_id is None):
        raise InvalidInput("invoice_id", "exactly one of invoice_id and payment_id", invoice_id)
    if not isinstance(message, str) or not message.strip():
        raise InvalidInput("message", "the customer's message, not empty", message)
    if len(message) > MAX_MESSAGE_LENGTH:
        raise InvalidInput(
            "message", f"at most {MAX_MESSAGE_LENGTH} characters", f"{len(message)} characters"
        )
    amount = check_minor(amount_minor, "amount_minor")
    with ctx.transaction() as tx:
        customer = repository.get_customer(tx.conn, customer_id)
        if invoice_id is not None:
            target = repository.get_invoice_row(tx.conn, invoice_id)
            ceiling = target["total_minor"]
            field = "invoice_id"
        else:
            target = repository.get_payment_row(tx.conn, payment_id)
            ceiling = target["amount_minor"]
            field = "payment_id"
        if target["customer_id"] != customer.id:
            raise InvalidInput(field, f"one of customer {customer.id}'s", invoice_id or payment_id)
        if not 0 < amount <= ceiling:
            raise InvalidInput("amount_minor", f"an amount between 1 and {ceiling}", amount)
        (dispute_id,) = tx.bulk.reserve_ids("disputes", 1)
        now = tx.bulk.instant(tx.now)
        tx.bulk.insert(
            "disputes",
            [
                "id",
                "customer_id",
                "invoice_id",
                "payment_id",
                "amount_minor",
                "currency",
                "message",
                "status",
                "opened_at",
                "updated_at",
            ],
            [
                (
                    dispute_id,
                    customer.id,
                    invoice_id,
                    payment_id,
                    amount,
                    target["currency"],
                    message,
                    DisputeStatus.OPEN.value,
                    now,
                    now,
                )
            ],
        )
        tx.emit(
            "dispute.opened",
            "dispute",
            dispute_id,
            dispute_id=dispute_id,
            customer_id=customer.id,
            invoice_id=invoice_id,
            payment_id=payment_id,
            amount_minor=amount,
            currency=target["currency"],
            message=message,
        )
        return get_dispute(tx.conn, dispute_id)


def get_dispute(conn: Connection, dispute_id: int) -> Dispute:
    row = repository.get_dispute_row(conn, dispute_id)
    return Dispute(
        id=row["id"],
        customer_id=row["customer_id"],
        invoice_id=row["invoice_id"],
        payment_id=row["payment_id"],
        amount_minor=row["amount_minor"],
        currency=row["currency"],
        message=row["message"],
        category=DisputeCategory(row["category"]) if row["category"] else None,
        status=DisputeStatus(row["status"]),
        outcome=DisputeOutcome(row["outcome"]) if row["outcome"] else None,
        opened_at=row["opened_at"],
    )
