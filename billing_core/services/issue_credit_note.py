"""Use case: issue a credit note against a finalized invoice.

The invoice itself never changes; its ``amount_credited_minor`` tally grows and, for an open
invoice credited with ``reduce_amount_due``, its remaining amount falls (to zero: it is paid).
``customer_balance`` adds the amount to the customer's credit balance, which the next invoice
consumes; ``refund`` returns it to the card through the gateway (idempotent by key).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import RowMapping

from billing_core.context import BillingContext
from billing_core.credit_notes import CreditNoteReason, CreditOutcome, check_credit_amount
from billing_core.db import repository
from billing_core.db.bulk import Bulk
from billing_core.errors import InvalidInput
from billing_core.invoice_writer import format_number, reserve_numbers
from billing_core.invoices import InvoiceStatus
from billing_core.payments import RefundRequest
from billing_core.services.collect_payments import credit_customer_balances
from billing_core.services.refund_payment import record_refund


@dataclass(frozen=True)
class CreditNote:
    id: int
    number: str
    invoice_id: int
    amount_minor: int
    currency: str
    outcome: CreditOutcome
    refund_id: int | None


def issue_credit_note(
    ctx: BillingContext,
    *,
    invoice_id: int,
    amount_minor: int,
    reason: str,
    outcome: str,
    memo: str = "",
    idempotency_key: str | None = None,
) -> CreditNote:
    try:
        why = CreditNoteReason(reason)
    except ValueError as exc:
        raise InvalidInput("reason", "one of " + ", ".join(CreditNoteReason), reason) from exc
    try:
        how = CreditOutcome(outcome)
    except ValueError as exc:
        raise InvalidInput("outcome", "one of " + ", ".join(CreditOutcome), outcome) from exc
    refund_answer = None
    payment_id = None
    if how is CreditOutcome.REFUND:
        if not idempotency_key:
            raise InvalidInput(
                "idempotency_key", "a key for the refund this credit note makes", idempotency_key
            )
        with ctx.read() as conn:
            invoice = repository.get_invoice_row(conn, invoice_id)
            _validate(invoice, amount_minor, how)
            rows = Bulk(conn).query(
                "SELECT id, gateway_reference, amount_minor - amount_refunded_minor FROM payments"
                " WHERE invoice_id = ? ORDER BY id",
                (invoice_id,),
            )
            payable = [r for r in rows if r[2] >= amount_minor]
            if not payable:
                raise InvalidInput(
                    "amount_minor", "at most what one payment of the invoice can still refund", amount_minor
                )
            payment_id, reference = payable[0][0], payable[0][1]
        refund_answer = ctx.gateway.refund(
            RefundRequest(idempotency_key, reference or "", amount_minor, invoice["currency"])
        )
    with ctx.transaction() as tx:
        invoice = repository.get_invoice_row(tx.conn, invoice_id, lock=True)
        amount = _validate(invoice, amount_minor, how)
        first = reserve_numbers(tx.bulk, ctx.credit_note_prefix, 1)
        number = format_number(ctx.credit_note_prefix, first)
        (note_id,) = tx.bulk.reserve_ids("credit_notes", 1)
        refund_id = None
        if how is CreditOutcome.REFUND:
            assert refund_answer is not None
            assert payment_id is not None
            assert idempotency_key
            refund_id = record_refund(
                tx,
                payment_id=payment_id,
                amount_minor=amount,
                reason=f"credit_note:{why.value}",
                idempotency_key=idempotency_key,
                gateway_reference=refund_answer.gateway_reference,
                credit_note_id=note_id,
            ).id
        tx.bulk.insert(
            "credit_notes",
            [
                "id",
                "number",
                "invoice_id",
                "customer_id",
                "amount_minor",
                "currency",
                "reason",
                "outcome",
                "refund_id",
                "memo",
                "created_at",
            ],
            [
                (
                    note_id,
                    number,
                    invoice_id,
                    invoice["customer_id"],
                    amount,
                    invoice["currency"],
                    why.value,
                    how.value,
                    refund_id,
                    memo,
                    tx.bulk.instant(tx.now),
                )
            ],
        )
        remaining = invoice["amount_remaining_minor"]
        status = invoice["status"]
        if how is CreditOutcome.REDUCE_AMOUNT_DUE:
            remaining -= amount
            if remaining == 0:
                status = InvoiceStatus.PAID.value
        tx.bulk.execute(
            "UPDATE invoices SET amount_credited_minor = amount_credited_minor + ?, amount_remaining_minor = ?,"
            " status = ?, paid_at = CASE WHEN ? = 'paid' AND paid_at IS NULL THEN ? ELSE paid_at END WHERE id = ?",
            (amount, remaining, status, status, tx.bulk.instant(tx.now), invoice_id),
        )
        tx.emit(
            "credit_note.issued",
            "invoice",
            invoice_id,
            credit_note_id=note_id,
            number=number,
            invoice_id=invoice_id,
            customer_id=invoice["customer_id"],
            amount_minor=amount,
            currency=invoice["currency"],
            reason=why.value,
            outcome=how.value,
            refund_id=refund_id,
        )
        if status != invoice["status"]:
            tx.emit(
                "invoice.paid",
                "invoice",
                invoice_id,
                invoice_id=invoice_id,
                customer_id=invoice["customer_id"],
                subscription_id=invoice["subscription_id"],
                currency=invoice["currency"],
                amount_paid_minor=invoice["amount_paid_minor"],
                paid_with="credit_note",
            )
        if how is CreditOutcome.CUSTOMER_BALANCE:
            credit_customer_balances(
                tx, [(invoice["customer_id"], amount, invoice["currency"], invoice_id)], reason="credit_note"
            )
        return CreditNote(note_id, number, invoice_id, amount, invoice["currency"], how, refund_id)


def _validate(row: RowMapping, amount_minor: object, how: CreditOutcome) -> int:
    status = InvoiceStatus(row["status"])
    if status not in (InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE):
        raise InvalidInput(
            "invoice.status", "open, paid or uncollectible (a finalized, not void invoice)", status.value
        )
    creditable = int(row["total_minor"]) - int(row["amount_credited_minor"])
    amount = check_credit_amount(amount_minor, creditable_minor=creditable)
    if how is CreditOutcome.REDUCE_AMOUNT_DUE:
        if status is InvoiceStatus.PAID:
            raise InvalidInput("outcome", "customer_balance or refund for a paid invoice", how.value)
        if amount > int(row["amount_remaining_minor"]):
            raise InvalidInput(
                "amount_minor", f"at most the remaining {row['amount_remaining_minor']}", amount
            )
    return amount
