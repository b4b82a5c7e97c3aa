"""The runner: deterministic, common random numbers across policies, coherent data, truth for every label."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from billing_core.audit import verify
from billing_core.db.bulk import Bulk
from billing_core.db.repository import load_prices
from billing_core.db.types import parse_instant_column
from billing_core.errors import InvalidInput
from billing_core.money import round_minor
from billing_core.periods import Schedule
from billing_core.simulation.policy_eval import policy
from billing_core.simulation.runner import RunConfig, truth_dir_for
from billing_core.simulation.world_gateway import parse_key
from tests.simulation._helpers import Run, digests, fresh_sqlite, reset, rows, simulate, truth_table

SMALL = RunConfig(customers=500, months=3, seed=11, switch_month=1)


@pytest.fixture(scope="module")
def runs(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Four small runs of one world: twice the default policy, once another policy, once a recession."""
    folder = tmp_path_factory.mktemp("runs")
    configs = {
        "a": SMALL,
        "again": SMALL,
        "aggressive": dataclasses.replace(SMALL, policy=policy("static-aggressive")),
        "recession": dataclasses.replace(SMALL, scenario="recession"),
    }
    out = {}
    for name, config in configs.items():
        engine = fresh_sqlite(sqlite_template, folder, name)
        out[name] = simulate(engine, config, folder / f"{name}.truth")
    yield out
    for run in out.values():
        run.engine.dispose()


def test_same_seed_and_policy_give_identical_databases_and_truth(runs: dict[str, Run]) -> None:
    a, again = runs["a"], runs["again"]
    assert digests(a.engine) == digests(again.engine)
    assert a.truth.tables() == again.truth.tables()
    for table in a.truth.tables():
        assert a.truth.read(table).equals(again.truth.read(table)), table


def test_policies_share_every_draw_they_do_not_influence(runs: dict[str, Run]) -> None:
    a, other = runs["a"], runs["aggressive"]
    signup = "id, email, currency, timezone, country, created_at, signup_channel, signup_ip, signup_device_id"
    assert rows(a.engine, "customers", signup) == rows(other.engine, "customers", signup)
    assert truth_table(a, "truth_customers") == truth_table(other, "truth_customers")
    # the billing run's first attempt of every card payer's first invoice meets the same network answer
    card_payers = {
        r["customer_key"]
        for r in truth_table(a, "truth_customers")
        if not r["pays_by_invoice"] or r["is_fraud"]
    }

    def first_attempts(run: Run) -> dict[int, tuple[Any, ...]]:
        return {
            r["customer_key"]: (r["day"], r["local_hour"], r["p_success"], r["succeeded"], r["decline_code"])
            for r in truth_table(run, "truth_payment_attempts")
            if r["period_index"] == 0 and r["attempt_number"] == 0 and r["customer_key"] in card_payers
        }

    mine, theirs = first_attempts(a), first_attempts(other)
    assert len(mine) > 300
    assert mine == theirs
    # customers no dunning process ever touched live the same life in both runs
    untouched = _untouched(a.engine) & _untouched(other.engine)
    assert len(untouched) > 100
    for table, columns in (
        ("usage_events", "event_id, customer_id, occurred_at, value"),
        ("invoices", "id, customer_id, total_minor, period_start"),
    ):
        mine = [r for r in rows(a.engine, table, columns) if r[1] in untouched]
        theirs = [r for r in rows(other.engine, table, columns) if r[1] in untouched]
        if table == "invoices":  # ids differ once the policies diverge: compare without them
            mine, theirs = sorted(r[1:] for r in mine), sorted(r[1:] for r in theirs)
        assert mine == theirs, table
    # ... and the policies did differ where they decide
    channels = {r[0] for r in rows(other.engine, "dunning_actions", "channel") if r[0]}
    assert channels >= {"sms", "email"}
    assert {r[0] for r in rows(a.engine, "dunning_actions", "channel") if r[0]} == {"email"}


