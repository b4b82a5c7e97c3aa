"""Helpers shared by the use cases (not a use case)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from billing_core.catalog import Price, UsageType
from billing_core.context import BillingContext, Tx
from billing_core.db import repository
from billing_core.db import schema as t
from billing_core.db.usage_queries import aggregate_windows, metered_windows
from billing_core.errors import CurrencyMismatch, InvalidInput
from billing_core.invoice_writer import Written, write_invoices
from billing_core.invoices import LineDraft
from billing_core.invoicing import InvoicePlan, PricingCache, usage_lines
from billing_core.subscriptions import Subscription, SubscriptionItem, SubscriptionStatus

LIVE_STATUSES = (
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.PAST_DUE,
    SubscriptionStatus.PAUSED,
    SubscriptionStatus.UNPAID,
)


def parse_items(
    conn: Connection, items: object, *, currency_code: str, field: str = "items"
) -> tuple[tuple[SubscriptionItem, ...], dict[int, Price]]:
    """Validate subscription items: existing active prices, one currency and one interval."""
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)) or not items:
        raise InvalidInput(field, "a non-empty list of {price_id, quantity}", items)
    parsed: list[SubscriptionItem] = []
    prices: dict[int, Price] = {}
    months: int | None = None
    for index, raw in enumerate(items):
        where = f"{field}[{index}]"
        if not isinstance(raw, Mapping):
            raise InvalidInput(where, "an object {price_id, quantity}", raw)
        price = repository.get_price(conn, raw.get("price_id"), field=f"{where}.price_id")
        if not price.active:
            raise InvalidInput(f"{where}.price_id", "an active price", price.id)
        if price.currency.code != currency_code:
            raise CurrencyMismatch(
                f"{where}.price_id",
                f"a price in the customer's currency {currency_code}",
                price.currency.code,
            )
        if months is None:
            months = price.months_per_period
        elif price.months_per_period != months:
            raise InvalidInput(
                f"{where}.price_id",
                f"a price billed every {months} month(s) like the other items",
                f"every {price.months_per_period} month(s)",
            )
        if price.id in prices:
            raise InvalidInput(f"{where}.price_id", "a price not already on the subscription", price.id)
        default = 1 if price.usage_type is UsageType.LICENSED else 0
        quantity = raw.get("quantity", default)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise InvalidInput(f"{where}.quantity", "a whole number >= 0", quantity)
        prices[price.id] = price
        parsed.append(SubscriptionItem(0, price.id, quantity))
    return tuple(parsed), prices


def metered_codes(items: Sequence[SubscriptionItem], prices: Mapping[int, Price]) -> set[str]:
    return {
        prices[i.price_id].metric_code  # type: ignore[misc]
        for i in items
        if prices[i.price_id].usage_type is UsageType.METERED
    }


def check_metric_not_taken(
    conn: Connection, customer_id: int, metrics: set[str], *, exclude_subscription: int | None = None
) -> None:
    """A customer's usage of a metric is billed by one live subscription only."""
    if not metrics:
        return
    query = (
        select(t.prices.c.metric_code, t.subscriptions.c.id)
        .select_from(t.subscriptions.join(t.subscription_items).join(t.prices))
        .where(t.subscriptions.c.customer_id == customer_id)
        .where(t.subscriptions.c.status.in_([s.value for s in LIVE_STATUSES]))
        .where(t.prices.c.metric_code.in_(sorted(metrics)))
    )
    if exclude_subscription is not None:
        query = query.where(t.subscriptions.c.id != exclude_subscription)
    taken = conn.execute(query).first()
    if taken is not None:
        raise InvalidInput(
            "items",
            f"no metered price for {taken[0]!r}, which subscription {taken[1]} already bills",
            taken[0],
        )


def write_one(tx: Tx, ctx: BillingContext, plan: InvoicePlan, *, source: str) -> Written:
    return write_invoices(
        tx, [plan], prefix=ctx.invoice_prefix, days_until_due=ctx.days_until_due, attempt_source=source
    )[0]


def items_json(items: Sequence[SubscriptionItem]) -> list[dict[str, Any]]:
    return [{"price_id": i.price_id, "quantity": i.quantity} for i in items]


def accrued_usage_lines(
    tx: Tx, sub: Subscription, prices: Mapping[int, Price], cache: PricingCache
) -> list[LineDraft]:
    """Usage lines for the metered items from ``usage_billed_until`` to now (pause, cancel, change)."""
    if tx.now <= sub.usage_billed_until:
        return []
    aggregations = {code: m.aggregation for code, m in repository.all_metrics(tx.conn).items()}
    windows = metered_windows(
        sub.id, sub.customer_id, sub.items, prices, aggregations, sub.usage_billed_until, tx.now
    )
    totals = aggregate_windows(tx.bulk, windows).get(sub.id, {})
    return usage_lines(
        sub.items,
        prices,
        totals,
        subscription_id=sub.id,
        window_start=sub.usage_billed_until,
        window_end=tx.now,
        cache=cache,
    )


def emit_status_change(
    tx: Tx, sub: Subscription, target: SubscriptionStatus, reason: str, **extra: Any
) -> None:
    """The ``subscription.status_changed`` event every lifecycle use case writes."""
    tx.emit(
        "subscription.status_changed",
        "subscription",
        sub.id,
        subscription_id=sub.id,
        **{"from": sub.status.value, "to": target.value},
        reason=reason,
        **extra,
    )
