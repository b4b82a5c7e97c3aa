"""Proration on the customer's calendar, tax, discounts and credits: the arithmetic of an invoice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core.discounts import Coupon, Duration
from billing_core.errors import CurrencyMismatch, InvalidInput
from billing_core.invoices import LineDraft, LineKind, assemble
from billing_core.money import currency, round_minor
from billing_core.periods import Schedule, add_months, days_between, prorate_change, unused_part
from billing_core.tax import TaxRate, tax_on
from tests.strategies import invoice_lines, non_negative_minor, percentages

USD, JPY, KWD = currency("USD"), currency("JPY"), currency("KWD")


# ------------------------------------------------------------------------------------ periods


@pytest.mark.parametrize(
    ("start", "months", "anchor", "expected"),
    [
        (date(2026, 1, 31), 1, 31, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, 31, date(2028, 2, 29)),
        (date(2026, 2, 28), 1, 31, date(2026, 3, 31)),  # the anchor day comes back after a short month
        (date(2026, 12, 15), 1, 15, date(2027, 1, 15)),
        (date(2026, 3, 31), -1, 31, date(2026, 2, 28)),
        (date(2024, 2, 29), 12, 29, date(2025, 2, 28)),
    ],
)
def test_add_months_clamps_to_short_months(start: date, months: int, anchor: int, expected: date) -> None:
    assert add_months(start, months, anchor) == expected


def test_boundaries_stay_at_local_midnight_across_daylight_saving() -> None:
    berlin_midnight = datetime(2026, 1, 15, 23, tzinfo=UTC)  # 00:00 on 16 January in Berlin
    schedule = Schedule(berlin_midnight, "Europe/Berlin", 1, berlin_midnight)
    # 16 April is summer time (UTC+2): local midnight is 22:00 UTC
    assert schedule.boundary(3) == datetime(2026, 4, 15, 22, tzinfo=UTC)
    assert schedule.boundary(10) == datetime(2026, 11, 15, 23, tzinfo=UTC)
    assert schedule.full_period_days(0) == 31


def test_local_days_differ_from_utc_days() -> None:
    start = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)  # already 1 February in Berlin
    end = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)  # 1 March in Berlin
    assert days_between(start, end, "Europe/Berlin") == 28
    assert days_between(start, end, "America/New_York") == 28
    assert days_between(start, start + timedelta(hours=1), "Europe/Berlin") == 0


@given(non_negative_minor, st.integers(min_value=1, max_value=366), st.data())
def test_unused_and_used_parts_conserve_the_amount(amount: int, total: int, data: st.DataObject) -> None:
    remaining = data.draw(st.integers(min_value=0, max_value=total))
    unused = unused_part(amount, remaining, total)
    used = amount - unused
    assert 0 <= unused <= amount
    assert abs(Fraction(amount * remaining, total) - unused) <= Fraction(1, 2)
    assert used >= 0


@given(
    st.integers(min_value=0, max_value=10**8),
    st.integers(min_value=0, max_value=10**8),
    st.integers(min_value=0, max_value=30 * 24),
)
def test_upgrade_proration(old: int, new: int, hours_in: int) -> None:
    start = datetime(2026, 3, 10, 8, tzinfo=UTC)
    end = datetime(2026, 4, 10, 7, tzinfo=UTC)  # a month in Berlin, across the switch to summer time
    change = start + timedelta(hours=hours_in)
    p = prorate_change(
        old_amount_minor=old,
        new_amount_minor=new,
        period_start=start,
        period_end=end,
        change_at=change,
        tz_name="Europe/Berlin",
    )
    assert p.total_days == 31
    assert -old <= p.credit_minor <= 0
    assert 0 <= p.charge_minor <= new
    assert p.remaining_days == days_between(change, end, "Europe/Berlin")
    # whoever pays old for the used days and new for the rest never pays more than the dearer price
    assert (old + p.credit_minor) + p.charge_minor <= max(old, new) + 1


def test_change_at_the_start_of_the_period_credits_everything() -> None:
    start, end = datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 2, 10, tzinfo=UTC)
    p = prorate_change(
        old_amount_minor=49_00,
        new_amount_minor=199_00,
        period_start=start,
        period_end=end,
        change_at=start,
        tz_name="UTC",
    )
    assert (p.credit_minor, p.charge_minor, p.net_minor) == (-49_00, 199_00, 150_00)


def test_change_outside_the_period_is_refused() -> None:
    start, end = datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 2, 10, tzinfo=UTC)
    with pytest.raises(InvalidInput) as info:
        prorate_change(
            old_amount_minor=1,
            new_amount_minor=2,
            period_start=start,
            period_end=end,
            change_at=end,
            tz_name="UTC",
        )
    assert info.value.field == "change_at"


# ---------------------------------------------------------------------------------------- tax


@given(st.integers(min_value=0, max_value=10**12), percentages)
def test_exclusive_tax_is_the_rate_rounded_once(base: int, pct: Decimal) -> None:
    assert tax_on(base, pct, inclusive=False) == round_minor(Fraction(base) * Fraction(pct) / 100)


@given(st.integers(min_value=0, max_value=10**12), percentages)
def test_inclusive_tax_splits_the_gross_exactly(gross: int, pct: Decimal) -> None:
    tax = tax_on(gross, pct, inclusive=True)
    net = gross - tax
    assert net + tax == gross
    # the net grossed up again lands within half a unit (plus the rate's share of it) of the gross
    assert abs(Fraction(net) * (1 + Fraction(pct) / 100) - gross) <= 1


def test_tax_examples() -> None:
    assert tax_on(100_00, Decimal("19"), inclusive=True) == 15_97  # 100.00 gross holds 15.97 VAT
    assert tax_on(100_00, Decimal("7.25"), inclusive=False) == 7_25
    assert tax_on(5, Decimal("10"), inclusive=False) == 1  # 0.5 rounds away from zero
    assert tax_on(1_000, Decimal("10"), inclusive=False) == 100


# ------------------------------------------------------------------------- discounts, credits


def coupon(**kwargs: object) -> Coupon:
    return Coupon(id=1, name="c", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("duration", "periods", "applies"),
    [
        (Duration.ONCE, None, [True, False, False]),
        (Duration.REPEATING, 2, [True, True, False]),
        (Duration.FOREVER, None, [True, True, True]),
    ],
)
def test_discount_durations(duration: Duration, periods: int | None, applies: list[bool]) -> None:
    c = coupon(duration=duration, percent_off=Decimal(10), duration_in_periods=periods)
    assert [c.applies_to_invoice(n) for n in range(3)] == applies


@given(st.integers(min_value=-(10**6), max_value=10**10), st.decimals(min_value=0, max_value=100, places=2))
def test_a_percent_discount_stays_between_zero_and_the_subtotal(subtotal: int, pct: Decimal) -> None:
    d = coupon(duration=Duration.FOREVER, percent_off=pct).discount_minor(subtotal, USD)
    assert 0 <= d <= max(subtotal, 0)


def test_an_amount_discount_is_capped_and_must_match_the_currency() -> None:
    c = coupon(duration=Duration.ONCE, amount_off_minor=10_00, currency=USD)
    assert c.discount_minor(25_00, USD) == 10_00
    assert c.discount_minor(4_00, USD) == 4_00
    with pytest.raises(CurrencyMismatch):
        c.discount_minor(25_00, JPY)


@given(st.data(), st.sampled_from([USD, JPY, KWD]), non_negative_minor, st.booleans(), percentages)
def test_invoice_totals_hold_together(
    data: st.DataObject, cur, balance: int, inclusive: bool, pct: Decimal
) -> None:  # type: ignore[no-untyped-def]
    lines = data.draw(invoice_lines(cur))
    c = data.draw(
        st.none()
        | st.builds(
            lambda p: coupon(duration=Duration.FOREVER, percent_off=p),
            st.decimals(min_value=0, max_value=100, places=1),
        )
    )
    rate = TaxRate(1, "XX", pct, inclusive)
    t = assemble(cur, lines, coupon=c, tax_rate=rate, credit_balance_minor=balance)
    amounts = [line.amount_minor for line in lines]
    assert t.subtotal_minor == sum(amounts)
    assert sum(t.line_discounts_minor) == t.discount_minor
    assert sum(t.line_taxes_minor) == t.tax_minor
    assert t.total_minor == t.subtotal_minor - t.discount_minor + (0 if inclusive else t.tax_minor)
    assert 0 <= t.credit_applied_minor <= balance
    assert (
        t.amount_due_minor == t.total_minor - t.credit_applied_minor
        if t.total_minor >= 0
        else t.amount_due_minor == 0
    )
    assert t.amount_due_minor >= 0
    if t.total_minor >= 0:
        assert t.credit_applied_minor == min(balance, t.total_minor)
        assert t.credit_to_balance_minor == 0
    else:
        assert t.credit_to_balance_minor == -t.total_minor
    for line, tax in zip(lines, t.line_taxes_minor, strict=True):
        if not line.taxable:
            assert tax == 0


def test_assemble_refuses_a_line_in_another_currency() -> None:
    lines = [
        LineDraft(LineKind.SUBSCRIPTION, "a", 10_00, USD),
        LineDraft(LineKind.ONE_TIME, "b", 5_00, currency("EUR")),
    ]
    with pytest.raises(CurrencyMismatch) as info:
        assemble(USD, lines)
    assert info.value.field == "lines[1].currency"
    assert info.value.got == "EUR"


def test_kwd_and_jpy_round_to_their_own_exponents() -> None:
    kwd = assemble(
        KWD,
        [LineDraft(LineKind.SUBSCRIPTION, "plan", 14_700, KWD)],
        tax_rate=TaxRate(1, "KW", Decimal("5.5"), False),
    )
    assert kwd.tax_minor == 809  # 14.700 KWD × 5.5% = 0.8085 → 0.809
    jpy = assemble(
        JPY,
        [LineDraft(LineKind.SUBSCRIPTION, "plan", 7_350, JPY)],
        tax_rate=TaxRate(1, "JP", Decimal("10"), False),
    )
    assert (jpy.tax_minor, jpy.total_minor) == (735, 8_085)
