"""A synthetic book of business: customers, plans and usage at any size, for benchmarks and demos.

:func:`build_book` fills a migrated database with a catalog (flat, per-seat, graduated, volume and
package prices in USD, EUR, GBP, JPY and KWD, monthly and annual), tax rates (exclusive and
inclusive), coupons (percent and amount; once, repeating, forever), and ``subscriptions``
subscriptions whose next period is due by ``as_of``, with usage, credit balances, trials ending,
scheduled downgrades, cancellations at period end and one-time charges waiting.

The catalog goes through the use cases; the customers, subscriptions and usage are written in
bulk (a million subscriptions in about a minute), exactly as the use cases would have left them.
:func:`expected_totals` prices every due subscription again, one at a time and without the
billing run's caches or SQL, so that a run can be checked invoice by invoice.

This is not the world simulator: nothing here models behaviour, only a plausible book.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from billing_core.catalog import Aggregation, Price, UsageType
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.discounts import Coupon
from billing_core.invoices import LineDraft, LineKind, Totals, assemble
from billing_core.money import currency, round_minor
from billing_core.periods import Schedule, add_months, local_date, to_utc
from billing_core.services.create_billable_metric import create_billable_metric
from billing_core.services.create_coupon import create_coupon
from billing_core.services.create_price import create_price
from billing_core.services.create_product import create_product
from billing_core.services.create_tax_rate import create_tax_rate
from billing_core.tax import TaxRate

# currency: (share of customers, scale of a USD minor unit, countries with their time zones)
MARKETS: dict[str, tuple[float, Decimal, list[tuple[str, str]]]] = {
    "USD": (
        0.50,
        Decimal(1),
        [("US", "America/New_York"), ("US", "America/Los_Angeles"), ("US", "America/Chicago")],
    ),
    "EUR": (0.25, Decimal("0.9"), [("DE", "Europe/Berlin"), ("FR", "Europe/Paris"), ("ES", "Europe/Madrid")]),
    "GBP": (0.10, Decimal("0.8"), [("GB", "Europe/London")]),
    "JPY": (0.10, Decimal("150"), [("JP", "Asia/Tokyo")]),
    "KWD": (0.05, Decimal("0.3"), [("KW", "Asia/Kuwait")]),
}
# jurisdiction: (percentage, inclusive)
TAXES: dict[str, tuple[str, bool]] = {
    "US": ("7.25", False),
    "DE": ("19", True),
    "FR": ("20", True),
    "ES": ("21", True),
    "GB": ("20", True),
    "JP": ("10", False),
}
LANGUAGES = {"US": "en", "DE": "de", "FR": "fr", "ES": "es", "GB": "en", "JP": "ja", "KW": "ar"}


@dataclass
class Catalog:
    prices: dict[int, Price] = field(default_factory=dict)
    # per currency: plan name -> price id
    plans: dict[str, dict[str, int]] = field(default_factory=dict)
    coupons: dict[int, Coupon] = field(default_factory=dict)
    coupons_by_currency: dict[str, list[int]] = field(default_factory=dict)
    tax_rates: dict[int, TaxRate] = field(default_factory=dict)
    tax_by_country: dict[str, int] = field(default_factory=dict)
    aggregations: dict[str, Aggregation] = field(default_factory=dict)


@dataclass
class BookResult:
    customers: int
    subscriptions: int
    usage_events: int
    catalog: Catalog
    as_of: datetime


def _scaled(amount_usd_minor: int | str, code: str) -> Decimal:
    """An amount given in US cents, in the minor units of ``code`` (a rough price list)."""
    scale = MARKETS[code][1]
    exponent = currency(code).exponent
    value = Decimal(amount_usd_minor) * scale * Decimal(10) ** (exponent - 2)
    return value.quantize(Decimal(1)) if value >= 10 else value.normalize()


def build_catalog(ctx: BillingContext) -> Catalog:
    catalog = Catalog()
    for code, aggregation in (
        ("api_calls", "sum"),
        ("storage_gb", "max"),
        ("messages", "sum"),
        ("active_users", "unique_count"),
    ):
        create_billable_metric(ctx, code=code, name=code.replace("_", " "), aggregation=aggregation)
        catalog.aggregations[code] = Aggregation(aggregation)
    product = create_product(ctx, name="Recoup Cloud")
    addon = create_product(ctx, name="Extras")
    for code in MARKETS:
        plans: dict[str, int] = {}

        def add(name: str, code: str = code, plans: dict[str, int] = plans, **kwargs: object) -> None:
            price = create_price(ctx, currency=code, nickname=f"{name} ({code})", **kwargs)  # type: ignore[arg-type]
            catalog.prices[price.id] = price
            plans[name] = price.id

        add(
            "basic",
            product_id=product.id,
            model="flat",
            interval="month",
            unit_amount_minor=_scaled(19_00, code),
        )
        add(
            "pro",
            product_id=product.id,
            model="flat",
            interval="month",
            unit_amount_minor=_scaled(49_00, code),
        )
        add(
            "business",
            product_id=product.id,
            model="flat",
            interval="month",
            unit_amount_minor=_scaled(199_00, code),
        )
        add(
            "pro_annual",
            product_id=product.id,
            model="flat",
            interval="year",
            unit_amount_minor=_scaled(490_00, code),
        )
        add(
            "seats",
            product_id=product.id,
            model="per_unit",
            interval="month",
            unit_amount_minor=_scaled(12_00, code),
        )
        add(
            "api_calls",
            product_id=addon.id,
            model="graduated",
            interval="month",
            usage_type="metered",
            metric_code="api_calls",
            tiers=[
                {"up_to": 10_000, "unit_amount_minor": "0"},
                {"up_to": 100_000, "unit_amount_minor": str(_scaled("0.2", code))},
                {
                    "up_to": None,
                    "unit_amount_minor": str(_scaled("0.1", code)),
                    "flat_amount_minor": int(_scaled(5_00, code)),
                },
            ],
        )
        add(
            "storage",
            product_id=addon.id,
            model="volume",
            interval="month",
            usage_type="metered",
            metric_code="storage_gb",
            tiers=[
                {"up_to": 100, "unit_amount_minor": str(_scaled(10, code))},
                {"up_to": 1000, "unit_amount_minor": str(_scaled(8, code))},
                {"up_to": None, "unit_amount_minor": str(_scaled(5, code))},
            ],
        )
        add(
            "messages",
            product_id=addon.id,
            model="package",
            interval="month",
            usage_type="metered",
            metric_code="messages",
            package_size=1000,
            unit_amount_minor=_scaled(2_50, code),
        )
        add(
            "active_users",
            product_id=addon.id,
            model="per_unit",
            interval="month",
            usage_type="metered",
            metric_code="active_users",
            unit_amount_minor=_scaled(1_00, code),
        )
        catalog.plans[code] = plans
        coupons = [
            create_coupon(ctx, name=f"20% forever ({code})", duration="forever", percent_off="20"),
            create_coupon(
                ctx, name=f"50% for 3 ({code})", duration="repeating", percent_off="50", duration_in_periods=3
            ),
            create_coupon(
                ctx,
                name=f"10 off once ({code})",
                duration="once",
                amount_off_minor=int(_scaled(10_00, code)),
                currency=code,
            ),
        ]
        for coupon in coupons:
            catalog.coupons[coupon.id] = coupon
        catalog.coupons_by_currency[code] = [c.id for c in coupons]
    for country, (pct, inclusive) in TAXES.items():
        rate = create_tax_rate(
            ctx,
            jurisdiction=country,
            percentage=pct,
            inclusive=inclusive,
            display_name="VAT" if inclusive else "Sales tax",
        )
        catalog.tax_rates[rate.id] = rate
        catalog.tax_by_country[country] = rate.id
    return catalog


def _weighted(rng: random.Random, options: list[tuple[str, float]]) -> str:
    u = rng.random() * sum(w for _, w in options)
    for value, weight in options:
        u -= weight
        if u <= 0:
            return value
    return options[-1][0]


def build_book(
    ctx: BillingContext,
    *,
    subscriptions: int,
    as_of: datetime,
    seed: int = 7,
    chunk_size: int = 50_000,
    on_progress: Callable[[int], None] | None = None,
) -> BookResult:
    """Write a book whose ``subscriptions`` subscriptions are all due exactly once by ``as_of``."""
    rng = random.Random(seed)
    catalog = build_catalog(ctx)
    currency_weights = [(code, market[0]) for code, market in MARKETS.items()]
    made_customers = made_subs = made_usage = 0
    while made_subs < subscriptions:
        batch = min(chunk_size, subscriptions - made_subs)
        with ctx.transaction() as tx:
            c, s, u = _write_chunk(tx.bulk, rng, catalog, currency_weights, batch, as_of, tx.now)
        made_customers += c
        made_subs += s
        made_usage += u
        if on_progress:
            on_progress(made_subs)
    return BookResult(made_customers, made_subs, made_usage, catalog, as_of)


def _write_chunk(
    bulk: Bulk,
    rng: random.Random,
    catalog: Catalog,
    currency_weights: list[tuple[str, float]],
    wanted: int,
    as_of: datetime,
    now: datetime,
) -> tuple[int, int, int]:
    instant = bulk.instant_formatter()
    now_s = instant(now)
    customer_ids = bulk.reserve_ids("customers", wanted)
    pm_ids = bulk.reserve_ids("payment_methods", wanted)
    sub_ids = iter(bulk.reserve_ids("subscriptions", wanted))
    customers: list[tuple[Any, ...]] = []
    cards: list[tuple[Any, ...]] = []
    subs: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    usage: list[tuple[Any, ...]] = []
    pending: list[tuple[Any, ...]] = []
    charges: list[tuple[Any, ...]] = []
    made = 0
    for customer_id, pm_id in zip(customer_ids, pm_ids, strict=True):
        if made >= wanted:
            break
        code = _weighted(rng, currency_weights)
        country, tz_name = rng.choice(MARKETS[code][2])
        tax_rate_id = catalog.tax_by_country.get(country) if rng.random() < 0.9 else None
        balance = int(_scaled(rng.choice([5_00, 20_00, 100_00]), code)) if rng.random() < 0.05 else 0
        has_card = rng.random() < 0.98
        customers.append(
            (
                customer_id,
                f"customer{customer_id}@example.com",
                f"Customer {customer_id}",
                code,
                tz_name,
                country,
                LANGUAGES.get(country, "en"),
                tax_rate_id,
                balance,
                pm_id if has_card else None,
                now_s,
                now_s,
            )
        )
        if has_card:
            cards.append(
                (
                    pm_id,
                    customer_id,
                    rng.choice(["visa", "mastercard", "amex"]),
                    str(rng.randint(400000, 559999)),
                    f"{rng.randint(0, 9999):04d}",
                    rng.randint(1, 12),
                    rng.randint(as_of.year, as_of.year + 5),
                    f"fp{pm_id}",
                    now_s,
                )
            )
        # one subscription, or (without a credit balance, to keep the oracle simple) a plan and an add-on
        count = 2 if balance == 0 and rng.random() < 0.1 and made + 2 <= wanted else 1
        for index in range(count):
            sub_id = next(sub_ids)
            made += 1
            _subscription_rows(
                rng,
                catalog,
                code,
                tz_name,
                customer_id,
                sub_id,
                index,
                as_of,
                now_s,
                instant,
                subs,
                items,
                usage,
                pending,
                charges,
            )
    bulk.insert(
        "customers",
        [
            "id",
            "email",
            "name",
            "currency",
            "timezone",
            "country",
            "language",
            "tax_rate_id",
            "balance_minor",
            "default_payment_method_id",
            "created_at",
            "updated_at",
        ],
        customers,
    )
    bulk.insert(
        "payment_methods",
        ["id", "customer_id", "brand", "bin", "last4", "exp_month", "exp_year", "fingerprint", "created_at"],
        cards,
    )
    bulk.insert(
        "subscriptions",
        [
            "id",
            "customer_id",
            "status",
            "currency",
            "tz_name",
            "months_per_period",
            "started_at",
            "anchor_at",
            "trial_end",
            "next_period_index",
            "next_invoice_at",
            "current_period_start",
            "current_period_end",
            "cancel_at_period_end",
            "canceled_at",
            "coupon_id",
            "discounted_invoices",
            "usage_billed_until",
            "created_at",
            "updated_at",
        ],
        subs,
    )
    bulk.insert("subscription_items", ["subscription_id", "price_id", "quantity"], items)
    bulk.insert(
        "usage_events",
        ["event_id", "customer_id", "metric_code", "occurred_at", "value", "unique_key", "received_at"],
        usage,
    )
    bulk.insert(
        "subscription_pending_changes", ["subscription_id", "effective_at", "items", "created_at"], pending
    )
    bulk.insert(
        "one_time_charges",
        [
            "customer_id",
            "subscription_id",
            "description",
            "quantity",
            "unit_amount_minor",
            "currency",
            "created_at",
        ],
        charges,
    )
    return len(customers), made, len(usage)


def _subscription_rows(
    rng: random.Random,
    catalog: Catalog,
    code: str,
    tz_name: str,
    customer_id: int,
    sub_id: int,
    index: int,
    as_of: datetime,
    now_s: object,
    instant: Callable[[datetime | None], object],
    subs: list[tuple[object, ...]],
    items: list[tuple[object, ...]],
    usage: list[tuple[object, ...]],
    pending: list[tuple[object, ...]],
    charges: list[tuple[object, ...]],
) -> None:
    plans = catalog.plans[code]
    if index == 1:  # the add-on subscription: metered usage only
        chosen = [(rng.choice(["api_calls", "messages", "active_users"]), 0)]
    else:
        base = _weighted(
            rng, [("basic", 0.35), ("pro", 0.3), ("business", 0.1), ("pro_annual", 0.1), ("seats", 0.15)]
        )
        chosen = [(base, rng.randint(1, 25) if base == "seats" else 1)]
        if base != "pro_annual" and rng.random() < 0.3:
            chosen.append((rng.choice(["api_calls", "storage", "messages"]), 0))
    months = catalog.prices[plans[chosen[0][0]]].months_per_period
    # period 0 began at the anchor a little over one period ago; period 1 is due by as_of
    # (a trial that ends within the last four weeks: period 0 is due)
    trial = rng.random() < 0.05 and months == 1
    today = local_date(as_of, tz_name)
    back = today if trial else add_months(today, -months, today.day)
    anchor_day = back - timedelta(days=rng.randint(1, 27))
    anchor = to_utc(anchor_day, time(*divmod(rng.randrange(0, 24 * 60), 60)), tz_name)
    started = anchor - timedelta(days=14) if trial else anchor
    schedule = Schedule(anchor, tz_name, months, started)
    n = 0 if trial else 1
    due = schedule.boundary(n)
    status = "trialing" if trial else _weighted(rng, [("active", 0.97), ("past_due", 0.03)])
    period = (started, anchor) if trial else schedule.period(0)
    coupon_id = rng.choice(catalog.coupons_by_currency[code]) if rng.random() < 0.15 else None
    discounted = rng.randint(0, 2) if coupon_id else 0
    cancel = rng.random() < 0.02
    subs.append(
        (
            sub_id,
            customer_id,
            status,
            code,
            tz_name,
            months,
            instant(started),
            instant(anchor),
            instant(anchor) if trial else None,
            n,
            instant(due),
            instant(period[0]),
            instant(period[1]),
            1 if cancel else 0,
            now_s if cancel else None,
            coupon_id,
            discounted,
            instant(anchor if trial else period[0]),
            now_s,
            now_s,
        )
    )
    for plan, quantity in chosen:
        price = catalog.prices[plans[plan]]
        items.append((sub_id, price.id, quantity))
        if price.usage_type is UsageType.METERED and not trial:
            _usage_rows(rng, price, customer_id, sub_id, period[0], due, instant, now_s, usage)
    if not cancel and not trial and chosen[0][0] in ("pro", "business") and rng.random() < 0.05:
        downgrade = [{"price_id": plans["basic"], "quantity": 1}]
        pending.append((sub_id, instant(due), json.dumps(downgrade), now_s))
    if rng.random() < 0.02:
        charges.append(
            (customer_id, sub_id, "Onboarding session", 1, int(_scaled(150_00, code)), code, now_s)
        )


def _usage_rows(
    rng: random.Random,
    price: Price,
    customer_id: int,
    sub_id: int,
    start: datetime,
    end: datetime,
    instant: Callable[[datetime | None], object],
    now_s: object,
    usage: list[tuple[object, ...]],
) -> None:
    span = (end - start).total_seconds()
    metric = price.metric_code
    for event in range(rng.randint(1, 6)):
        at = start + timedelta(seconds=rng.uniform(0, span - 1))
        if metric == "api_calls":
            value = rng.choice(
                [rng.randint(100, 9_000), rng.randint(9_000, 60_000), rng.randint(50_000, 400_000)]
            )
        elif metric == "storage_gb":
            value = rng.randint(1, 1500)
        elif metric == "messages":
            value = rng.randint(1, 3_000)
        else:
            value = 1
        key = f"user{rng.randint(1, 40)}" if metric == "active_users" else None
        usage.append((f"s{sub_id}-{event}", customer_id, metric, instant(at), value, key, now_s))


# -- the oracle --------------------------------------------------------------------------------


def expected_totals(bulk: Bulk, catalog: Catalog) -> dict[tuple[int, str], Totals]:
    """Price every subscription's due period again, one at a time, straight from the rows.

    Returns ``{(subscription_id, period_start_iso): totals before the credit balance}``. It
    reads the book as written (before the run) and shares only the pure pricing functions with
    the billing run: no caches, no bulk planning, no SQL aggregation.
    """
    from billing_core.db.types import parse_instant_column as parse

    subs = bulk.query(
        "SELECT s.id, s.currency, s.tz_name, s.months_per_period, s.started_at, s.anchor_at, s.next_period_index,"
        " s.usage_billed_until, s.cancel_at_period_end, s.coupon_id, s.discounted_invoices, c.tax_rate_id"
        " FROM subscriptions s JOIN customers c ON c.id = s.customer_id"
    )
    items: dict[int, list[tuple[int, int]]] = {}
    for sub_id, price_id, quantity in bulk.query(
        "SELECT subscription_id, price_id, quantity FROM subscription_items"
    ):
        items.setdefault(sub_id, []).append((price_id, quantity))
    pending = {
        sub_id: [(i["price_id"], i["quantity"]) for i in json.loads(raw)]
        for sub_id, raw in bulk.query("SELECT subscription_id, items FROM subscription_pending_changes")
    }
    events: dict[tuple[int, str], list[tuple[str, int, str | None]]] = {}
    for customer_id, metric, occurred, value, key in bulk.query(
        "SELECT customer_id, metric_code, occurred_at, value, unique_key FROM usage_events"
    ):
        events.setdefault((customer_id, metric), []).append((parse(occurred).isoformat(), value, key))
    customer_of = dict(bulk.query("SELECT id, customer_id FROM subscriptions"))
    charges: dict[int, list[int]] = {}
    for sub_id, quantity, unit in bulk.query(
        "SELECT subscription_id, quantity, unit_amount_minor FROM one_time_charges WHERE invoice_id IS NULL"
    ):
        charges.setdefault(sub_id, []).append(quantity * unit)
    expected: dict[tuple[int, str], Totals] = {}
    for (
        sub_id,
        code,
        tz_name,
        months,
        started,
        anchor,
        n,
        usage_from,
        cancel,
        coupon_id,
        discounted,
        tax_rate_id,
    ) in subs:
        start = Schedule(parse(anchor), tz_name, months, parse(started)).boundary(n)
        cur = currency(code)
        lines: list[LineDraft] = []
        since = parse(usage_from).isoformat()
        for price_id, _quantity in items[sub_id]:
            price = catalog.prices[price_id]
            if price.usage_type is not UsageType.METERED:
                continue
            inside = [
                e
                for e in events.get((customer_of[sub_id], price.metric_code or ""), [])
                if since <= e[0] < start.isoformat()
            ]
            aggregation = catalog.aggregations[price.metric_code or ""]
            if aggregation is Aggregation.SUM:
                quantity = sum(e[1] for e in inside)
            elif aggregation is Aggregation.MAX:
                quantity = max((e[1] for e in inside), default=0)
            elif aggregation is Aggregation.UNIQUE_COUNT:
                quantity = len({e[2] for e in inside if e[2] is not None})
            else:
                quantity = max(inside)[1] if inside else 0
            if quantity:
                lines.append(LineDraft(LineKind.USAGE, "", round_minor(_oracle_amount(price, quantity)), cur))
        if not cancel:
            for price_id, quantity in pending.get(sub_id, items[sub_id]):
                price = catalog.prices[price_id]
                if price.usage_type is UsageType.LICENSED:
                    lines.append(
                        LineDraft(
                            LineKind.SUBSCRIPTION, "", round_minor(_oracle_amount(price, quantity)), cur
                        )
                    )
        lines += [LineDraft(LineKind.ONE_TIME, "", amount, cur) for amount in charges.get(sub_id, [])]
        coupon = catalog.coupons.get(coupon_id) if coupon_id else None
        if coupon is not None and not coupon.applies_to_invoice(discounted):
            coupon = None
        tax = catalog.tax_rates.get(tax_rate_id) if tax_rate_id else None
        expected[(sub_id, start.isoformat())] = assemble(cur, lines, coupon=coupon, tax_rate=tax)
    return expected


def _oracle_amount(price: Price, quantity: int) -> Fraction:
    """A price's exact amount, written apart from :mod:`billing_core.catalog` on purpose."""
    unit = Fraction(price.unit_amount_minor)
    model = price.model.value
    if model == "flat":
        return unit
    if model == "per_unit":
        return unit * quantity
    if model == "package":
        size = price.package_size or 1
        return unit * ((quantity + size - 1) // size)
    bounds = [t.up_to for t in price.tiers]
    if model == "volume":
        if quantity == 0:
            return Fraction(0)
        index = next(i for i, b in enumerate(bounds) if b is None or quantity <= b)
        tier = price.tiers[index]
        return Fraction(tier.unit_amount_minor) * quantity + tier.flat_amount_minor
    total, lower = Fraction(0), 0
    for tier in price.tiers:  # graduated: every unit at the tier it falls in
        upper = quantity if tier.up_to is None else tier.up_to
        units = min(quantity, upper) - lower
        if units > 0:
            total += Fraction(tier.unit_amount_minor) * units + tier.flat_amount_minor
        lower = max(lower, upper)
    return total
