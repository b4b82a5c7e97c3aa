"""Loading domain objects from rows, with errors that name the field that referenced them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, CursorResult, func, select

from billing_core.catalog import (
    Aggregation,
    BillableMetric,
    Interval,
    Price,
    PricingModel,
    Tier,
    UsageType,
)
from billing_core.customers import CardBrand, Customer, PaymentMethod
from billing_core.db import schema as t
from billing_core.discounts import Coupon, Duration
from billing_core.errors import InvalidInput, NotFound
from billing_core.money import currency
from billing_core.subscriptions import Subscription, SubscriptionItem, SubscriptionStatus
from billing_core.tax import TaxRate


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key of the row an ``INSERT`` just wrote."""
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - every table here has an integer key
        raise RuntimeError("the INSERT returned no primary key")
    return int(key[0])


def _one(
    conn: Connection, table: Any, key: Any, value: Any, *, field: str, entity: str, lock: bool = False
) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidInput(field, f"the id of an existing {entity}", value)
    query = select(table).where(key == value)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(field, entity, value)
    return row


def customer_from_row(row: Mapping[Any, Any]) -> Customer:
    return Customer(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        currency=row["currency"],
        timezone=row["timezone"],
        country=row["country"],
        language=row["language"],
        billing_anchor_day=row["billing_anchor_day"],
        tax_rate_id=row["tax_rate_id"],
        balance_minor=row["balance_minor"],
        default_payment_method_id=row["default_payment_method_id"],
        created_at=row["created_at"],
        external_id=row["external_id"],
    )


def get_customer(
    conn: Connection, customer_id: object, *, field: str = "customer_id", lock: bool = False
) -> Customer:
    return customer_from_row(
        _one(conn, t.customers, t.customers.c.id, customer_id, field=field, entity="customer", lock=lock)
    )


def payment_method_from_row(row: Mapping[Any, Any]) -> PaymentMethod:
    return PaymentMethod(
        id=row["id"],
        customer_id=row["customer_id"],
        brand=CardBrand(row["brand"]),
        bin=row["bin"],
        last4=row["last4"],
        exp_month=row["exp_month"],
        exp_year=row["exp_year"],
        fingerprint=row["fingerprint"],
    )


def get_payment_method(
    conn: Connection, payment_method_id: object, *, field: str = "payment_method_id"
) -> PaymentMethod:
    row = _one(
        conn,
        t.payment_methods,
        t.payment_methods.c.id,
        payment_method_id,
        field=field,
        entity="payment method",
    )
    if row["detached_at"] is not None:
        raise NotFound(field, "attached payment method", payment_method_id)
    return payment_method_from_row(row)


def get_metric(conn: Connection, code: object, *, field: str = "metric_code") -> BillableMetric:
    row = _one(
        conn, t.billable_metrics, t.billable_metrics.c.code, code, field=field, entity="billable metric"
    )
    return BillableMetric(row["code"], row["name"], Aggregation(row["aggregation"]))


def all_metrics(conn: Connection) -> dict[str, BillableMetric]:
    rows = conn.execute(select(t.billable_metrics)).mappings()
    return {r["code"]: BillableMetric(r["code"], r["name"], Aggregation(r["aggregation"])) for r in rows}


def price_from_row(row: Mapping[Any, Any], tiers: Iterable[Mapping[Any, Any]] = ()) -> Price:
    return Price(
        id=row["id"],
        product_id=row["product_id"],
        currency=currency(row["currency"]),
        model=PricingModel(row["model"]),
        interval=Interval(row["interval"]),
        interval_count=row["interval_count"],
        usage_type=UsageType(row["usage_type"]),
        unit_amount_minor=Decimal(row["unit_amount_minor"]),
        package_size=row["package_size"],
        tiers=tuple(
            Tier(tier["up_to"], Decimal(tier["unit_amount_minor"]), tier["flat_amount_minor"])
            for tier in sorted(tiers, key=lambda tier: tier["position"])
        ),
        metric_code=row["metric_code"],
        trial_days=row["trial_days"],
        nickname=row["nickname"],
        active=bool(row["active"]),
    )


def load_prices(conn: Connection, price_ids: Iterable[int] | None = None) -> dict[int, Price]:
    """Prices (with their tiers) by id; all of them when ``price_ids`` is None."""
    query = select(t.prices)
    tier_query = select(t.price_tiers)
    if price_ids is not None:
        ids = list(set(price_ids))
        query = query.where(t.prices.c.id.in_(ids))
        tier_query = tier_query.where(t.price_tiers.c.price_id.in_(ids))
    tiers: dict[int, list[Mapping[Any, Any]]] = {}
    for tier in conn.execute(tier_query).mappings():
        tiers.setdefault(tier["price_id"], []).append(tier)
    return {
        row["id"]: price_from_row(row, tiers.get(row["id"], ())) for row in conn.execute(query).mappings()
    }


def get_price(conn: Connection, price_id: object, *, field: str = "price_id") -> Price:
    if isinstance(price_id, bool) or not isinstance(price_id, int):
        raise InvalidInput(field, "the id of an existing price", price_id)
    found = load_prices(conn, [price_id]).get(price_id)
    if found is None:
        raise NotFound(field, "price", price_id)
    return found


