"""The runner's bulk writers leave exactly what the use cases would: rows, ids and events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.errors import InvalidInput
from billing_core.payments import DeclineCode, ScriptedGateway
from billing_core.services.add_payment_method import add_payment_method
from billing_core.services.advance_dispute import resolve_dispute
from billing_core.services.billing_run import run_billing
from billing_core.services.cancel_subscription import cancel_subscription
from billing_core.services.change_plan import change_plan
from billing_core.services.close_chargeback import close_chargeback
from billing_core.services.collect_payments import collect_payments
from billing_core.services.create_customer import create_customer
from billing_core.services.create_subscription import create_subscription
from billing_core.services.open_dispute import open_dispute
from billing_core.services.pay_invoice import pay_invoice
from billing_core.services.record_chargeback import record_chargeback
from billing_core.simulation.actions import (
    CardToAdd,
    ChargebackToRecord,
    DisputeToOpen,
    Payment,
    add_cards,
    close_chargebacks,
    open_disputes,
    record_chargebacks,
    resolve_disputes,
    schedule_cancels,
    schedule_payments,
    schedule_plan_changes,
)
from billing_core.simulation.catalog import WorldCatalog, build_world_catalog
from billing_core.simulation.signups import NewCard, NewCustomer, NewSubscription, write_signups
from tests.simulation._helpers import reset, rows

START = datetime(2025, 3, 1, tzinfo=UTC)
TABLES = (
    "customers", "payment_methods", "subscriptions", "subscription_items", "subscription_pending_changes",
    "invoices", "payment_attempts", "payments", "outbox",
)  # fmt: skip


def _signups(catalog: WorldCatalog) -> list[NewCustomer]:
    usd = catalog.book.plans["USD"]
    eur = catalog.book.plans["EUR"]
    return [
        NewCustomer(
            START + timedelta(hours=3, minutes=7), "a1@example.com", "Ada", "USD", "America/New_York", "US", "en",
            tax_rate_id=catalog.tax_rate("US"), signup_channel="organic", signup_ip="23.1.2.3",
            signup_device_id="dev_0001",
            card=NewCard("visa", "424242", "4242", 12, 2027, "fp_a"),
            subscriptions=(NewSubscription(((usd["pro"], 1), (usd["api_calls"], 0))),),
        ),
        NewCustomer(
            START + timedelta(hours=9), "b2@example.de", "Bea", "EUR", "Europe/Berlin", "DE", "de",
            tax_rate_id=catalog.tax_rate("DE"), signup_channel="sales", signup_ip="46.7.8.9",
            signup_device_id="dev_0002",
            card=NewCard("mastercard", "510000", "0001", 1, 2026, "fp_b", default=False),
            subscriptions=(NewSubscription(((eur["pro_annual"], 1),)), NewSubscription(((eur["api_calls"], 0),))),
        ),
        NewCustomer(
            START + timedelta(hours=23, minutes=59), "c3@example.com", "Cy", "USD", "America/Chicago", "US", "en",
            signup_channel="partner", card=NewCard("amex", "370000", "1005", 5, 2028, "fp_c"),
            subscriptions=(NewSubscription(((usd["seats"], 7),)),),
        ),
    ]  # fmt: skip


def _by_use_cases(ctx: BillingContext, clock: FrozenClock, signups: list[NewCustomer]) -> None:
    for s in signups:
        clock.set(s.created_at)
        customer = create_customer(
            ctx, email=s.email, name=s.name, currency=s.currency, timezone=s.timezone, country=s.country,
            language=s.language, tax_rate_id=s.tax_rate_id, signup_channel=s.signup_channel,
            signup_ip=s.signup_ip, signup_device_id=s.signup_device_id,
        )  # fmt: skip
        if s.card is not None:
            c = s.card
            add_payment_method(
                ctx, customer_id=customer.id, brand=c.brand, bin=c.bin, last4=c.last4, exp_month=c.exp_month,
                exp_year=c.exp_year, fingerprint=c.fingerprint, make_default=c.default,
            )  # fmt: skip
        for sub in s.subscriptions:
            create_subscription(
                ctx,
                customer_id=customer.id,
                items=[{"price_id": p, "quantity": q} for p, q in sub.items],
                invoice_now=False,
            )


def _snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    return {table: rows(engine, table) for table in TABLES}


def _twice(
    engine: Engine,
    request: pytest.FixtureRequest,
    setup: Callable[[BillingContext, FrozenClock], Any],
    by_use_cases: Callable[[BillingContext, FrozenClock, Any], None],
    in_bulk: Callable[[BillingContext, FrozenClock, Any], None],
) -> None:
    """Run ``setup`` then the use cases; reset; ``setup`` then the bulk writer; compare everything."""
    snapshots = []
    for act in (by_use_cases, in_bulk):
        clock = FrozenClock(START)
        ctx = BillingContext(
            engine, clock=clock, gateway=ScriptedGateway([DeclineCode.INSUFFICIENT_FUNDS] * 3)
        )
        state = setup(ctx, clock)
        act(ctx, clock, state)
        snapshots.append(_snapshot(engine))
        reset(engine, request)
    first, second = snapshots
    for table in TABLES:
        assert first[table] == second[table], table


def test_write_signups_matches_the_use_cases(engine: Engine, request: pytest.FixtureRequest) -> None:
    def setup(ctx: BillingContext, clock: FrozenClock) -> WorldCatalog:
        return build_world_catalog(ctx)

    def bulk(ctx: BillingContext, clock: FrozenClock, catalog: WorldCatalog) -> None:
        with ctx.transaction() as tx:
            written = write_signups(tx, _signups(catalog), prices=catalog.book.prices)
        assert [len(w.subscription_ids) for w in written] == [1, 2, 1]

    _twice(
        engine, request, setup, lambda ctx, clock, catalog: _by_use_cases(ctx, clock, _signups(catalog)), bulk
    )


def _book(ctx: BillingContext, clock: FrozenClock) -> dict[str, Any]:
    """Three customers with cards and monthly subscriptions, invoiced; the gateway declines all three."""
    catalog = build_world_catalog(ctx)
    _by_use_cases(ctx, clock, _signups(catalog))
    clock.set(START + timedelta(days=1))
    run_billing(ctx, as_of=clock.now())
    clock.set(START + timedelta(days=2))
    with ctx.read() as conn:
        invoices = [
            r[0] for r in Bulk(conn).query("SELECT id FROM invoices WHERE status = 'open' ORDER BY id")
        ]
        subs = [r[0] for r in Bulk(conn).query("SELECT id FROM subscriptions ORDER BY id")]
        customers = [r[0] for r in Bulk(conn).query("SELECT id FROM customers ORDER BY id")]
    return {"catalog": catalog, "invoices": invoices, "subscriptions": subs, "customers": customers}


def test_actions_match_the_use_cases(engine: Engine, request: pytest.FixtureRequest) -> None:
    cards = [
        CardToAdd(0, "visa", "411111", "1111", 3, 2029, "fp_new_0"),
        CardToAdd(1, "jcb", "352800", "2222", 4, 2030, None, make_default=False),
    ]

    def by_use_cases(ctx: BillingContext, clock: FrozenClock, book: dict[str, Any]) -> None:
        customers, subs, invoices = book["customers"], book["subscriptions"], book["invoices"]
        for card in cards:
            c = card._replace(customer_id=customers[card.customer_id])
            add_payment_method(
                ctx, customer_id=c.customer_id, brand=c.brand, bin=c.bin, last4=c.last4, exp_month=c.exp_month,
                exp_year=c.exp_year, fingerprint=c.fingerprint, make_default=c.make_default,
            )  # fmt: skip
        clock.advance(timedelta(hours=1))
        for invoice_id in (invoices[0], invoices[-1]):
            pay_invoice(ctx, invoice_id=invoice_id)
        clock.advance(timedelta(hours=1))
        cancel_subscription(ctx, subscription_id=subs[0], at_period_end=True)
        clock.advance(timedelta(hours=1))
        usd = book["catalog"].book.plans["USD"]
        change_plan(
            ctx,
            subscription_id=subs[3],
            items=[{"price_id": usd["business"], "quantity": 1}],
            effective="period_end",
        )

    def in_bulk(ctx: BillingContext, clock: FrozenClock, book: dict[str, Any]) -> None:
        customers, subs, invoices = book["customers"], book["subscriptions"], book["invoices"]
        with ctx.transaction() as tx:
            add_cards(tx, [c._replace(customer_id=customers[c.customer_id]) for c in cards])
        clock.advance(timedelta(hours=1))
        for invoice_id in (invoices[0], invoices[-1]):  # pay_invoice commits and sends each attempt in turn
            with ctx.transaction() as tx:
                scheduled = schedule_payments(tx, [Payment(invoice_id)])
            collect_payments(ctx, attempt_ids=[s.attempt_id for s in scheduled if s is not None])
        clock.advance(timedelta(hours=1))
        with ctx.transaction() as tx:
            assert schedule_cancels(tx, [subs[0]]) == [subs[0]]
        clock.advance(timedelta(hours=1))
        usd = book["catalog"].book.plans["USD"]
        with ctx.transaction() as tx:
            assert schedule_plan_changes(tx, [(subs[3], [(usd["business"], 1)])]) == [subs[3]]

    _twice(engine, request, _book, by_use_cases, in_bulk)


def test_bulk_payments_skip_what_cannot_be_paid(
    ctx: BillingContext, clock: FrozenClock, gateway: ScriptedGateway
) -> None:
    gateway.push(DeclineCode.INSUFFICIENT_FUNDS, DeclineCode.INSUFFICIENT_FUNDS)
    book = _book(ctx, clock)
    first = book["invoices"][0]
    with ctx.transaction() as tx:
        scheduled = schedule_payments(tx, [Payment(first), Payment(first)])
    assert scheduled[0] is not None
    assert scheduled[1] is None  # named twice: scheduled once
    assert scheduled[0].idempotency_key == f"in_{first}_attempt_2"
    with ctx.transaction() as tx:  # an attempt is pending now
        assert schedule_payments(tx, [Payment(first)]) == [None]
    collect_payments(ctx, attempt_ids=[scheduled[0].attempt_id])
    with ctx.transaction() as tx:
        assert schedule_cancels(tx, [book["subscriptions"][0]]) == [book["subscriptions"][0]]


def test_signup_context_is_checked_and_recorded(ctx: BillingContext) -> None:
    with pytest.raises(InvalidInput) as error:
        create_customer(ctx, email="x@example.com", name="X", currency="USD", signup_ip="999.1.1.1")
    assert error.value.field == "signup_ip"
    with pytest.raises(InvalidInput) as error:
        create_customer(ctx, email="x@example.com", name="X", currency="USD", signup_channel="Paid Search")
    assert error.value.field == "signup_channel"
    plain = create_customer(ctx, email="p@example.com", name="P", currency="USD")
    tagged = create_customer(
        ctx, email="t@example.com", name="T", currency="USD", signup_channel="referral",
        signup_ip="2001:db8::1", signup_device_id="dev_9",
    )  # fmt: skip
    found = rows(ctx.engine, "customers", "id, signup_channel, signup_ip, signup_device_id")
    assert found == [(plain.id, None, None, None), (tagged.id, "referral", "2001:db8::1", "dev_9")]
    events = [r[0] for r in rows(ctx.engine, "outbox", "payload")]
    assert "signup" not in events[0]
    assert '"signup_ip":"2001:db8::1"' in events[1]


def test_write_signups_names_the_culprit(ctx: BillingContext) -> None:
    catalog = build_world_catalog(ctx)
    signups = _signups(catalog)
    eur_price = catalog.book.plans["EUR"]["pro"]
    wrong = NewCustomer(
        START,
        "w@example.com",
        "W",
        "USD",
        "UTC",
        "US",
        "en",
        subscriptions=(NewSubscription(((eur_price, 1),)),),
    )
    with ctx.transaction() as tx, pytest.raises(InvalidInput) as error:
        write_signups(tx, [signups[0], wrong], prices=catalog.book.prices)
    assert error.value.field == "customers[1].subscriptions[0].items[0].price_id"


def _paid_book(ctx: BillingContext, clock: FrozenClock) -> dict[str, Any]:
    book = _book(ctx, clock)
    for invoice_id in (book["invoices"][0], book["invoices"][-1]):
        pay_invoice(ctx, invoice_id=invoice_id)
    clock.advance(timedelta(days=3))
    with ctx.read() as conn:
        book["payments"] = Bulk(conn).query("SELECT id, customer_id, amount_minor FROM payments ORDER BY id")
    return book


def test_disputes_and_chargebacks_match_the_use_cases(engine: Engine, request: pytest.FixtureRequest) -> None:
    def by_use_cases(ctx: BillingContext, clock: FrozenClock, book: dict[str, Any]) -> None:
        (p1, c1, a1), (p2, c2, a2) = book["payments"][:2]
        first = open_dispute(ctx, customer_id=c1, message="charged twice", amount_minor=a1, payment_id=p1)
        open_dispute(ctx, customer_id=c2, message="no lo reconozco", amount_minor=a2 - 1, payment_id=p2)
        resolve_dispute(ctx, dispute_id=first.id, outcome="refunded", note="resolved")
        chargeback = record_chargeback(
            ctx, payment_id=p1, network_reference="cb-1", amount_minor=a1, reason_code="10.4", fee_minor=15_00
        )
        record_chargeback(
            ctx, payment_id=p1, network_reference="cb-1", amount_minor=a1, reason_code="10.4", fee_minor=15_00
        )
        record_chargeback(ctx, payment_id=p2, network_reference="cb-2", amount_minor=a2, reason_code="10.4")
        close_chargeback(ctx, chargeback_id=chargeback.id, won=True)

    def in_bulk(ctx: BillingContext, clock: FrozenClock, book: dict[str, Any]) -> None:
        (p1, c1, a1), (p2, c2, a2) = book["payments"][:2]
        with ctx.transaction() as tx:
            first, _second = open_disputes(
                tx,
                [
                    DisputeToOpen(c1, p1, a1, "charged twice"),
                    DisputeToOpen(c2, p2, a2 - 1, "no lo reconozco"),
                ],
            )
        with ctx.transaction() as tx:
            assert resolve_disputes(tx, [(first, "refunded", "resolved"), (first, "upheld", "")]) == [first]
        with ctx.transaction() as tx:
            one, again = record_chargebacks(tx, [ChargebackToRecord(p1, "cb-1", a1, "10.4", 15_00)] * 2)
            assert one == again
        with ctx.transaction() as tx:
            record_chargebacks(tx, [ChargebackToRecord(p2, "cb-2", a2, "10.4")])
        with ctx.transaction() as tx:
            assert close_chargebacks(tx, [(one, True), (one, False)]) == [one]

    tables = ("disputes", "chargebacks", "outbox")
    snapshots = []
    for act in (by_use_cases, in_bulk):
        clock = FrozenClock(START)
        ctx = BillingContext(
            engine, clock=clock, gateway=ScriptedGateway([DeclineCode.INSUFFICIENT_FUNDS] * 2)
        )
        act(ctx, clock, _paid_book(ctx, clock))
        snapshots.append({table: rows(engine, table) for table in tables})
        reset(engine, request)
    assert snapshots[0] == snapshots[1]


def test_bulk_disputes_name_the_culprit(
    ctx: BillingContext, clock: FrozenClock, gateway: ScriptedGateway
) -> None:
    gateway.push(DeclineCode.INSUFFICIENT_FUNDS, DeclineCode.INSUFFICIENT_FUNDS)
    book = _paid_book(ctx, clock)
    (p1, c1, a1), (_p2, c2, _a2) = book["payments"][:2]
    for dispute, field in (
        (DisputeToOpen(c1, p1, a1 + 1, "too much"), "disputes[0].amount_minor"),
        (DisputeToOpen(c2, p1, a1, "not mine"), "disputes[0].payment_id"),
        (DisputeToOpen(c1, p1, a1, "  "), "disputes[0].message"),
    ):
        with ctx.transaction() as tx, pytest.raises(InvalidInput) as error:
            open_disputes(tx, [dispute])
        assert error.value.field == field
