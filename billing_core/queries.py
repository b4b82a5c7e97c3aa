"""The read side: resources as the REST API shows them, one at a time or a page at a time.

Every function takes an open connection (``ctx.read()``, or the transaction of the request that
just wrote) and returns plain dictionaries whose keys are the columns' names: amounts are
``*_minor`` integers beside their ``currency``, instants are tz-aware UTC datetimes, exact
decimals are :class:`~decimal.Decimal`.

Lists are pages in a stable order, newest first (by id, or by code for billable metrics): ask
for ``limit`` rows ``starting_after`` the last row of the previous page; ``has_more`` says
whether another page follows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, select

from billing_core.db import schema as t
from billing_core.db import schema_api
from billing_core.errors import InvalidInput, NotFound

MAX_PAGE = 100


@dataclass(frozen=True)
class Page:
    data: list[dict[str, Any]]
    has_more: bool


def _page(
    conn: Connection,
    table: Table,
    *,
    limit: int,
    starting_after: object = None,
    filters: Mapping[str, object] | None = None,
    key: str = "id",
    columns: Sequence[str] | None = None,
) -> Page:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"a whole number between 1 and {MAX_PAGE}", limit)
    order = table.c[key]
    query = select(*(table.c[c] for c in columns)) if columns else select(table)
    for name, value in (filters or {}).items():
        if value is not None:
            query = query.where(table.c[name] == value)
    if starting_after is not None:
        query = query.where(order < starting_after)
    rows = conn.execute(query.order_by(order.desc()).limit(limit + 1)).mappings().all()
    return Page([dict(r) for r in rows[:limit]], len(rows) > limit)


def _one(
    conn: Connection, table: Table, value: object, *, field: str, entity: str, key: str = "id"
) -> dict[str, Any]:
    row = conn.execute(select(table).where(table.c[key] == value)).mappings().first()
    if row is None:
        raise NotFound(field, entity, value)
    return dict(row)


# ----------------------------------------------------------------------------------- customers


def get_customer(conn: Connection, customer_id: int) -> dict[str, Any]:
    return _one(conn, t.customers, customer_id, field="customer_id", entity="customer")


def list_customers(
    conn: Connection, *, limit: int, starting_after: int | None = None, email: str | None = None
) -> Page:
    return _page(conn, t.customers, limit=limit, starting_after=starting_after, filters={"email": email})


def get_payment_method(conn: Connection, payment_method_id: int) -> dict[str, Any]:
    return _one(
        conn, t.payment_methods, payment_method_id, field="payment_method_id", entity="payment method"
    )


def list_payment_methods(
    conn: Connection, *, customer_id: int, limit: int, starting_after: int | None = None
) -> Page:
    get_customer(conn, customer_id)
    return _page(
        conn,
        t.payment_methods,
        limit=limit,
        starting_after=starting_after,
        filters={"customer_id": customer_id},
    )


# ------------------------------------------------------------------------------------- catalog


def get_product(conn: Connection, product_id: int) -> dict[str, Any]:
    return _one(conn, t.products, product_id, field="product_id", entity="product")


def list_products(conn: Connection, *, limit: int, starting_after: int | None = None) -> Page:
    return _page(conn, t.products, limit=limit, starting_after=starting_after)


def get_metric(conn: Connection, code: str) -> dict[str, Any]:
    return _one(conn, t.billable_metrics, code, field="code", entity="billable metric", key="code")


def list_metrics(conn: Connection, *, limit: int, starting_after: str | None = None) -> Page:
    return _page(conn, t.billable_metrics, limit=limit, starting_after=starting_after, key="code")


def _with_tiers(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [r["id"] for r in rows]
    tiers: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        query = (
            select(t.price_tiers)
            .where(t.price_tiers.c.price_id.in_(ids))
            .order_by(t.price_tiers.c.price_id, t.price_tiers.c.position)
        )
        for tier in conn.execute(query).mappings():
            tiers[tier["price_id"]].append(
                {
                    "up_to": tier["up_to"],
                    "unit_amount_minor": tier["unit_amount_minor"],
                    "flat_amount_minor": tier["flat_amount_minor"],
                }
            )
    for row in rows:
        row["tiers"] = tiers[row["id"]]
    return rows


def get_price(conn: Connection, price_id: int) -> dict[str, Any]:
    return _with_tiers(conn, [_one(conn, t.prices, price_id, field="price_id", entity="price")])[0]


def list_prices(
    conn: Connection,
    *,
    limit: int,
    starting_after: int | None = None,
    product_id: int | None = None,
    currency: str | None = None,
) -> Page:
    page = _page(
        conn,
        t.prices,
        limit=limit,
        starting_after=starting_after,
        filters={"product_id": product_id, "currency": currency},
    )
    return Page(_with_tiers(conn, page.data), page.has_more)


def get_coupon(conn: Connection, coupon_id: int) -> dict[str, Any]:
    return _one(conn, t.coupons, coupon_id, field="coupon_id", entity="coupon")


def list_coupons(conn: Connection, *, limit: int, starting_after: int | None = None) -> Page:
    return _page(conn, t.coupons, limit=limit, starting_after=starting_after)


def get_tax_rate(conn: Connection, tax_rate_id: int) -> dict[str, Any]:
    return _one(conn, t.tax_rates, tax_rate_id, field="tax_rate_id", entity="tax rate")


def list_tax_rates(conn: Connection, *, limit: int, starting_after: int | None = None) -> Page:
    return _page(conn, t.tax_rates, limit=limit, starting_after=starting_after)


# ------------------------------------------------------------------------------- subscriptions


def _with_items(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [r["id"] for r in rows]
    items: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    pending: dict[int, dict[str, Any]] = {}
    if ids:
        query = (
            select(t.subscription_items)
            .where(t.subscription_items.c.subscription_id.in_(ids))
            .order_by(t.subscription_items.c.id)
        )
        for item in conn.execute(query).mappings():
            items[item["subscription_id"]].append(
                {"id": item["id"], "price_id": item["price_id"], "quantity": item["quantity"]}
            )
        changes = select(t.subscription_pending_changes).where(
            t.subscription_pending_changes.c.subscription_id.in_(ids)
        )
        for change in conn.execute(changes).mappings():
            pending[change["subscription_id"]] = {
                "effective_at": change["effective_at"],
                "items": json.loads(change["items"]),
            }
    for row in rows:
        row["items"] = items[row["id"]]
        row["pending_change"] = pending.get(row["id"])
    return rows


def get_subscription(conn: Connection, subscription_id: int) -> dict[str, Any]:
    row = _one(conn, t.subscriptions, subscription_id, field="subscription_id", entity="subscription")
    return _with_items(conn, [row])[0]


def list_subscriptions(
    conn: Connection,
    *,
    limit: int,
    starting_after: int | None = None,
    customer_id: int | None = None,
    status: str | None = None,
) -> Page:
    page = _page(
        conn,
        t.subscriptions,
        limit=limit,
        starting_after=starting_after,
        filters={"customer_id": customer_id, "status": status},
    )
    return Page(_with_items(conn, page.data), page.has_more)


# --------------------------------------------------------------------------------------- usage


def list_usage_events(
    conn: Connection,
    *,
    limit: int,
    starting_after: int | None = None,
    customer_id: int | None = None,
    metric_code: str | None = None,
) -> Page:
    return _page(
        conn,
        t.usage_events,
        limit=limit,
        starting_after=starting_after,
        filters={"customer_id": customer_id, "metric_code": metric_code},
    )


# ------------------------------------------------------------------------------------ invoices


def get_invoice(conn: Connection, invoice_id: int, *, lines: bool = True) -> dict[str, Any]:
    row = _one(conn, t.invoices, invoice_id, field="invoice_id", entity="invoice")
    if lines:
        query = (
            select(t.invoice_lines)
            .where(t.invoice_lines.c.invoice_id == invoice_id)
            .order_by(t.invoice_lines.c.position)
        )
        row["lines"] = [dict(line) for line in conn.execute(query).mappings()]
    return row


def list_invoices(
    conn: Connection,
    *,
    limit: int,
    starting_after: int | None = None,
    customer_id: int | None = None,
    subscription_id: int | None = None,
    status: str | None = None,
) -> Page:
    return _page(
        conn,
        t.invoices,
        limit=limit,
        starting_after=starting_after,
        filters={"customer_id": customer_id, "subscription_id": subscription_id, "status": status},
    )


def list_payment_attempts(conn: Connection, *, invoice_id: int) -> list[dict[str, Any]]:
    query = (
        select(t.payment_attempts)
        .where(t.payment_attempts.c.invoice_id == invoice_id)
        .order_by(t.payment_attempts.c.attempt_number)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


# ------------------------------------------------------------------------------------ payments


def get_payment(conn: Connection, payment_id: int) -> dict[str, Any]:
    return _one(conn, t.payments, payment_id, field="payment_id", entity="payment")


def list_payments(
    conn: Connection,
    *,
    limit: int,
    starting_after: int | None = None,
    customer_id: int | None = None,
    invoice_id: int | None = None,
) -> Page:
    return _page(
        conn,
        t.payments,
        limit=limit,
        starting_after=starting_after,
        filters={"customer_id": customer_id, "invoice_id": invoice_id},
    )


def get_refund(conn: Connection, refund_id: int) -> dict[str, Any]:
    return _one(conn, t.refunds, refund_id, field="refund_id", entity="refund")


def list_refunds(
    conn: Connection, *, limit: int, starting_after: int | None = None, payment_id: int | None = None
) -> Page:
    return _page(
        conn, t.refunds, limit=limit, starting_after=starting_after, filters={"payment_id": payment_id}
    )


def get_chargeback(conn: Connection, chargeback_id: int) -> dict[str, Any]:
    return _one(conn, t.chargebacks, chargeback_id, field="chargeback_id", entity="chargeback")


def list_chargebacks(
    conn: Connection,
    *,
    limit: int,
    starting_after: int | None = None,
    payment_id: int | None = None,
    status: str | None = None,
) -> Page:
    return _page(
        conn,
        t.chargebacks,
        limit=limit,
        starting_after=starting_after,
        filters={"payment_id": payment_id, "status": status},
    )


def get_credit_note(conn: Connection, credit_note_id: int) -> dict[str, Any]:
    return _one(conn, t.credit_notes, credit_note_id, field="credit_note_id", entity="credit note")


def list_credit_notes(
    conn: Connection,
    *,
    limit: int,
    starting_after: int | None = None,
    invoice_id: int | None = None,
    customer_id: int | None = None,
) -> Page:
    return _page(
        conn,
        t.credit_notes,
        limit=limit,
        starting_after=starting_after,
        filters={"invoice_id": invoice_id, "customer_id": customer_id},
    )


# ------------------------------------------------------------------------------------ disputes


def get_dispute(conn: Connection, dispute_id: int) -> dict[str, Any]:
    return _one(conn, t.disputes, dispute_id, field="dispute_id", entity="dispute")


def list_disputes(
    conn: Connection,
    *,
    limit: int,
    starting_after: int | None = None,
    customer_id: int | None = None,
    status: str | None = None,
) -> Page:
    return _page(
        conn,
        t.disputes,
        limit=limit,
        starting_after=starting_after,
        filters={"customer_id": customer_id, "status": status},
    )


# ------------------------------------------------------------------------------------ api keys

_KEY_COLUMNS = ("id", "name", "role", "created_at", "revoked_at")


def get_api_key(conn: Connection, api_key_id: int) -> dict[str, Any]:
    row = _one(conn, schema_api.api_keys, api_key_id, field="api_key_id", entity="api key")
    return {name: row[name] for name in _KEY_COLUMNS}


def list_api_keys(conn: Connection, *, limit: int, starting_after: int | None = None) -> Page:
    return _page(conn, schema_api.api_keys, limit=limit, starting_after=starting_after, columns=_KEY_COLUMNS)


def get_one_time_charge(conn: Connection, charge_id: int) -> dict[str, Any]:
    return _one(conn, t.one_time_charges, charge_id, field="charge_id", entity="one-time charge")


def last_payment_attempt(conn: Connection, invoice_id: int) -> dict[str, Any] | None:
    attempts = list_payment_attempts(conn, invoice_id=invoice_id)
    return attempts[-1] if attempts else None
