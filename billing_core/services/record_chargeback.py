"""Use cases: a card network pulls a payment back (chargeback), and later decides it.

Recording is idempotent by the network's reference: the same notice twice is one chargeback.
Opening it moves money out (the amount and the network's fee); winning it brings the amount
back; losing it leaves it gone. Each is an event in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.errors import IdempotencyConflict, InvalidInput
from billing_core.money import check_minor
from billing_core.payments import ChargebackStatus


@dataclass(frozen=True)
class Chargeback:
    id: int
    payment_id: int
    amount_minor: int
    fee_minor: int
    currency: str
    status: ChargebackStatus


def record_chargeback(
    ctx: BillingContext,
    *,
    payment_id: int,
    network_reference: str,
    amount_minor: int,
    reason_code: str,
    fee_minor: int = 0,
) -> Chargeback:
    if not isinstance(network_reference, str) or not network_reference:
        raise InvalidInput("network_reference", "the card network's case reference", network_reference)
    if not isinstance(reason_code, str) or not reason_code:
        raise InvalidInput("reason_code", "the network's reason code, such as '10.4'", reason_code)
    fee = check_minor(fee_minor, "fee_minor")
    if fee < 0:
        raise InvalidInput("fee_minor", "an amount of minor units >= 0", fee)
    with ctx.transaction() as tx:
        found = tx.bulk.query(
            "SELECT id, payment_id, amount_minor, fee_minor, currency, status FROM chargebacks"
            " WHERE network_reference = ?",
            (network_reference,),
        )
        if found:
            cb_id, cb_payment, cb_amount, cb_fee, cb_currency, cb_status = found[0]
            existing = Chargeback(
                cb_id, cb_payment, cb_amount, cb_fee, cb_currency, ChargebackStatus(cb_status)
            )
            if existing.payment_id != payment_id or existing.amount_minor != amount_minor:
                raise IdempotencyConflict(
                    "network_reference", "a reference not used for another chargeback", network_reference
                )
            return existing
        payment = repository.get_payment_row(tx.conn, payment_id, lock=True)
        amount = check_minor(amount_minor, "amount_minor")
        if not 0 < amount <= payment["amount_minor"]:
            raise InvalidInput("amount_minor", f"an amount between 1 and {payment['amount_minor']}", amount)
        (chargeback_id,) = tx.bulk.reserve_ids("chargebacks", 1)
        tx.bulk.insert(
            "chargebacks",
            [
                "id",
                "payment_id",
                "network_reference",
                "amount_minor",
                "fee_minor",
                "currency",
                "reason_code",
                "status",
                "opened_at",
            ],
            [
                (
                    chargeback_id,
                    payment_id,
                    network_reference,
                    amount,
                    fee,
                    payment["currency"],
                    reason_code,
                    ChargebackStatus.OPEN.value,
                    tx.bulk.instant(tx.now),
                )
            ],
        )
        tx.emit(
            "chargeback.opened",
            "payment",
            payment_id,
            chargeback_id=chargeback_id,
            payment_id=payment_id,
            invoice_id=payment["invoice_id"],
            customer_id=payment["customer_id"],
            amount_minor=amount,
            fee_minor=fee,
            currency=payment["currency"],
            reason_code=reason_code,
            network_reference=network_reference,
        )
        return Chargeback(chargeback_id, payment_id, amount, fee, payment["currency"], ChargebackStatus.OPEN)
