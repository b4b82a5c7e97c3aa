"""Catalog pricing: flat, per unit, graduated, volume and package, and their validation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core.catalog import PricingModel, Tier, price_amount, validate_tiers
from billing_core.errors import InvalidInput
from tests.strategies import quantities, tiers, unit_prices

G, V = PricingModel.GRADUATED, PricingModel.VOLUME


def graduated_by_hand(quantity: int, tiers_: tuple[Tier, ...]) -> Decimal:
    """Each unit is priced by the tier it falls in; each tier that is reached adds its flat fee."""
    total, lower = Decimal(0), 0
    for tier in tiers_:
        upper = tier.up_to if tier.up_to is not None else max(quantity, lower)
        units = max(0, min(quantity, upper) - lower)
        if units:
            total += units * tier.unit_amount_minor + tier.flat_amount_minor
        lower = upper
    return total


@given(quantities, tiers())
def test_graduated_prices_each_slice_at_its_own_tier(quantity: int, tiers_: tuple[Tier, ...]) -> None:
    assert price_amount(G, quantity, tiers=tiers_) == graduated_by_hand(quantity, tiers_)


@given(quantities, quantities, tiers())
def test_graduated_is_monotone_in_quantity(a: int, b: int, tiers_: tuple[Tier, ...]) -> None:
    low, high = sorted((a, b))
    assert price_amount(G, low, tiers=tiers_) <= price_amount(G, high, tiers=tiers_)


@given(st.integers(min_value=1, max_value=10**7), tiers())
def test_volume_prices_the_whole_quantity_at_one_tier(quantity: int, tiers_: tuple[Tier, ...]) -> None:
    tier = next(t for t in tiers_ if t.up_to is None or quantity <= t.up_to)
    assert (
        price_amount(V, quantity, tiers=tiers_) == quantity * tier.unit_amount_minor + tier.flat_amount_minor
    )


def test_zero_usage_costs_nothing_on_tiered_prices() -> None:
    tiers_ = (Tier(1000, Decimal(0), 500), Tier(None, Decimal("0.5")))
    assert price_amount(G, 0, tiers=tiers_) == 0
    assert price_amount(V, 0, tiers=tiers_) == 0


def test_crossing_a_tier_boundary() -> None:
    # 1,000 free calls, then 0.20 cents each up to 100,000, then 0.10 cents plus a 5.00 flat fee
    tiers_ = (Tier(1_000, Decimal(0)), Tier(100_000, Decimal("0.2")), Tier(None, Decimal("0.1"), 5_00))
    assert price_amount(G, 1_000, tiers=tiers_) == 0
    assert price_amount(G, 1_001, tiers=tiers_) == Decimal("0.2")
    assert price_amount(G, 150_000, tiers=tiers_) == 99_000 * Decimal("0.2") + 50_000 * Decimal("0.1") + 5_00
    assert price_amount(V, 150_000, tiers=tiers_) == 150_000 * Decimal("0.1") + 5_00


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=5000), unit_prices)
def test_package_charges_every_started_package(quantity: int, size: int, unit: Decimal) -> None:
    packages = -(-quantity // size)
    assert (
        price_amount(PricingModel.PACKAGE, quantity, unit_amount_minor=unit, package_size=size)
        == packages * unit
    )


@given(quantities, unit_prices)
def test_flat_and_per_unit(quantity: int, unit: Decimal) -> None:
    assert price_amount(PricingModel.FLAT, quantity, unit_amount_minor=unit) == unit
    assert price_amount(PricingModel.PER_UNIT, quantity, unit_amount_minor=unit) == unit * quantity


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (
            [
                {"up_to": 100, "unit_amount_minor": "1"},
                {"up_to": 50, "unit_amount_minor": "1"},
                {"up_to": None},
            ],
            "tiers[1].up_to",
        ),
        (
            [{"up_to": 100, "unit_amount_minor": "-1"}, {"up_to": None, "unit_amount_minor": "1"}],
            "tiers[0].unit_amount_minor",
        ),
        ([{"up_to": 100, "unit_amount_minor": "1"}], "tiers[0].up_to"),
        ([], "tiers"),
    ],
)
def test_bad_tiers_name_the_field(raw: list[dict[str, object]], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_tiers(raw)
    assert info.value.field.startswith(field.split(".")[0])
    assert info.value.field == field or field == "tiers"


def test_negative_or_float_quantity_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        price_amount(PricingModel.PER_UNIT, -1, unit_amount_minor=Decimal(1))
    assert info.value.field == "quantity"
    assert info.value.got == -1
    with pytest.raises(InvalidInput):
        price_amount(PricingModel.PER_UNIT, 1.5, unit_amount_minor=Decimal(1))  # type: ignore[arg-type]