def _untouched(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        bulk = Bulk(conn)
        everyone = {r[0] for r in bulk.query("SELECT id FROM customers")}
        touched = {r[0] for r in bulk.query("SELECT DISTINCT customer_id FROM dunning_processes")}
        disputed = {r[0] for r in bulk.query("SELECT DISTINCT customer_id FROM disputes")}
    return everyone - touched - disputed


def test_the_data_holds_together(runs: dict[str, Run]) -> None:
    engine = runs["a"].engine
    with engine.connect() as conn:
        bulk = Bulk(conn)
        assert verify(conn).events == runs["a"].summary.counts["outbox"]
        assert bulk.query("PRAGMA foreign_key_check") == []
        assert (
            bulk.query(
                "SELECT i.id FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id GROUP BY i.id"
                " HAVING SUM(l.amount_minor) <> MAX(i.subtotal_minor) OR SUM(l.tax_minor) <> MAX(i.tax_minor)"
                " OR SUM(l.discount_minor) <> MAX(i.discount_minor)"
            )
            == []
        )
        assert (
            bulk.query(
                "SELECT id FROM invoices WHERE total_minor <> subtotal_minor - discount_minor"
                " + CASE WHEN tax_inclusive THEN 0 ELSE tax_minor END"
                " OR amount_due_minor <> CASE WHEN total_minor > 0 THEN total_minor ELSE 0 END - credit_applied_minor"
                " OR amount_paid_minor > amount_due_minor OR amount_paid_minor + amount_remaining_minor"
                " + amount_credited_minor <> amount_due_minor"
            )
            == []
        )
        numbers = sorted(int(n.split("-")[1]) for (n,) in bulk.query("SELECT number FROM invoices"))
        assert numbers == list(range(1, len(numbers) + 1))
        assert (
            bulk.query(
                "SELECT p.id FROM payments p JOIN invoices i ON i.id = p.invoice_id"
                " WHERE p.currency <> i.currency OR p.amount_minor > i.amount_due_minor"
            )
            == []
        )
        # paid invoices are paid in full, by exactly the payments recorded
        assert (
            bulk.query(
                "SELECT i.id FROM invoices i WHERE i.status = 'paid' AND i.amount_paid_minor <>"
                " (SELECT COALESCE(SUM(p.amount_minor), 0) FROM payments p WHERE p.invoice_id = i.id)"
            )
            == []
        )
        _periods_exactly_right(bulk)


def _periods_exactly_right(bulk: Bulk) -> None:
    """Every subscription's cycle invoices follow its schedule without a gap or a repeat, each
    licensed line is price x quantity, each usage line prices the usage recorded in its window."""
    prices = load_prices(bulk.conn)
    subs = {
        sid: Schedule(parse_instant_column(anchor), tz, months, parse_instant_column(started))
        for sid, anchor, tz, months, started in bulk.query(
            "SELECT id, anchor_at, tz_name, months_per_period, started_at FROM subscriptions"
        )
    }
    periods: dict[int, list[tuple[Any, Any]]] = defaultdict(list)
    for sid, start, end in bulk.query(
        "SELECT subscription_id, period_start, period_end FROM invoices"
        " WHERE billing_reason = 'subscription_cycle' ORDER BY subscription_id, period_start"
    ):
        periods[sid].append((parse_instant_column(start), parse_instant_column(end)))
    assert periods
    for sid, spans in periods.items():
        assert spans == [subs[sid].period(n) for n in range(len(spans))], sid
    usage: dict[int, list[tuple[Any, int]]] = defaultdict(list)
    for customer, occurred, value in bulk.query("SELECT customer_id, occurred_at, value FROM usage_events"):
        usage[customer].append((parse_instant_column(occurred), value))
    checked = 0
    for _iid, customer, kind, price_id, quantity, start, end, amount in bulk.query(
        "SELECT i.id, i.customer_id, l.kind, l.price_id, l.quantity, l.period_start, l.period_end, l.amount_minor"
        " FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id WHERE i.billing_reason = 'subscription_cycle'"
    ):
        price = prices[price_id]
        if kind == "subscription":
            assert amount == round_minor(Fraction(price.unit_amount_minor) * quantity)
        elif kind == "usage":
            lo, hi = parse_instant_column(start), parse_instant_column(end)
            assert quantity == sum(v for at, v in usage[customer] if lo <= at < hi)
            assert amount == round_minor(Fraction(price.amount_minor(Decimal(quantity))))
        checked += 1
    assert checked > 100


def test_truth_rows_exist_for_every_labelled_entity(runs: dict[str, Run]) -> None:
    run = runs["a"]
    engine = run.engine
    customers = {r[0] for r in rows(engine, "customers", "id")}
    assert {r["customer_id"] for r in truth_table(run, "truth_customers")} == customers
    attempts = {r[0]: r for r in rows(engine, "payment_attempts", "id, invoice_id, attempt_number, status")}
    truth_attempts = truth_table(run, "truth_payment_attempts")
    assert {r["attempt_id"] for r in truth_attempts} == set(attempts)
    for r in truth_attempts:
        attempt = attempts[r["attempt_id"]]
        assert attempt[1] == r["invoice_id"]
        assert attempt[3] == ("succeeded" if r["succeeded"] else "failed")
        assert 0.0 <= r["p_success"] <= 1.0
    assert {r["dispute_id"] for r in truth_table(run, "truth_disputes")} == {
        r[0] for r in rows(engine, "disputes", "id")
    }
    on_terms = {
        r[0]
        for r in rows(engine, "invoices", "id, due_at, finalized_at, amount_due_minor")
        if r[1] != r[2] and r[3] > 0
    }
    assert on_terms
    assert {r["invoice_id"] for r in truth_table(run, "truth_invoice_payment")} == on_terms
    subscribers = {r[0] for r in rows(engine, "subscriptions", "customer_id")}  # card testers have none
    messages = [
        r
        for r in rows(engine, "dunning_actions", "id, invoice_id, action, customer_id")
        if r[2] in ("remind", "final_notice") and r[3] in subscribers
    ]
    reminders = truth_table(run, "truth_reminders")
    assert len(reminders) == len(messages)
    assert {r["invoice_id"] for r in reminders} == {m[1] for m in messages}
    churn = truth_table(run, "truth_churn")
    assert {r["month_index"] for r in churn} == {1, 2}  # nobody signed up before month 0
    assert {r["customer_id"] for r in churn} <= customers
    assert all(0.0 <= r["p_churn_30d"] <= r["p_churn_90d"] <= 1.0 for r in churn)


def test_recession_after_the_switch_month_declines_more(runs: dict[str, Run]) -> None:
    base, recession = runs["a"], runs["recession"]
    switch_day = (datetime(2025, 2, 1, tzinfo=UTC) - datetime(2025, 1, 1, tzinfo=UTC)).days
    assert base.config.world().start.isoformat() == "2025-01-01"

    def first_attempts(run: Run, after: bool) -> list[dict[str, Any]]:
        return [
            r
            for r in truth_table(run, "truth_payment_attempts")
            if r["attempt_number"] == 0
            and (r["day"] >= switch_day) == after
            and r["fraud_kind"] != "card_testing"
        ]

    assert first_attempts(base, after=False) == first_attempts(recession, after=False)
    before, after = first_attempts(base, True), first_attempts(recession, True)
    declines = [sum(not r["succeeded"] for r in attempts) for attempts in (before, after)]
    assert declines[1] > declines[0]
    mean = [sum(r["p_success"] for r in attempts) / len(attempts) for attempts in (before, after)]
    assert mean[1] < mean[0] - 0.01


def test_a_small_run_reports_what_it_wrote(runs: dict[str, Run]) -> None:
    summary = runs["a"].summary
    assert summary.customers > 400
    assert summary.counts["invoices"] > 800
    with runs["a"].engine.connect() as conn:
        (invoices,) = conn.exec_driver_sql("SELECT COUNT(*) FROM invoices").one()
    assert summary.counts["invoices"] == invoices
    assert set(summary.timings) >= {"billing", "dunning", "usage"}  # speed: benchmarks/simulate.py


def test_gateway_keys_and_truth_paths() -> None:
    assert parse_key("in_42_attempt_3") == (42, 3)
    with pytest.raises(ValueError, match="not an attempt key"):
        parse_key("re_42_attempt_3")
    assert truth_dir_for("/x/sim.db") == Path("/x/sim.truth")
    assert truth_dir_for("/x/world") == Path("/x/world.truth")
    with pytest.raises(InvalidInput):
        RunConfig(customers=0)


def test_a_run_on_each_backend(engine: Engine, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The same small world on SQLite and PostgreSQL: coherent, with truth, deterministic."""
    config = RunConfig(customers=120, months=2, seed=5, switch_month=1)
    first = simulate(engine, config, tmp_path / "one.truth")
    with engine.connect() as conn:
        assert verify(conn).events == first.summary.counts["outbox"]
        _periods_exactly_right(Bulk(conn))
    attempts = {r[0] for r in rows(engine, "payment_attempts", "id")}
    assert {r["attempt_id"] for r in truth_table(first, "truth_payment_attempts")} == attempts
    before = digests(engine)
    reset(engine, request)
    again = simulate(engine, config, tmp_path / "two.truth")
    assert digests(engine) == before
    assert again.truth.read("truth_payment_attempts").equals(first.truth.read("truth_payment_attempts"))
