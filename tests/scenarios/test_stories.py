"""Dated stories with a frozen clock: what a customer sees, invoice by invoice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing_core.audit import verify
from billing_core.clock import FrozenClock
from billing_core.errors import InvalidInput
from billing_core.payments import DeclineCode, ScriptedGateway
from billing_core.services.billing_run import run_billing
from billing_core.services.cancel_subscription import cancel_subscription
from billing_core.services.change_plan import change_plan
from billing_core.services.create_billable_metric import create_billable_metric
from billing_core.services.create_price import create_price
from billing_core.services.create_subscription import create_subscription
from billing_core.services.create_tax_rate import create_tax_rate
from billing_core.services.issue_credit_note import issue_credit_note
from billing_core.services.pause_subscription import pause_subscription
from billing_core.services.record_usage import record_usage, record_usage_batch
from billing_core.services.resume_subscription import resume_subscription
from tests.scenarios.conftest import World


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def flat(world: World, amount: int, currency: str = "USD", interval: str = "month", **kw: object) -> int:
    return create_price(
        world.ctx,
        product_id=world.product_id,
        currency=currency,
        model="flat",
        interval=interval,
        unit_amount_minor=amount,
        **kw,
    ).id  # type: ignore[arg-type]


def test_monthly_plan_upgraded_mid_cycle_in_berlin(world: World, clock: FrozenClock) -> None:
    pro, business = flat(world, 49_00, "EUR"), flat(world, 199_00, "EUR")
    ada = world.customer("EUR", "Europe/Berlin")
    clock.set(at(2026, 1, 9, 23, 30))  # 00:30 on 10 January in Berlin
    sub = create_subscription(world.ctx, customer_id=ada, items=[{"price_id": pro, "quantity": 1}])
    # 25 January, 23:30 UTC is already 26 January in Berlin: 15 of the period's 31 local days remain
    clock.set(at(2026, 1, 25, 23, 30))
    change = change_plan(world.ctx, subscription_id=sub.id, items=[{"price_id": business, "quantity": 1}])
    invoices = world.invoices(ada)
    assert [i["billing_reason"] for i in invoices] == ["subscription_cycle", "subscription_update"]
    proration = invoices[1]
    # credit 49.00 × 15/31 = 23.709… → -23.71; charge 199.00 × 15/31 = 96.290… → 96.29
    assert [line["amount_minor"] for line in proration["lines"]] == [-23_71, 96_29]
    assert proration["total_minor"] == 72_58 == change.amount_due_minor

    clock.set(at(2026, 2, 9, 23, 30))
    run_billing(world.ctx, as_of=clock.now())
    renewal = world.invoices(ada)[-1]
    assert renewal["billing_reason"] == "subscription_cycle"
    assert [line["amount_minor"] for line in renewal["lines"]] == [199_00]
    assert renewal["status"] == "paid"


def test_annual_plan_downgraded_at_period_end(world: World, clock: FrozenClock) -> None:
    pro, basic = flat(world, 490_00, interval="year"), flat(world, 190_00, interval="year")
    c = world.customer()
    sub = create_subscription(world.ctx, customer_id=c, items=[{"price_id": pro, "quantity": 1}])
    clock.set(at(2026, 6, 1))
    change_plan(
        world.ctx, subscription_id=sub.id, items=[{"price_id": basic, "quantity": 1}], effective="period_end"
    )
    assert len(world.invoices(c)) == 1  # nothing is invoiced until the period ends
    run_billing(world.ctx, as_of=at(2026, 12, 31))
    assert len(world.invoices(c)) == 1
    clock.set(at(2027, 1, 1))
    run_billing(world.ctx, as_of=clock.now())
    renewal = world.invoices(c)[-1]
    assert renewal["period_start"] == at(2027, 1, 1)
    assert renewal["total_minor"] == 190_00
    assert all(line["kind"] != "proration" for line in renewal["lines"])


def test_pause_and_resume_never_bills_the_paused_days(world: World, clock: FrozenClock) -> None:
    price = flat(world, 30_00)
    c = world.customer()
    sub = create_subscription(world.ctx, customer_id=c, items=[{"price_id": price, "quantity": 1}])
    clock.set(at(2026, 1, 11))  # 10 of January's 31 days used
    pause_subscription(world.ctx, subscription_id=sub.id)
    assert world.subscription(sub.id)["status"] == "paused"
    credit = world.balance(c)
    assert credit == 30_00 - 9_68  # unused 21/31 of 30.00 = 20.322… → 20.32 back to the balance
    for month in (2, 3):
        run_billing(world.ctx, as_of=at(2026, month, 1))
    # pausing credits the unused days through a credit invoice, then nothing while paused
    assert [(i["billing_reason"], i["total_minor"]) for i in world.invoices(c)] == [
        ("subscription_cycle", 30_00),
        ("subscription_update", -20_32),
    ]
    clock.set(at(2026, 3, 15))
    resume_subscription(world.ctx, subscription_id=sub.id)
    after = world.invoices(c)[-1]
    assert after["period_start"] == at(2026, 3, 15)  # re-anchored on the resume day
    assert after["total_minor"] == 30_00
    assert after["credit_applied_minor"] == credit  # the unused January days pay for March
    run_billing(world.ctx, as_of=at(2026, 4, 14))
    assert len(world.invoices(c)) == 3
    run_billing(world.ctx, as_of=at(2026, 4, 15))
    assert world.invoices(c)[-1]["period_start"] == at(2026, 4, 15)


def test_resuming_at_the_instant_of_the_pause_is_refused_clearly(world: World, clock: FrozenClock) -> None:
    price = flat(world, 30_00)
    c = world.customer()
    sub = create_subscription(world.ctx, customer_id=c, items=[{"price_id": price, "quantity": 1}])
    pause_subscription(world.ctx, subscription_id=sub.id)
    invoices = world.invoices(c)
    with pytest.raises(InvalidInput) as refused:
        resume_subscription(world.ctx, subscription_id=sub.id)
    assert refused.value.field == "resumed_at"
    assert world.subscription(sub.id)["status"] == "paused"
    assert world.invoices(c) == invoices
    clock.set(at(2026, 1, 2))
    assert resume_subscription(world.ctx, subscription_id=sub.id).status.value == "active"


def test_usage_crossing_a_tier_boundary(world: World, clock: FrozenClock) -> None:
    create_billable_metric(world.ctx, code="api_calls", name="API calls", aggregation="sum")
    base = flat(world, 10_00)
    calls = create_price(
        world.ctx,
        product_id=world.product_id,
        currency="USD",
        model="graduated",
        interval="month",
        usage_type="metered",
        metric_code="api_calls",
        tiers=[{"up_to": 1000, "unit_amount_minor": "0"}, {"up_to": None, "unit_amount_minor": "0.5"}],
    ).id
    c = world.customer()
    create_subscription(
        world.ctx,
        customer_id=c,
        items=[{"price_id": base, "quantity": 1}, {"price_id": calls, "quantity": 0}],
    )
    clock.set(at(2026, 1, 20))
    record_usage_batch(
        world.ctx,
        [
            {
                "event_id": "e1",
                "customer_id": c,
                "metric_code": "api_calls",
                "occurred_at": at(2026, 1, 5),
                "value": 900,
            },
            {
                "event_id": "e2",
                "customer_id": c,
                "metric_code": "api_calls",
                "occurred_at": at(2026, 1, 19),
                "value": 351,
            },
        ],
    )
    replay = record_usage(
        world.ctx,
        event_id="e2",
        customer_id=c,
        metric_code="api_calls",
        occurred_at=at(2026, 1, 19),
        value=351,
    )
    assert (replay.accepted, replay.duplicates) == (0, 1)
    # an event in February belongs to the next period
    record_usage(
        world.ctx, event_id="e3", customer_id=c, metric_code="api_calls", occurred_at=at(2026, 2, 1), value=5
    )
    clock.set(at(2026, 2, 1))
    run_billing(world.ctx, as_of=clock.now())
    renewal = world.invoices(c)[-1]
    usage = [line for line in renewal["lines"] if line["kind"] == "usage"]
    # 1,251 calls: 1,000 free, 251 × 0.5 cents = 125.5 → 126 cents
    assert [(u["quantity"], u["amount_minor"]) for u in usage] == [(1251, 1_26)]
    assert renewal["total_minor"] == 10_00 + 1_26


def test_trial_ending_in_a_failed_payment(world: World, clock: FrozenClock, gateway: ScriptedGateway) -> None:
    price = flat(world, 20_00, trial_days=14)
    c = world.customer()
    sub = create_subscription(world.ctx, customer_id=c, items=[{"price_id": price, "quantity": 1}])
    assert world.subscription(sub.id)["status"] == "trialing"
    assert world.invoices(c) == []
    gateway.push(DeclineCode.INSUFFICIENT_FUNDS)
    clock.set(at(2026, 1, 15))
    result = run_billing(world.ctx, as_of=clock.now())
    assert (result.invoices, result.payments.failed) == (1, 1)
    invoice = world.invoices(c)[0]
    assert (invoice["status"], invoice["amount_due_minor"]) == ("open", 20_00)
    assert world.subscription(sub.id)["status"] == "past_due"
    failed = world.events("payment.failed")
    assert failed
    assert "insufficient_funds" in failed[-1]["payload"]


def test_credit_note_consumed_by_the_next_invoice(world: World, clock: FrozenClock) -> None:
    price = flat(world, 50_00)
    c = world.customer()
    create_subscription(world.ctx, customer_id=c, items=[{"price_id": price, "quantity": 1}])
    first = world.invoices(c)[0]
    clock.set(at(2026, 1, 20))
    issue_credit_note(
        world.ctx,
        invoice_id=first["id"],
        amount_minor=12_50,
        reason="service_credit",
        outcome="customer_balance",
    )
    assert world.balance(c) == 12_50
    clock.set(at(2026, 2, 1))
    run_billing(world.ctx, as_of=clock.now())
    renewal = world.invoices(c)[-1]
    assert (renewal["total_minor"], renewal["credit_applied_minor"], renewal["amount_due_minor"]) == (
        50_00,
        12_50,
        37_50,
    )
    assert world.balance(c) == 0


def test_customers_billed_in_jpy_and_kwd(world: World, clock: FrozenClock) -> None:
    jp_tax = create_tax_rate(world.ctx, jurisdiction="JP", percentage="10", inclusive=False).id
    kw_tax = create_tax_rate(world.ctx, jurisdiction="KW", percentage="5.5", inclusive=False).id
    yen = create_price(
        world.ctx,
        product_id=world.product_id,
        currency="JPY",
        model="per_unit",
        interval="month",
        unit_amount_minor="733.5",
    ).id
    dinar = flat(world, 14_705, "KWD")  # 14.705 KWD
    taro = world.customer("JPY", "Asia/Tokyo", tax_rate_id=jp_tax)
    fatima = world.customer("KWD", "Asia/Kuwait", tax_rate_id=kw_tax)
    create_subscription(world.ctx, customer_id=taro, items=[{"price_id": yen, "quantity": 3}])
    create_subscription(world.ctx, customer_id=fatima, items=[{"price_id": dinar, "quantity": 1}])
    jp, kw = world.invoices(taro)[0], world.invoices(fatima)[0]
    # 3 × 733.5 = 2,200.5 yen → 2,201; tax 220.1 → 220
    assert (jp["currency"], jp["subtotal_minor"], jp["tax_minor"], jp["total_minor"]) == (
        "JPY",
        2201,
        220,
        2421,
    )
    # 14.705 KWD × 5.5% = 0.808775 → 0.809
    assert (kw["currency"], kw["subtotal_minor"], kw["tax_minor"], kw["total_minor"]) == (
        "KWD",
        14_705,
        809,
        15_514,
    )


def test_cancel_now_and_at_period_end(world: World, clock: FrozenClock) -> None:
    price = flat(world, 31_00)
    a, b = world.customer(), world.customer()
    now_sub = create_subscription(world.ctx, customer_id=a, items=[{"price_id": price, "quantity": 1}])
    end_sub = create_subscription(world.ctx, customer_id=b, items=[{"price_id": price, "quantity": 1}])
    clock.set(at(2026, 1, 22))  # 10 of 31 days left
    cancel_subscription(world.ctx, subscription_id=now_sub.id, prorate=True)
    cancel_subscription(world.ctx, subscription_id=end_sub.id, at_period_end=True)
    assert world.subscription(now_sub.id)["status"] == "canceled"
    assert world.balance(a) == 10_00
    assert world.subscription(end_sub.id)["status"] == "active"
    clock.set(at(2026, 2, 1))
    run_billing(world.ctx, as_of=clock.now())
    assert world.subscription(end_sub.id)["status"] == "canceled"
    # the period-end cancellation closes with a final invoice that charges nothing more
    assert [(i["billing_reason"], i["total_minor"]) for i in world.invoices(b)] == [
        ("subscription_cycle", 31_00),
        ("subscription_final", 0),
    ]
    # cancelling now credited 10 of 31 days (10.00) to the balance through a final credit invoice
    assert [(i["billing_reason"], i["total_minor"]) for i in world.invoices(a)] == [
        ("subscription_cycle", 31_00),
        ("subscription_final", -10_00),
    ]
    assert run_billing(world.ctx, as_of=at(2026, 3, 1)).invoices == 0  # nothing renews after a cancellation


def test_numbering_is_gapless_and_a_rerun_changes_nothing(world: World, clock: FrozenClock) -> None:
    price = flat(world, 9_00)
    for _ in range(5):
        create_subscription(
            world.ctx, customer_id=world.customer(), items=[{"price_id": price, "quantity": 1}]
        )
    for month in (2, 3, 4):
        clock.set(at(2026, month, 1))
        run_billing(world.ctx, as_of=clock.now())
        assert run_billing(world.ctx, as_of=clock.now()).invoices == 0
    with world.ctx.read() as conn:
        numbers = sorted(r[0] for r in conn.exec_driver_sql("SELECT number FROM invoices"))
        report = verify(conn)
    assert numbers == [f"INV-{n:06d}" for n in range(1, 21)]
    assert report.events > 20
    clock.advance(timedelta(days=1))


def test_a_price_added_between_billing_runs_is_billed_by_the_next_one(
    world: World, clock: FrozenClock
) -> None:
    """Runs keep the catalog they loaded (catalog rows never change) until a row is added."""
    from billing_core.services import billing_run

    basic = flat(world, 19_00)
    c = world.customer()
    sub = create_subscription(world.ctx, customer_id=c, items=[{"price_id": basic, "quantity": 1}])
    clock.set(at(2026, 2, 1))
    run_billing(world.ctx, as_of=clock.now())
    with world.ctx.read() as conn:
        kept = billing_run._catalog_of(world.ctx.engine, conn)
        assert billing_run._catalog_of(world.ctx.engine, conn)[0] is kept[0]  # nothing added: reused

    premium = flat(world, 59_00)  # a price the first run never saw
    change_plan(
        world.ctx,
        subscription_id=sub.id,
        items=[{"price_id": premium, "quantity": 1}],
        effective="period_end",
    )
    clock.set(at(2026, 3, 1))
    run_billing(world.ctx, as_of=clock.now())
    renewal = world.invoices(c)[-1]
    assert [(line["price_id"], line["amount_minor"]) for line in renewal["lines"]] == [(premium, 59_00)]
    with world.ctx.read() as conn:
        catalog, _cache = billing_run._catalog_of(world.ctx.engine, conn)
    assert catalog is not kept[0]
    assert premium in catalog.prices
