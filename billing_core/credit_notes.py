"""Credit notes and the customer's credit balance.

A credit note corrects a finalized invoice without editing it. Its amount is at most what is
left to credit on the invoice (its total less earlier credit notes). What happens to the money:

``reduce_amount_due``  the invoice is still open: the amount due goes down (to zero, it is paid)
``customer_balance``   the customer's credit balance grows; the next invoice consumes it
``refund``             the money goes back to the card through the gateway

The credit balance is never negative; an invoice consumes at most its own total from it.
"""

from __future__ import annotations

from enum import StrEnum

from billing_core.errors import InvalidInput
from billing_core.money import check_minor


class CreditNoteReason(StrEnum):
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    ORDER_CHANGE = "order_change"
    PRODUCT_UNSATISFACTORY = "product_unsatisfactory"
    SERVICE_CREDIT = "service_credit"
    DISPUTE = "dispute"
    OTHER = "other"


class CreditOutcome(StrEnum):
    REDUCE_AMOUNT_DUE = "reduce_amount_due"
    CUSTOMER_BALANCE = "customer_balance"
    REFUND = "refund"


class BalanceReason(StrEnum):
    CREDIT_NOTE = "credit_note"
    APPLIED_TO_INVOICE = "applied_to_invoice"
    PRORATION = "proration"
    ADJUSTMENT = "adjustment"


def check_credit_amount(amount_minor: object, *, creditable_minor: int) -> int:
    """A credit note's amount: > 0 and at most what is left to credit on the invoice."""
    amount = check_minor(amount_minor, "amount_minor")
    if amount <= 0:
        raise InvalidInput("amount_minor", "an amount of minor units > 0", amount)
    if amount > creditable_minor:
        raise InvalidInput(
            "amount_minor",
            f"at most {creditable_minor} (the invoice total less earlier credit notes)",
            amount,
        )
    return amount


def consume_balance(balance_minor: int, total_minor: int) -> tuple[int, int]:
    """How much of a balance an invoice consumes, and the balance left: (applied, left)."""
    if balance_minor < 0:
        raise InvalidInput("balance_minor", "a balance >= 0", balance_minor)
    applied = max(0, min(balance_minor, total_minor))
    return applied, balance_minor - applied
