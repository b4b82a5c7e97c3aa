"""A dated story exported once at the end: asked as of any moment, the lake says what was true then."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.db.types import parse_instant_column
from billing_core.lake import TABLES, export_lake, read_table
from billing_core.payments import DeclineCode, ScriptedGateway
from billing_core.services.add_payment_method import add_payment_method
from billing_core.services.advance_dispute import categorize_dispute, resolve_dispute, review_dispute
from billing_core.services.billing_run import run_billing
from billing_core.services.cancel_subscription import cancel_subscription
from billing_core.services.change_plan import change_plan
from billing_core.services.create_customer import create_customer
from billing_core.services.create_price import create_price
from billing_core.services.create_product import create_product
from billing_core.services.create_subscription import create_subscription
from billing_core.services.open_dispute import open_dispute
from billing_core.services.pause_subscription import pause_subscription
from billing_core.services.pay_invoice import pay_invoice
from billing_core.services.resume_subscription import resume_subscription
from tests.lake._checks import lake_sql


def state(ctx: BillingContext, sub_id: int) -> dict[str, Any]:
    """What the database says now: the subscription, its last invoiced period, each invoice's status."""
    with ctx.read() as conn:
        bulk = Bulk(conn)
        status, cancel = bulk.query(
            "SELECT status, cancel_at_period_end FROM subscriptions WHERE id = ?", (sub_id,)
        )[0]
        items = bulk.query(
            "SELECT price_id, quantity FROM subscription_items WHERE subscription_id = ? ORDER BY id",
            (sub_id,),
        )
        period = bulk.query(
            "SELECT period_start, period_end FROM invoices WHERE subscription_id = ?"
            " AND billing_reason = 'subscription_cycle' ORDER BY period_start DESC LIMIT 1",
            (sub_id,),
        )
        invoices = dict(bulk.query("SELECT id, status FROM invoices ORDER BY id"))
        disputes = bulk.query("SELECT id, status, category FROM disputes ORDER BY id")
    return {
        "subscription": (
            status,
            bool(cancel),
            [{"price_id": p, "quantity": q} for p, q in items],
            tuple(parse_instant_column(v) for v in period[0]) if period else (None, None),
        ),
        "invoices": invoices,
        "disputes": {d[0]: (d[1], d[2]) for d in disputes},
    }


def as_of(lake: Path, at: datetime, sub_id: int) -> dict[str, Any]:
    """The lake's answer for instant ``at``: the last row of each entity at or before it."""
    pick = "QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY event_timestamp DESC, event_seq DESC NULLS LAST) = 1"
    when = f"event_timestamp <= TIMESTAMPTZ '{at.isoformat()}'"
    sub = lake_sql(
        lake,
        "SELECT status, cancel_at_period_end, items, period_start, period_end FROM subscriptions"
        f" WHERE subscription_id = {sub_id} AND {when} " + pick.format(key="subscription_id"),
    )
    invoices = lake_sql(
        lake, f"SELECT invoice_id, status FROM invoices WHERE {when} " + pick.format(key="invoice_id")
    )
    disputes = lake_sql(
        lake,
        f"SELECT dispute_id, status, category FROM disputes WHERE {when} " + pick.format(key="dispute_id"),
    )
    status, cancel, items, start, end = sub[0]
    return {
        "subscription": (status, cancel, items, (start, end)),
        "invoices": dict(sorted(invoices)),
        "disputes": {d[0]: (d[1], d[2]) for d in disputes},
    }


def test_as_of_any_moment_the_lake_says_what_was_true_then(
    ctx: BillingContext, clock: FrozenClock, gateway: ScriptedGateway, tmp_path: Path
) -> None:
    product = create_product(ctx, name="Recoup Cloud")
    basic = create_price(
        ctx, product_id=product.id, currency="USD", model="flat", interval="month", unit_amount_minor=30_00
    )
    pro = create_price(
        ctx, product_id=product.id, currency="USD", model="flat", interval="month", unit_amount_minor=90_00
    )
    customer = create_customer(
        ctx, email="ada@example.com", name="Ada", currency="USD", timezone="Europe/Berlin"
    )
    add_payment_method(
        ctx, customer_id=customer.id, brand="visa", bin="424242", last4="4242", exp_month=12, exp_year=2030
    )
    sub = create_subscription(
        ctx, customer_id=customer.id, items=[{"price_id": basic.id, "quantity": 2}], trial_days=7
    )
    story: list[tuple[datetime, dict[str, Any]]] = [(clock.now(), state(ctx, sub.id))]

    step_by_step = tmp_path / "exported at every step"

    def step(days: float, action: Any) -> Any:
        clock.advance(timedelta(days=days))
        done = action()
        story.append((clock.now(), state(ctx, sub.id)))
        export_lake(ctx.engine, step_by_step, clock=clock)
        return done

    gateway.push(DeclineCode.INSUFFICIENT_FUNDS)
    step(7, lambda: run_billing(ctx, as_of=clock.now(), pipelined=False))  # trial ends, the payment fails
    first_invoice = max(story[-1][1]["invoices"])
    step(2, lambda: pay_invoice(ctx, invoice_id=first_invoice))  # paid by hand two days later
    step(5, lambda: change_plan(ctx, subscription_id=sub.id, items=[{"price_id": pro.id, "quantity": 1}]))
    step(3, lambda: pause_subscription(ctx, subscription_id=sub.id))
    step(4, lambda: resume_subscription(ctx, subscription_id=sub.id))
    dispute = step(
        0.5,
        lambda: open_dispute(
            ctx,
            customer_id=customer.id,
            invoice_id=first_invoice,
            amount_minor=10_00,
            message="Charged in my trial",
        ),
    )
    step(1, lambda: categorize_dispute(ctx, dispute_id=dispute.id, category="wrong_amount"))
    step(1, lambda: review_dispute(ctx, dispute_id=dispute.id))
    step(2, lambda: resolve_dispute(ctx, dispute_id=dispute.id, outcome="upheld"))
    step(2, lambda: cancel_subscription(ctx, subscription_id=sub.id, at_period_end=True))
    step(40, lambda: run_billing(ctx, as_of=clock.now(), pipelined=False))  # the period ends: canceled

    # the same history exported once at the end into an empty lake (the position starts again)
    with ctx.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM lake_exports")
    lake = tmp_path / "lake"
    export_lake(ctx.engine, lake, clock=clock)
    statuses = [s["subscription"][0] for _, s in story]
    assert statuses == [
        "trialing",
        "past_due",
        "active",
        "active",
        "paused",
        "active",
        "active",
        "active",
        "active",
        "active",
        "active",
        "canceled",
    ]
    for (at, truth), (following, _) in zip(
        story, [*story[1:], (clock.now() + timedelta(days=1), {})], strict=True
    ):
        assert as_of(lake, at, sub.id) == truth, at
        # and a moment before the next step, nothing of it shows yet
        assert as_of(lake, following - timedelta(microseconds=1), sub.id) == truth, at
    # exporting at every step or once gives the same rows: the rewound states are the ones lived
    for name in TABLES:
        once = read_table(lake, name).to_pylist()
        stepwise = read_table(step_by_step, name).to_pylist()
        assert sorted(map(repr, once)) == sorted(map(repr, stepwise)), name
