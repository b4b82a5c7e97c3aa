"""Invoices: their lifecycle, and the pure arithmetic that turns lines into totals.

Lifecycle (:data:`INVOICE_LIFECYCLE`)::

    draft ──finalize──► open ──pay──────────────► paid
      │                  ├──void──► void
      └──void──► void    └──mark_uncollectible──► uncollectible ──pay──► paid
                                                       └──void──► void

Finalizing gives an invoice its gapless number and freezes it: lines and amounts never change
again. A mistake is corrected by voiding the invoice or by issuing a credit note.

Totals (:func:`assemble`)::

    subtotal      = Σ line amounts                  (tax-inclusive lines include their tax)
    discount      = coupon on the positive subtotal, rounded once
    tax           = rate on (taxable lines − their discount), rounded once, spread over lines
    total         = subtotal − discount + exclusive tax
    amount_due    = total − credit applied from the customer's balance

so that ``amount_due == (subtotal − inclusive tax) + tax − discount − credit`` always holds. An
invoice whose total is negative (a downgrade's proration) is due 0 and its credit goes to the
customer's balance, which the next invoice consumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

from billing_core.discounts import Coupon
from billing_core.errors import CurrencyMismatch, InvalidInput
from billing_core.money import Currency, allocate, check_minor, round_minor
from billing_core.state_machine import StateMachine
from billing_core.tax import TaxRate


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class InvoiceEvent(StrEnum):
    FINALIZE = "finalize"
    PAY = "pay"
    VOID = "void"
    MARK_UNCOLLECTIBLE = "mark_uncollectible"


INVOICE_LIFECYCLE: StateMachine[InvoiceStatus, InvoiceEvent] = StateMachine(
    entity="invoice",
    states=InvoiceStatus,
    events=InvoiceEvent,
    transitions={
        (InvoiceStatus.DRAFT, InvoiceEvent.FINALIZE): InvoiceStatus.OPEN,
        (InvoiceStatus.DRAFT, InvoiceEvent.VOID): InvoiceStatus.VOID,
        (InvoiceStatus.OPEN, InvoiceEvent.PAY): InvoiceStatus.PAID,
        (InvoiceStatus.OPEN, InvoiceEvent.VOID): InvoiceStatus.VOID,
        (InvoiceStatus.OPEN, InvoiceEvent.MARK_UNCOLLECTIBLE): InvoiceStatus.UNCOLLECTIBLE,
        (InvoiceStatus.UNCOLLECTIBLE, InvoiceEvent.PAY): InvoiceStatus.PAID,
        (InvoiceStatus.UNCOLLECTIBLE, InvoiceEvent.VOID): InvoiceStatus.VOID,
    },
    terminal=frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
)


class LineKind(StrEnum):
    SUBSCRIPTION = "subscription"  # a licensed price for a period, in advance
    USAGE = "usage"  # a metered price for the period just ended, in arrears
    PRORATION = "proration"  # credit for unused time or charge for remaining time
    ONE_TIME = "one_time"  # a one-time charge


class BillingReason(StrEnum):
    SUBSCRIPTION_CYCLE = "subscription_cycle"
    SUBSCRIPTION_UPDATE = "subscription_update"
    SUBSCRIPTION_FINAL = "subscription_final"
    MANUAL = "manual"


class LineDraft(NamedTuple):
    """A line before it is on an invoice; its amount is already rounded once. Immutable."""

    kind: LineKind
    description: str
    amount_minor: int
    currency: Currency
    quantity: int = 1
    price_id: int | None = None
    subscription_id: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    taxable: bool = True


class Totals(NamedTuple):
    """An invoice's amounts, and each line's share of the discount and the tax. Immutable."""

    currency: Currency
    subtotal_minor: int
    discount_minor: int
    tax_minor: int
    tax_inclusive: bool
    total_minor: int
    credit_applied_minor: int
    amount_due_minor: int
    credit_to_balance_minor: int
    line_discounts_minor: tuple[int, ...]
    line_taxes_minor: tuple[int, ...]

    @property
    def exclusive_tax_minor(self) -> int:
        return 0 if self.tax_inclusive else self.tax_minor


def assemble(
    invoice_currency: Currency,
    lines: Sequence[LineDraft],
    *,
    coupon: Coupon | None = None,
    tax_rate: TaxRate | None = None,
    credit_balance_minor: int = 0,
) -> Totals:
    """Compute an invoice's totals from its lines. Pure: no I/O, no clock."""
    check_minor(credit_balance_minor, "credit_balance_minor")
    if credit_balance_minor < 0:
        raise InvalidInput("credit_balance_minor", "a balance >= 0", credit_balance_minor)
    for index, line in enumerate(lines):
        if line.currency != invoice_currency:
            raise CurrencyMismatch(f"lines[{index}].currency", invoice_currency.code, line.currency.code)
        check_minor(line.amount_minor, f"lines[{index}].amount_minor")
    amounts = [line.amount_minor for line in lines]
    subtotal = sum(amounts)
    discount = coupon.discount_minor(subtotal, invoice_currency) if coupon else 0
    line_discounts = allocate(discount, [max(a, 0) for a in amounts]) if lines else []

    tax = 0
    line_taxes = [0] * len(lines)
    inclusive = bool(tax_rate and tax_rate.inclusive)
    if tax_rate is not None and lines:
        numerator, denominator = tax_factor(tax_rate.percentage, tax_rate.inclusive)
        # exact tax of line i is scaled[i] / denominator
        scaled = [
            (amounts[i] - line_discounts[i]) * numerator if lines[i].taxable else 0 for i in range(len(lines))
        ]
        tax = round_minor(Fraction(sum(scaled), denominator))
        line_taxes = spread(tax, scaled, denominator)

    total = subtotal - discount + (0 if inclusive else tax)
    if total >= 0:
        credit_applied = min(credit_balance_minor, total)
        amount_due = total - credit_applied
        to_balance = 0
    else:
        credit_applied = 0
        amount_due = 0
        to_balance = -total
    return Totals(
        currency=invoice_currency,
        subtotal_minor=subtotal,
        discount_minor=discount,
        tax_minor=tax,
        tax_inclusive=inclusive,
        total_minor=total,
        credit_applied_minor=credit_applied,
        amount_due_minor=amount_due,
        credit_to_balance_minor=to_balance,
        line_discounts_minor=tuple(line_discounts),
        line_taxes_minor=tuple(line_taxes),
    )


@lru_cache(maxsize=256)
def tax_factor(percentage: Decimal, inclusive: bool) -> tuple[int, int]:
    """The share of a base that is tax, as an exact fraction ``(numerator, denominator)``."""
    rate = Fraction(percentage) / 100
    factor = rate / (1 + rate) if inclusive else rate
    return factor.numerator, factor.denominator


def spread(total_minor: int, scaled: Sequence[int], denominator: int) -> list[int]:
    """Spread a rounded total over signed exact parts ``scaled[i] / denominator``.

    ``total_minor`` must be the rounding of their sum. Each part gets the floor of its exact
    value and the units left over go to the parts with the largest fractional remainders, so
    the parts sum to ``total_minor`` and keep their signs.
    """
    floors = []
    remainders = []
    for value in scaled:
        floor, remainder = divmod(value, denominator)
        floors.append(floor)
        remainders.append(remainder)
    left = total_minor - sum(floors)
    if not 0 <= left <= len(scaled):
        raise InvalidInput("total_minor", "the rounded sum of the parts", total_minor)
    if left:
        for i in sorted(range(len(scaled)), key=lambda i: (-remainders[i], i))[:left]:
            floors[i] += 1
    return floors