def coupon_from_row(row: Mapping[Any, Any]) -> Coupon:
    return Coupon(
        id=row["id"],
        name=row["name"],
        duration=Duration(row["duration"]),
        percent_off=Decimal(row["percent_off"]) if row["percent_off"] is not None else None,
        amount_off_minor=row["amount_off_minor"],
        currency=currency(row["currency"]) if row["currency"] else None,
        duration_in_periods=row["duration_in_periods"],
    )


def get_coupon(conn: Connection, coupon_id: object, *, field: str = "coupon_id") -> Coupon:
    return coupon_from_row(_one(conn, t.coupons, t.coupons.c.id, coupon_id, field=field, entity="coupon"))


def load_coupons(conn: Connection) -> dict[int, Coupon]:
    return {row["id"]: coupon_from_row(row) for row in conn.execute(select(t.coupons)).mappings()}


def tax_rate_from_row(row: Mapping[Any, Any]) -> TaxRate:
    return TaxRate(
        id=row["id"],
        jurisdiction=row["jurisdiction"],
        percentage=Decimal(row["percentage"]),
        inclusive=bool(row["inclusive"]),
        display_name=row["display_name"],
    )


def get_tax_rate(conn: Connection, tax_rate_id: object, *, field: str = "tax_rate_id") -> TaxRate:
    return tax_rate_from_row(
        _one(conn, t.tax_rates, t.tax_rates.c.id, tax_rate_id, field=field, entity="tax rate")
    )


def catalog_fingerprint(conn: Connection) -> tuple[Any, ...]:
    """Counts and highest ids of the catalog's tables: they change whenever a row is added.

    Catalog rows are never updated (nothing in Recoup issues an UPDATE on them), so this is
    enough to tell whether a catalog loaded earlier is still the catalog.
    """
    row = conn.execute(
        select(
            select(func.count()).select_from(t.prices).scalar_subquery(),
            select(func.max(t.prices.c.id)).scalar_subquery(),
            select(func.count()).select_from(t.price_tiers).scalar_subquery(),
            select(func.count()).select_from(t.coupons).scalar_subquery(),
            select(func.max(t.coupons.c.id)).scalar_subquery(),
            select(func.count()).select_from(t.tax_rates).scalar_subquery(),
            select(func.max(t.tax_rates.c.id)).scalar_subquery(),
            select(func.count()).select_from(t.billable_metrics).scalar_subquery(),
        )
    ).one()
    return tuple(row)


def load_tax_rates(conn: Connection) -> dict[int, TaxRate]:
    return {row["id"]: tax_rate_from_row(row) for row in conn.execute(select(t.tax_rates)).mappings()}


def subscription_from_row(row: Mapping[Any, Any], items: Iterable[Mapping[Any, Any]]) -> Subscription:
    return Subscription(
        id=row["id"],
        customer_id=row["customer_id"],
        status=SubscriptionStatus(row["status"]),
        currency=row["currency"],
        tz_name=row["tz_name"],
        months_per_period=row["months_per_period"],
        started_at=row["started_at"],
        anchor_at=row["anchor_at"],
        next_period_index=row["next_period_index"],
        next_invoice_at=row["next_invoice_at"],
        current_period_start=row["current_period_start"],
        current_period_end=row["current_period_end"],
        trial_end=row["trial_end"],
        cancel_at_period_end=bool(row["cancel_at_period_end"]),
        canceled_at=row["canceled_at"],
        paused_at=row["paused_at"],
        coupon_id=row["coupon_id"],
        discounted_invoices=row["discounted_invoices"],
        usage_billed_until=row["usage_billed_until"],
        items=tuple(
            SubscriptionItem(item["id"], item["price_id"], item["quantity"])
            for item in sorted(items, key=lambda item: item["id"])
        ),
    )


def get_subscription(
    conn: Connection, subscription_id: object, *, field: str = "subscription_id", lock: bool = False
) -> Subscription:
    row = _one(
        conn,
        t.subscriptions,
        t.subscriptions.c.id,
        subscription_id,
        field=field,
        entity="subscription",
        lock=lock,
    )
    items = (
        conn.execute(select(t.subscription_items).where(t.subscription_items.c.subscription_id == row["id"]))
        .mappings()
        .all()
    )
    return subscription_from_row(row, items)


def get_invoice_row(
    conn: Connection, invoice_id: object, *, field: str = "invoice_id", lock: bool = False
) -> Any:
    return _one(conn, t.invoices, t.invoices.c.id, invoice_id, field=field, entity="invoice", lock=lock)


def get_payment_row(
    conn: Connection, payment_id: object, *, field: str = "payment_id", lock: bool = False
) -> Any:
    return _one(conn, t.payments, t.payments.c.id, payment_id, field=field, entity="payment", lock=lock)


def get_dispute_row(
    conn: Connection, dispute_id: object, *, field: str = "dispute_id", lock: bool = False
) -> Any:
    return _one(conn, t.disputes, t.disputes.c.id, dispute_id, field=field, entity="dispute", lock=lock)
