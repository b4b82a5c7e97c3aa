"""Bad input: a clear error naming the field, what was expected and what arrived; nothing written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from billing_core.context import BillingContext
from billing_core.db import schema as t
from billing_core.errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    UnknownCurrency,
)
from billing_core.services.add_one_time_charge import add_one_time_charge
from billing_core.services.add_payment_method import add_payment_method
from billing_core.services.cancel_subscription import cancel_subscription
from billing_core.services.change_plan import change_plan
from billing_core.services.create_billable_metric import create_billable_metric
from billing_core.services.create_customer import create_customer
from billing_core.services.create_price import create_price
from billing_core.services.create_product import create_product
from billing_core.services.create_subscription import create_subscription
from billing_core.services.record_usage import record_usage, record_usage_batch

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAIVE = datetime(2026, 1, 1)  # noqa: DTZ001 - naive on purpose


def snapshot(engine: Engine) -> dict[str, Any]:
    """Row counts of every table and the audit head: what 'nothing written' is checked against."""
    with engine.connect() as conn:
        counts = {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in t.metadata.sorted_tables
        }
        counts["head"] = tuple(
            conn.execute(select(t.outbox_head.c.last_seq, t.outbox_head.c.last_hash)).one()
        )
        counts["balances"] = conn.execute(select(func.sum(t.customers.c.balance_minor))).scalar_one()
    return counts


@pytest.fixture
def book(ctx: BillingContext) -> dict[str, int]:
    product = create_product(ctx, name="Plan").id
    create_billable_metric(ctx, code="api_calls", name="API calls", aggregation="sum")
    usd = create_price(
        ctx, product_id=product, currency="USD", model="flat", interval="month", unit_amount_minor=10_00
    ).id
    usd2 = create_price(
        ctx, product_id=product, currency="USD", model="flat", interval="month", unit_amount_minor=20_00
    ).id
    eur = create_price(
        ctx, product_id=product, currency="EUR", model="flat", interval="month", unit_amount_minor=9_00
    ).id
    customer = create_customer(ctx, email="a@example.com", name="A", currency="USD").id
    add_payment_method(
        ctx, customer_id=customer, brand="visa", bin="424242", last4="4242", exp_month=1, exp_year=2031
    )
    sub = create_subscription(ctx, customer_id=customer, items=[{"price_id": usd, "quantity": 1}]).id
    canceled_customer = create_customer(ctx, email="b@example.com", name="B", currency="USD").id
    canceled = create_subscription(
        ctx, customer_id=canceled_customer, items=[{"price_id": usd, "quantity": 1}]
    ).id
    cancel_subscription(ctx, subscription_id=canceled)
    return {
        "product": product,
        "usd": usd,
        "usd2": usd2,
        "eur": eur,
        "customer": customer,
        "sub": sub,
        "canceled": canceled,
    }


def event(**overrides: Any) -> dict[str, Any]:
    return {
        "event_id": "e1",
        "customer_id": 1,
        "metric_code": "api_calls",
        "occurred_at": T0,
        "value": 1,
    } | overrides


CASES: list[tuple[str, Callable[[BillingContext, dict[str, int]], Any], type[InvalidInput], str, Any]] = [
    (
        "negative usage quantity",
        lambda c, b: record_usage(
            c, event_id="n1", customer_id=b["customer"], metric_code="api_calls", occurred_at=T0, value=-5
        ),
        InvalidInput,
        "value",
        -5,
    ),
    (
        "negative one-time charge quantity",
        lambda c, b: add_one_time_charge(
            c,
            customer_id=b["customer"],
            description="setup",
            unit_amount_minor=5_00,
            currency_code="USD",
            quantity=-1,
        ),
        InvalidInput,
        "quantity",
        -1,
    ),
    (
        "negative subscription quantity",
        lambda c, b: create_subscription(
            c, customer_id=b["customer"], items=[{"price_id": b["usd"], "quantity": -3}]
        ),
        InvalidInput,
        "items[0].quantity",
        -3,
    ),
    (
        "unknown currency on a customer",
        lambda c, b: create_customer(c, email="x@example.com", name="X", currency="XBT"),
        UnknownCurrency,
        "currency",
        "XBT",
    ),
    (
        "unknown currency on a price",
        lambda c, b: create_price(
            c, product_id=b["product"], currency="ZZZ", model="flat", interval="month", unit_amount_minor=1
        ),
        UnknownCurrency,
        "currency",
        "ZZZ",
    ),
    (
        "mixed currencies on one invoice (EUR price for a USD customer)",
        lambda c, b: create_subscription(
            c, customer_id=b["customer"], items=[{"price_id": b["eur"], "quantity": 1}]
        ),
        CurrencyMismatch,
        "items[0].price_id",
        None,
    ),
    (
        "mixed currencies on one invoice (a one-time charge in EUR)",
        lambda c, b: add_one_time_charge(
            c,
            customer_id=b["customer"],
            description="setup",
            unit_amount_minor=5_00,
            currency_code="EUR",
            subscription_id=b["sub"],
        ),
        CurrencyMismatch,
        "currency_code",
        "EUR",
    ),
    (
        "plan change on a canceled subscription",
        lambda c, b: change_plan(
            c, subscription_id=b["canceled"], items=[{"price_id": b["usd2"], "quantity": 1}]
        ),
        InvalidTransition,
        "subscription.status",
        "canceled",
    ),
    (
        "usage for an unknown customer",
        lambda c, b: record_usage(
            c, event_id="u1", customer_id=999_999, metric_code="api_calls", occurred_at=T0
        ),
        NotFound,
        "customer_id",
        999_999,
    ),
    (
        "usage for an unknown metric",
        lambda c, b: record_usage(
            c, event_id="u2", customer_id=b["customer"], metric_code="nope", occurred_at=T0
        ),
        NotFound,
        "metric_code",
        "nope",
    ),
    (
        "naive timestamp",
        lambda c, b: record_usage(
            c,
            event_id="u3",
            customer_id=b["customer"],
            metric_code="api_calls",
            occurred_at=NAIVE,
        ),
        InvalidInput,
        "occurred_at",
        None,
    ),
    (
        "one bad event spoils the batch",
        lambda c, b: record_usage_batch(
            c,
            [event(event_id=f"b{i}", customer_id=b["customer"]) for i in range(3)]
            + [event(event_id="b3", customer_id=b["customer"], value=-1)],
        ),
        InvalidInput,
        "events[3].value",
        -1,
    ),
    (
        "one unknown customer spoils the batch",
        lambda c, b: record_usage_batch(
            c, [event(event_id="c0", customer_id=b["customer"]), event(event_id="c1", customer_id=424_242)]
        ),
        NotFound,
        "events[1].customer_id",
        424_242,
    ),
    (
        "an event id reused with another payload",
        lambda c, b: record_usage_batch(
            c,
            [
                event(event_id="d0", customer_id=b["customer"]),
                event(event_id="d0", customer_id=b["customer"], value=2),
            ],
        ),
        IdempotencyConflict,
        "events[1].event_id",
        "d0",
    ),
    (
        "unknown subscription",
        lambda c, b: change_plan(c, subscription_id=31337, items=[{"price_id": b["usd2"], "quantity": 1}]),
        NotFound,
        "subscription_id",
        31337,
    ),
]


@pytest.mark.parametrize(("name", "call", "error", "field", "got"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly_and_writes_nothing(
    ctx: BillingContext,
    engine: Engine,
    book: dict[str, int],
    name: str,
    call: Callable[[BillingContext, dict[str, int]], Any],
    error: type[InvalidInput],
    field: str,
    got: Any,
) -> None:
    before = snapshot(engine)
    with pytest.raises(error) as info:
        call(ctx, book)
    raised = info.value
    assert raised.field.endswith(field), (raised.field, field)
    if got is not None:
        assert raised.got == got
    assert raised.expected
    body = raised.to_dict()
    assert {"code", "field", "expected", "got"} <= set(body)
    assert body["code"] == raised.code
    assert snapshot(engine) == before


def test_usage_replay_changes_nothing(ctx: BillingContext, engine: Engine, book: dict[str, int]) -> None:
    events = [event(event_id=f"r{i}", customer_id=book["customer"], value=i + 1) for i in range(5)]
    first = record_usage_batch(ctx, events)
    assert (first.accepted, first.duplicates) == (5, 0)
    before = snapshot(engine)
    again = record_usage_batch(ctx, events + events[:2])
    assert (again.accepted, again.duplicates) == (0, 7)
    assert snapshot(engine) == before
    with pytest.raises(IdempotencyConflict):
        record_usage_batch(ctx, [event(event_id="r0", customer_id=book["customer"], value=99)])
