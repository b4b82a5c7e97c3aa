"""The world's catalog in the billing core: real prices for the world's plans, made by the use cases.

The world's plans (:data:`~billing_core.simulation.params.PLANS`: basic, pro, business, pro_annual,
the per-seat plan, and the metered ``api_calls`` add-on) carry the names of the plans
:func:`billing_core.book.build_catalog` creates, so the runner builds that catalog (products,
prices in USD, EUR, GBP, JPY and KWD, monthly and annual, licensed seats, the graduated
``api_calls`` tiers, tax rates per country) through the use cases and maps each world plan to its
price in the customer's currency.

Under the ``price_increase`` scenario :func:`raise_prices` adds a second price per licensed plan
and currency (the list price times :meth:`WorldParams.price_multiplier`); subscriptions move to
it at their next renewal, and customers who sign up after the increase start on it. Metered
prices are not raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from billing_core.book import Catalog, build_catalog
from billing_core.catalog import PricingModel
from billing_core.context import BillingContext
from billing_core.errors import InvalidInput
from billing_core.services.create_price import create_price
from billing_core.simulation.params import METERED_ADDON, PLANS

#: the metric the metered add-on bills
USAGE_METRIC = "api_calls"


@dataclass
class WorldCatalog:
    """Price ids per currency and world plan, and tax rates per country."""

    book: Catalog
    #: currency -> plan name -> price id of the raised price (``price_increase`` only)
    raised: dict[str, dict[str, int]] = field(default_factory=dict)

    def plan_price(self, currency: str, plan: str, *, raised: bool = False) -> int:
        """The price id of ``plan`` in ``currency`` (the raised one once prices went up)."""
        table = self.raised if raised and self.raised else self.book.plans
        try:
            return table[currency][plan]
        except KeyError as exc:
            raise InvalidInput("plan", "a plan of the world's catalog", f"{plan} in {currency}") from exc

    def addon_price(self, currency: str) -> int:
        return self.plan_price(currency, METERED_ADDON.name)

    def tax_rate(self, country: str) -> int | None:
        return self.book.tax_by_country.get(country)

    def months_per_period(self, price_id: int) -> int:
        return self.book.prices[price_id].months_per_period

    def unit_amount_minor(self, price_id: int) -> Decimal:
        return self.book.prices[price_id].unit_amount_minor


def build_world_catalog(ctx: BillingContext) -> WorldCatalog:
    """Create the catalog through the use cases (products, metrics, prices, coupons, tax rates)."""
    return WorldCatalog(build_catalog(ctx))


def raise_prices(ctx: BillingContext, catalog: WorldCatalog, multiplier: float) -> dict[str, dict[str, int]]:
    """Add a raised price for every licensed plan and currency; returns ``{currency: {plan: id}}``.

    The new unit amount is the old one times ``multiplier``, rounded half up to a whole minor unit.
    """
    if multiplier <= 0:
        raise InvalidInput("multiplier", "a factor > 0", multiplier)
    factor = Decimal(str(multiplier))
    raised: dict[str, dict[str, int]] = {}
    for code, plans in catalog.book.plans.items():
        raised[code] = {}
        for plan in PLANS:
            old = catalog.book.prices[plans[plan.name]]
            if old.model not in (PricingModel.FLAT, PricingModel.PER_UNIT):
                raise InvalidInput("plan", "a flat or per-unit plan price", old.model.value)
            amount = (old.unit_amount_minor * factor).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            price = create_price(
                ctx,
                product_id=old.product_id,
                currency=code,
                model=old.model.value,
                interval=old.interval.value,
                interval_count=old.interval_count,
                unit_amount_minor=amount,
                nickname=f"{plan.name} ({code}, raised)",
            )
            catalog.book.prices[price.id] = price
            raised[code][plan.name] = price.id
        raised[code][METERED_ADDON.name] = plans[METERED_ADDON.name]
    catalog.raised = raised
    return raised
