"""Coupons and discounts: a percentage or a fixed amount, once, for some periods, or forever.

A discount applies to an invoice's positive subtotal before tax, is rounded once, and never makes
the subtotal negative. ``once`` applies to the first invoice that the discount meets, ``repeating``
to the first ``duration_in_periods`` invoices, ``forever`` to every one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from billing_core.catalog import decimal_value, positive_int
from billing_core.errors import CurrencyMismatch, InvalidInput
from billing_core.money import Currency, currency, round_minor


class Duration(StrEnum):
    ONCE = "once"
    REPEATING = "repeating"
    FOREVER = "forever"


@dataclass(frozen=True, slots=True)
class Coupon:
    id: int
    name: str
    duration: Duration
    percent_off: Decimal | None = None
    amount_off_minor: int | None = None
    currency: Currency | None = None
    duration_in_periods: int | None = None

    def applies_to_invoice(self, invoices_discounted_so_far: int) -> bool:
        """Does the discount apply to the next invoice, given how many it already reduced?"""
        if self.duration is Duration.FOREVER:
            return True
        if self.duration is Duration.ONCE:
            return invoices_discounted_so_far == 0
        assert self.duration_in_periods is not None
        return invoices_discounted_so_far < self.duration_in_periods

    def discount_minor(self, subtotal_minor: int, invoice_currency: Currency) -> int:
        """The discount on a subtotal: rounded once, between 0 and the subtotal."""
        if subtotal_minor <= 0:
            return 0
        if self.percent_off is not None:
            return min(subtotal_minor, round_minor(Decimal(subtotal_minor) * self.percent_off / 100))
        assert self.amount_off_minor is not None
        if self.currency != invoice_currency:
            raise CurrencyMismatch(
                "coupon.currency", invoice_currency.code, self.currency.code if self.currency else None
            )
        return min(subtotal_minor, self.amount_off_minor)


def validate_coupon(
    *,
    name: object,
    duration: object,
    percent_off: object = None,
    amount_off_minor: object = None,
    currency_code: object = None,
    duration_in_periods: object = None,
) -> dict[str, object]:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name", "a non-empty name", name)
    try:
        kind = Duration(duration)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidInput("duration", "once, repeating or forever", duration) from exc
    if (percent_off is None) == (amount_off_minor is None):
        raise InvalidInput("percent_off", "exactly one of percent_off and amount_off_minor", percent_off)
    pct: Decimal | None = None
    amount: int | None = None
    cur: Currency | None = None
    if percent_off is not None:
        pct = decimal_value(percent_off, "percent_off")
        if not Decimal(0) < pct <= Decimal(100):
            raise InvalidInput("percent_off", "a percentage in (0, 100]", percent_off)
        if currency_code is not None:
            raise InvalidInput("currency", "no currency for a percentage coupon", currency_code)
    else:
        if (
            isinstance(amount_off_minor, bool)
            or not isinstance(amount_off_minor, int)
            or amount_off_minor <= 0
        ):
            raise InvalidInput("amount_off_minor", "an integer number of minor units > 0", amount_off_minor)
        amount = amount_off_minor
        cur = currency(currency_code)
    periods: int | None = None
    if kind is Duration.REPEATING:
        periods = positive_int(duration_in_periods, "duration_in_periods")
    elif duration_in_periods is not None:
        raise InvalidInput("duration_in_periods", f"none for a {kind} coupon", duration_in_periods)
    return {
        "name": name.strip(),
        "duration": kind,
        "percent_off": pct,
        "amount_off_minor": amount,
        "currency": cur,
        "duration_in_periods": periods,
    }
