"""Use case: attempt to pay an open invoice now, with the default card or a given one.

The attempt is written (numbered after earlier attempts) in one transaction and sent to the
gateway after the commit; the dunning engine schedules its retries through the same table.
"""

from __future__ import annotations

from datetime import datetime

from billing_core.context import BillingContext, Tx
from billing_core.db import repository
from billing_core.errors import InvalidInput
from billing_core.invoice_writer import attempt_key
from billing_core.invoices import InvoiceStatus
from billing_core.services.collect_payments import CollectionResult, collect_payments


def pay_invoice(
    ctx: BillingContext, *, invoice_id: int, payment_method_id: int | None = None
) -> CollectionResult:
    with ctx.transaction() as tx:
        attempt_id = schedule_attempt(
            tx, invoice_id=invoice_id, payment_method_id=payment_method_id, source="manual", at=tx.now
        )
    return collect_payments(ctx, attempt_ids=[attempt_id])


def schedule_attempt(
    tx: Tx, *, invoice_id: int, payment_method_id: int | None, source: str, at: datetime
) -> int:
    """Queue a payment attempt for the invoice's remaining amount; returns the attempt id."""
    row = repository.get_invoice_row(tx.conn, invoice_id, lock=True)
    status = InvoiceStatus(row["status"])
    if status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
        raise InvalidInput("invoice.status", "open or uncollectible", status.value)
    if row["amount_remaining_minor"] <= 0:
        raise InvalidInput("invoice.amount_remaining_minor", "an amount > 0", row["amount_remaining_minor"])
    customer = repository.get_customer(tx.conn, row["customer_id"])
    pm_id = payment_method_id if payment_method_id is not None else customer.default_payment_method_id
    if pm_id is None:
        raise InvalidInput("payment_method_id", "a card (the customer has no default card)", None)
    card = repository.get_payment_method(tx.conn, pm_id)
    if card.customer_id != customer.id:
        raise InvalidInput("payment_method_id", f"a card of customer {customer.id}", pm_id)
    pending = tx.bulk.query(
        "SELECT COUNT(*) FROM payment_attempts WHERE invoice_id = ? AND status = 'pending'", (invoice_id,)
    )[0][0]
    if pending:
        raise InvalidInput("invoice_id", "an invoice with no attempt already pending", invoice_id)
    (last,) = tx.bulk.query(
        "SELECT COALESCE(MAX(attempt_number), 0) FROM payment_attempts WHERE invoice_id = ?", (invoice_id,)
    )[0]
    number = last + 1
    (attempt_id,) = tx.bulk.reserve_ids("payment_attempts", 1)
    tx.bulk.insert(
        "payment_attempts",
        [
            "id",
            "invoice_id",
            "customer_id",
            "payment_method_id",
            "attempt_number",
            "amount_minor",
            "currency",
            "status",
            "idempotency_key",
            "source",
            "scheduled_at",
        ],
        [
            (
                attempt_id,
                invoice_id,
                customer.id,
                pm_id,
                number,
                row["amount_remaining_minor"],
                row["currency"],
                "pending",
                attempt_key(invoice_id, number),
                source,
                tx.bulk.instant(at),
            )
        ],
    )
    tx.emit(
        "payment.scheduled",
        "payment_attempt",
        attempt_id,
        attempt_id=attempt_id,
        invoice_id=invoice_id,
        customer_id=customer.id,
        attempt_number=number,
        amount_minor=row["amount_remaining_minor"],
        currency=row["currency"],
        source=source,
        scheduled_at=at.isoformat(),
    )
    return attempt_id
