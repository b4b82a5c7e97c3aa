"""Money: minor units, exponents, the single rounding rule, allocation."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core.errors import CurrencyMismatch, InvalidInput, UnknownCurrency
from billing_core.money import Money, allocate, currency, round_minor
from tests.strategies import currencies, minor_amounts, weights


@pytest.mark.parametrize(("code", "exponent"), [("JPY", 0), ("USD", 2), ("EUR", 2), ("KWD", 3), ("BHD", 3)])
def test_exponents_follow_iso_4217(code: str, exponent: int) -> None:
    assert currency(code).exponent == exponent
    assert currency(code).minor_per_major == 10**exponent


def test_unknown_currency_names_field_expected_and_got() -> None:
    with pytest.raises(UnknownCurrency) as info:
        currency("XYZ", field="customer.currency")
    error = info.value
    assert error.field == "customer.currency"
    assert error.got == "XYZ"
    assert "ISO 4217" in str(error.expected) or "currency" in str(error.expected)
    assert error.to_dict()["field"] == "customer.currency"


def test_from_major_rounds_once_half_away_from_zero() -> None:
    assert Money.from_major("12.345", "USD").amount_minor == 1235
    assert Money.from_major("-12.345", "USD").amount_minor == -1235
    assert Money.from_major("12.3449", "USD").amount_minor == 1234
    assert Money.from_major("100.5", "JPY").amount_minor == 101
    assert Money.from_major("1.2345", "KWD").amount_minor == 1235
    assert str(Money.of(1_234_500, "KWD")) == "1234.500 KWD"
    assert str(Money.of(150_00, "USD")) == "150.00 USD"
    assert str(Money.of(150, "JPY")) == "150 JPY"


@given(st.integers(min_value=-(10**9), max_value=10**9), st.integers(min_value=1, max_value=10**6))
def test_round_minor_is_half_away_from_zero_for_fractions_and_decimals(
    numerator: int, denominator: int
) -> None:
    exact = Fraction(numerator, denominator)
    rounded = round_minor(exact)
    assert abs(exact - rounded) <= Fraction(1, 2)
    if abs(exact - rounded) == Fraction(1, 2):  # a tie goes away from zero
        assert abs(rounded) > abs(exact)
    assert (
        round_minor(
            Decimal(numerator) / Decimal(denominator) if denominator in (1, 2, 4, 5, 8, 10) else exact
        )
        == rounded
    )


def test_money_is_immutable_and_refuses_floats_and_mixed_currencies() -> None:
    a = Money.of(10_00, "USD")
    with pytest.raises(AttributeError):
        a.amount_minor = 5  # type: ignore[misc]
    with pytest.raises(InvalidInput) as info:
        Money.of(10.5, "USD")  # type: ignore[arg-type]
    assert info.value.field == "amount_minor"
    with pytest.raises(CurrencyMismatch) as mixed:
        _ = a + Money.of(1_00, "EUR")
    assert mixed.value.got == "EUR"
    assert (a + Money.of(5, "USD")).amount_minor == 10_05


@given(minor_amounts, weights)
def test_allocation_never_loses_or_invents_a_minor_unit(total: int, parts: list[int]) -> None:
    shares = allocate(total, parts)
    assert len(shares) == len(parts)
    assert sum(shares) == total


@given(minor_amounts, weights)
def test_allocation_is_within_one_unit_of_the_exact_share(total: int, parts: list[int]) -> None:
    shares = allocate(total, parts)
    weight = sum(parts)
    for share, part in zip(shares, parts, strict=True):
        exact = Fraction(total * part, weight) if weight else Fraction(total, len(parts))
        assert abs(share - exact) < 1
        if total >= 0:
            assert share >= 0
        else:
            assert share <= 0


@given(minor_amounts, weights)
def test_allocation_is_deterministic_and_scale_free(total: int, parts: list[int]) -> None:
    assert allocate(total, parts) == allocate(total, parts)
    assert allocate(total, parts) == allocate(total, [p * 7 for p in parts])


@given(currencies, minor_amounts, weights)
def test_money_allocate_keeps_currency(cur, total: int, parts: list[int]) -> None:  # type: ignore[no-untyped-def]
    shares = Money(total, cur).allocate(parts)
    assert {s.currency for s in shares} == {cur}
    assert sum(s.amount_minor for s in shares) == total


def test_allocation_errors_name_the_weight() -> None:
    with pytest.raises(InvalidInput) as info:
        allocate(100, [1, Decimal(-1)])
    assert info.value.field == "weights[1]"
    with pytest.raises(InvalidInput):
        allocate(100, [])
    assert allocate(100, [0, 0, 0]) == [34, 33, 33]
    assert allocate(100, [Decimal("0.5"), Fraction(1, 4), 0]) == [67, 33, 0]


def test_errors_survive_pickling_between_processes() -> None:
    import pickle

    from billing_core.errors import InvalidTransition, NotFound

    for error in (
        InvalidInput("amount_minor", "an integer >= 0", -5, hint="minor units"),
        NotFound("customer_id", "customer", 42),
        InvalidTransition(
            entity="subscription", entity_id=7, state="canceled", action="pause", allowed_from=["active"]
        ),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (copy.field, copy.expected, copy.got, str(copy)) == (
            error.field,
            error.expected,
            error.got,
            str(error),
        )
