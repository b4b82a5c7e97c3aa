"""Use case: refund a payment, in full or in part, through the gateway; idempotent by key.

The gateway is asked first, with the caller's idempotency key; the refund is then recorded in one
transaction. If the process dies in between, calling again with the same key gets the same
answer from the gateway and records it once (the key is unique on ``refunds``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, RowMapping

from billing_core.context import BillingContext, Tx
from billing_core.db import repository
from billing_core.db.bulk import Bulk
from billing_core.errors import IdempotencyConflict, InvalidInput
from billing_core.money import check_minor
from billing_core.payments import RefundRequest


@dataclass(frozen=True)
class Refund:
    id: int
    payment_id: int
    amount_minor: int
    currency: str
    gateway_reference: str


def refund_payment(
    ctx: BillingContext,
    *,
    payment_id: int,
    amount_minor: int | None = None,
    reason: str = "requested_by_customer",
    idempotency_key: str,
) -> Refund:
    if not isinstance(idempotency_key, str) or not idempotency_key:
        raise InvalidInput("idempotency_key", "a non-empty key that identifies this refund", idempotency_key)
    with ctx.read() as conn:
        existing = _existing(conn, idempotency_key)
        if existing is not None:
            return _same_or_conflict(existing, payment_id, amount_minor)
        payment = repository.get_payment_row(conn, payment_id)
        amount = _check_amount(payment, amount_minor)
    answer = ctx.gateway.refund(
        RefundRequest(idempotency_key, payment["gateway_reference"] or "", amount, payment["currency"])
    )
    if not answer.succeeded:
        raise InvalidInput("payment_id", "a payment the gateway can refund", payment_id)
    with ctx.transaction() as tx:
        existing = _existing(tx.conn, idempotency_key)
        if existing is not None:
            return _same_or_conflict(existing, payment_id, amount_minor)
        return record_refund(
            tx,
            payment_id=payment_id,
            amount_minor=amount,
            reason=reason,
            idempotency_key=idempotency_key,
            gateway_reference=answer.gateway_reference,
        )


def record_refund(
    tx: Tx,
    *,
    payment_id: int,
    amount_minor: int,
    reason: str,
    idempotency_key: str,
    gateway_reference: str,
    credit_note_id: int | None = None,
) -> Refund:
    """Record a refund the gateway has made (inside the caller's transaction)."""
    payment = repository.get_payment_row(tx.conn, payment_id, lock=True)
    amount = _check_amount(payment, amount_minor)
    (refund_id,) = tx.bulk.reserve_ids("refunds", 1)
    tx.bulk.insert(
        "refunds",
        [
            "id",
            "payment_id",
            "amount_minor",
            "currency",
            "reason",
            "idempotency_key",
            "gateway_reference",
            "credit_note_id",
            "created_at",
        ],
        [
            (
                refund_id,
                payment_id,
                amount,
                payment["currency"],
                reason,
                idempotency_key,
                gateway_reference,
                credit_note_id,
                tx.bulk.instant(tx.now),
            )
        ],
    )
    tx.bulk.execute(
        "UPDATE payments SET amount_refunded_minor = amount_refunded_minor + ? WHERE id = ?",
        (amount, payment_id),
    )
    tx.emit(
        "refund.succeeded",
        "payment",
        payment_id,
        refund_id=refund_id,
        payment_id=payment_id,
        invoice_id=payment["invoice_id"],
        customer_id=payment["customer_id"],
        amount_minor=amount,
        currency=payment["currency"],
        reason=reason,
        credit_note_id=credit_note_id,
    )
    return Refund(refund_id, payment_id, amount, payment["currency"], gateway_reference)


def _check_amount(payment: RowMapping, amount_minor: int | None) -> int:
    refundable = int(payment["amount_minor"] - payment["amount_refunded_minor"])
    amount = refundable if amount_minor is None else check_minor(amount_minor, "amount_minor")
    if amount <= 0 or amount > refundable:
        raise InvalidInput("amount_minor", f"an amount between 1 and {refundable} (not yet refunded)", amount)
    return amount


def _existing(conn: Connection, key: str) -> Refund | None:
    rows = Bulk(conn).query(
        "SELECT id, payment_id, amount_minor, currency, gateway_reference FROM refunds WHERE idempotency_key = ?",
        (key,),
    )
    return Refund(*rows[0]) if rows else None


def _same_or_conflict(existing: Refund, payment_id: int, amount_minor: int | None) -> Refund:
    if existing.payment_id != payment_id or (
        amount_minor is not None and amount_minor != existing.amount_minor
    ):
        raise IdempotencyConflict(
            "idempotency_key", "a key not used for another refund", f"used for refund {existing.id}"
        )
    return existing
