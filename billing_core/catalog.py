"""The catalog: products, billable metrics and prices, and the pure arithmetic of pricing.

Pricing models (amounts are in minor units and may carry fractions of a unit until they become a
line, where :func:`billing_core.money.round_minor` rounds them once):

``flat``
    A fixed amount per period, whatever the quantity.
``per_unit``
    ``unit_amount × quantity`` (seats, licences, API calls).
``graduated``
    Each tier prices the units that fall inside it; a tier's flat amount is added once when any
    unit reaches it. 1,500 calls over tiers "first 1,000 at 0.10, then 0.08" cost
    1,000 × 0.10 + 500 × 0.08.
``volume``
    The tier that the whole quantity reaches prices every unit (plus that tier's flat amount).
``package``
    ``ceil(quantity / package_size) × unit_amount``: 2,500 messages in packages of 1,000 cost
    three packages.

Licensed prices are billed in advance for the coming period with the subscription item's
quantity; metered prices are billed in arrears from usage events aggregated over the period just
ended (sum, max, unique count or last value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from enum import StrEnum

from billing_core.errors import InvalidInput
from billing_core.money import Currency, currency


class Interval(StrEnum):
    MONTH = "month"
    YEAR = "year"

    @property
    def months(self) -> int:
        return 12 if self is Interval.YEAR else 1


class PricingModel(StrEnum):
    FLAT = "flat"
    PER_UNIT = "per_unit"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"


class UsageType(StrEnum):
    LICENSED = "licensed"
    METERED = "metered"


class Aggregation(StrEnum):
    SUM = "sum"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"
    LAST = "last"


def decimal_value(value: object, field: str, *, minimum: Decimal | None = Decimal(0)) -> Decimal:
    """Parse an exact decimal (int, str or Decimal; floats are refused as inexact)."""
    if isinstance(value, (bool, float)):
        raise InvalidInput(field, "an exact decimal (int, str or Decimal), not a float", value)
    try:
        result = Decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise InvalidInput(field, "a decimal number", value) from exc
    if not result.is_finite():
        raise InvalidInput(field, "a finite decimal number", value)
    if minimum is not None and result < minimum:
        raise InvalidInput(field, f"a number >= {minimum}", value)
    return result


def positive_int(value: object, field: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(field, f"an integer >= {minimum}", value)
    return value


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class BillableMetric:
    """What usage events measure and how they are aggregated over a period."""

    code: str
    name: str
    aggregation: Aggregation


@dataclass(frozen=True, slots=True)
class Tier:
    """One tier: up to ``up_to`` units (``None`` for the last, open tier)."""

    up_to: int | None
    unit_amount_minor: Decimal = Decimal(0)
    flat_amount_minor: int = 0


@dataclass(frozen=True, slots=True)
class Price:
    """How much a product costs, in one currency, per interval."""

    id: int
    product_id: int
    currency: Currency
    model: PricingModel
    interval: Interval
    interval_count: int = 1
    usage_type: UsageType = UsageType.LICENSED
    unit_amount_minor: Decimal = Decimal(0)
    package_size: int | None = None
    tiers: tuple[Tier, ...] = ()
    metric_code: str | None = None
    trial_days: int = 0
    nickname: str = ""
    active: bool = True
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def months_per_period(self) -> int:
        return self.interval.months * self.interval_count

    def amount_minor(self, quantity: Decimal | int) -> Decimal:
        """Unrounded amount for ``quantity`` units over one full period."""
        return price_amount(
            self.model,
            quantity,
            unit_amount_minor=self.unit_amount_minor,
            package_size=self.package_size,
            tiers=self.tiers,
        )


def validate_price(
    *,
    currency_code: object,
    model: object,
    interval: object,
    interval_count: object = 1,
    usage_type: object = UsageType.LICENSED,
    unit_amount_minor: object = 0,
    package_size: object = None,
    tiers: Sequence[object] = (),
    metric_code: object = None,
    trial_days: object = 0,
) -> dict[str, object]:
    """Check a price definition field by field; returns the parsed values."""
    cur = currency(currency_code, field="currency")
    try:
        pricing_model = PricingModel(model)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidInput("model", "one of " + ", ".join(PricingModel), model) from exc
    try:
        price_interval = Interval(interval)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidInput("interval", "one of month, year", interval) from exc
    count = positive_int(interval_count, "interval_count")
    if count * price_interval.months > 36:
        raise InvalidInput("interval_count", "a period of at most 36 months", count)
    try:
        kind = UsageType(usage_type)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidInput("usage_type", "licensed or metered", usage_type) from exc
    unit = decimal_value(unit_amount_minor, "unit_amount_minor")
    size: int | None = None
    parsed_tiers: tuple[Tier, ...] = ()
    if pricing_model is PricingModel.PACKAGE:
        size = positive_int(package_size, "package_size")
    if pricing_model in (PricingModel.GRADUATED, PricingModel.VOLUME):
        parsed_tiers = validate_tiers(tiers)
    elif tiers:
        raise InvalidInput("tiers", f"no tiers for a {pricing_model} price", list(tiers))
    if kind is UsageType.METERED:
        if not isinstance(metric_code, str) or not metric_code:
            raise InvalidInput("metric_code", "a billable metric code for a metered price", metric_code)
        if pricing_model is PricingModel.FLAT:
            raise InvalidInput("model", "per_unit, graduated, volume or package for metered", model)
    elif metric_code is not None:
        raise InvalidInput("metric_code", "none for a licensed price", metric_code)
    days = trial_days if trial_days is not None else 0
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 730:
        raise InvalidInput("trial_days", "an integer between 0 and 730", trial_days)
    return {
        "currency": cur,
        "model": pricing_model,
        "interval": price_interval,
        "interval_count": count,
        "usage_type": kind,
        "unit_amount_minor": unit,
        "package_size": size,
        "tiers": parsed_tiers,
        "metric_code": metric_code,
        "trial_days": days,
    }


def validate_tiers(tiers: Sequence[object]) -> tuple[Tier, ...]:
    """Tiers ascend strictly by ``up_to`` and the last one is open (``up_to`` is None)."""
    if not tiers:
        raise InvalidInput("tiers", "at least one tier", list(tiers))
    parsed: list[Tier] = []
    previous = 0
    for index, raw in enumerate(tiers):
        if isinstance(raw, Tier):
            up_to, unit, flat = raw.up_to, raw.unit_amount_minor, raw.flat_amount_minor
        elif isinstance(raw, dict):
            up_to = raw.get("up_to")
            unit = raw.get("unit_amount_minor", 0)
            flat = raw.get("flat_amount_minor", 0)
        else:
            raise InvalidInput(f"tiers[{index}]", "a tier {up_to, unit_amount_minor, flat_amount_minor}", raw)
        last = index == len(tiers) - 1
        if last and up_to is not None:
            raise InvalidInput(f"tiers[{index}].up_to", "None (the last tier is open-ended)", up_to)
        if not last:
            if isinstance(up_to, bool) or not isinstance(up_to, int) or up_to <= previous:
                raise InvalidInput(f"tiers[{index}].up_to", f"an integer > {previous}", up_to)
            previous = up_to
        if isinstance(flat, bool) or not isinstance(flat, int) or flat < 0:
            raise InvalidInput(f"tiers[{index}].flat_amount_minor", "an integer >= 0", flat)
        parsed.append(Tier(up_to, decimal_value(unit, f"tiers[{index}].unit_amount_minor"), flat))
    return tuple(parsed)


def check_quantity(quantity: object, field: str = "quantity") -> Decimal:
    if isinstance(quantity, (bool, float)):
        raise InvalidInput(field, "a number >= 0 (int or Decimal)", quantity)
    if not isinstance(quantity, (int, Decimal)):
        raise InvalidInput(field, "a number >= 0 (int or Decimal)", quantity)
    value = Decimal(quantity)
    if not value.is_finite() or value < 0:
        raise InvalidInput(field, "a number >= 0", quantity)
    return value


def price_amount(
    model: PricingModel,
    quantity: Decimal | int,
    *,
    unit_amount_minor: Decimal = Decimal(0),
    package_size: int | None = None,
    tiers: Sequence[Tier] = (),
) -> Decimal:
    """The exact, unrounded amount in minor units of ``quantity`` units for one period."""
    q = check_quantity(quantity)
    if model is PricingModel.FLAT:
        return unit_amount_minor
    if model is PricingModel.PER_UNIT:
        return unit_amount_minor * q
    if model is PricingModel.PACKAGE:
        if not package_size:
            raise InvalidInput("package_size", "an integer >= 1", package_size)
        # every started package is charged (Decimal's // truncates, so ceil explicitly)
        packages = (q / package_size).to_integral_value(rounding=ROUND_CEILING)
        return unit_amount_minor * packages
    if model is PricingModel.GRADUATED:
        return graduated_amount(q, tiers)
    if model is PricingModel.VOLUME:
        return volume_amount(q, tiers)
    raise InvalidInput("model", "a pricing model", model)


def graduated_amount(quantity: Decimal, tiers: Sequence[Tier]) -> Decimal:
    total = Decimal(0)
    lower = Decimal(0)
    for tier in tiers:
        if quantity <= lower:
            break
        upper = Decimal(tier.up_to) if tier.up_to is not None else quantity
        units = min(quantity, upper) - lower
        if units > 0:
            total += units * tier.unit_amount_minor + tier.flat_amount_minor
        lower = upper
    return total


def volume_amount(quantity: Decimal, tiers: Sequence[Tier]) -> Decimal:
    if quantity == 0:
        return Decimal(0)
    for tier in tiers:
        if tier.up_to is None or quantity <= tier.up_to:
            return quantity * tier.unit_amount_minor + tier.flat_amount_minor
    raise InvalidInput("tiers", "an open-ended last tier", [t.up_to for t in tiers])
