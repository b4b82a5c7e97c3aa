"""Use case: void an invoice that should never have been issued.

Only drafts, open and uncollectible invoices can be voided (a paid invoice is corrected with a
credit note). The invoice keeps its number and its lines; its remaining amount drops to zero,
pending payment attempts are canceled, and credit it took from the customer's balance goes back.
"""

from __future__ import annotations

from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.invoices import INVOICE_LIFECYCLE, InvoiceEvent, InvoiceStatus
from billing_core.services.collect_payments import credit_customer_balances


def void_invoice(ctx: BillingContext, *, invoice_id: int) -> InvoiceStatus:
    with ctx.transaction() as tx:
        row = repository.get_invoice_row(tx.conn, invoice_id, lock=True)
        target = INVOICE_LIFECYCLE.next(InvoiceStatus(row["status"]), InvoiceEvent.VOID, entity_id=invoice_id)
        now = tx.bulk.instant(tx.now)
        tx.bulk.execute(
            "UPDATE invoices SET status = ?, amount_remaining_minor = 0, voided_at = ? WHERE id = ?",
            (target.value, now, invoice_id),
        )
        canceled = tx.bulk.execute(
            "UPDATE payment_attempts SET status = 'canceled', processed_at = ? WHERE invoice_id = ? AND status = 'pending'",
            (now, invoice_id),
        )
        tx.emit(
            "invoice.voided",
            "invoice",
            invoice_id,
            invoice_id=invoice_id,
            customer_id=row["customer_id"],
            subscription_id=row["subscription_id"],
            currency=row["currency"],
            amount_voided_minor=row["amount_remaining_minor"],
            previous_status=row["status"],
            attempts_canceled=canceled,
        )
        if row["credit_applied_minor"]:
            credit_customer_balances(
                tx,
                [(row["customer_id"], row["credit_applied_minor"], row["currency"], invoice_id)],
                reason="invoice_voided",
            )
    return target
