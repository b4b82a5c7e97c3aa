"""Use case: write an open invoice off as uncollectible (it can still be paid later)."""

from __future__ import annotations

from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.invoices import INVOICE_LIFECYCLE, InvoiceEvent, InvoiceStatus


def mark_uncollectible(ctx: BillingContext, *, invoice_id: int) -> InvoiceStatus:
    with ctx.transaction() as tx:
        row = repository.get_invoice_row(tx.conn, invoice_id, lock=True)
        target = INVOICE_LIFECYCLE.next(
            InvoiceStatus(row["status"]), InvoiceEvent.MARK_UNCOLLECTIBLE, entity_id=invoice_id
        )
        tx.bulk.execute(
            "UPDATE invoices SET status = ?, marked_uncollectible_at = ? WHERE id = ?",
            (target.value, tx.bulk.instant(tx.now), invoice_id),
        )
        tx.emit(
            "invoice.marked_uncollectible",
            "invoice",
            invoice_id,
            invoice_id=invoice_id,
            customer_id=row["customer_id"],
            subscription_id=row["subscription_id"],
            currency=row["currency"],
            amount_written_off_minor=row["amount_remaining_minor"],
        )
    return target
