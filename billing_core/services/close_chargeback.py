"""Use case: the card network decides a chargeback: won (the money comes back) or lost."""

from __future__ import annotations

from billing_core.context import BillingContext
from billing_core.errors import InvalidInput, NotFound
from billing_core.payments import ChargebackStatus
from billing_core.services.record_chargeback import Chargeback


def close_chargeback(ctx: BillingContext, *, chargeback_id: int, won: bool) -> Chargeback:
    with ctx.transaction() as tx:
        rows = tx.bulk.query(
            "SELECT id, payment_id, amount_minor, fee_minor, currency, status FROM chargebacks WHERE id = ?",
            (chargeback_id,),
        )
        if not rows:
            raise NotFound("chargeback_id", "chargeback", chargeback_id)
        status = ChargebackStatus(rows[0][5])
        if status is not ChargebackStatus.OPEN:
            raise InvalidInput("chargeback.status", "open", status.value)
        target = ChargebackStatus.WON if won else ChargebackStatus.LOST
        tx.bulk.execute(
            "UPDATE chargebacks SET status = ?, closed_at = ? WHERE id = ?",
            (target.value, tx.bulk.instant(tx.now), chargeback_id),
        )
        tx.emit(
            "chargeback.closed",
            "payment",
            rows[0][1],
            chargeback_id=chargeback_id,
            payment_id=rows[0][1],
            amount_minor=rows[0][2],
            currency=rows[0][4],
            outcome=target.value,
            amount_returned_minor=rows[0][2] if won else 0,
        )
        return Chargeback(rows[0][0], rows[0][1], rows[0][2], rows[0][3], rows[0][4], target)
