"""The billing run at scale: exactly once under concurrency, and every invoice right."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from billing_core.audit import verify
from billing_core.book import build_book, expected_totals
from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.db.engine import create_engine
from billing_core.db.migrate import upgrade
from billing_core.db.types import parse_instant_column
from billing_core.payments import DeclineCode, ScriptedGateway, SimulatedGateway
from billing_core.services import billing_run
from billing_core.services.billing_run import run_billing
from tests.integration import _workers

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
SUBSCRIPTIONS = 3_000


def make_book(engine: Engine) -> tuple[BillingContext, dict]:  # type: ignore[type-arg]
    ctx = BillingContext(engine, clock=FrozenClock(AS_OF), gateway=SimulatedGateway(7))
    book = build_book(ctx, subscriptions=SUBSCRIPTIONS, as_of=AS_OF, seed=11)
    with ctx.read() as conn:
        expected = expected_totals(Bulk(conn), book.catalog)
    return ctx, expected


def check_book(ctx: BillingContext, expected: dict) -> None:  # type: ignore[type-arg]
    with ctx.read() as conn:
        bulk = Bulk(conn)
        invoices = bulk.query(
            "SELECT id, number, subscription_id, period_start, status, subtotal_minor, discount_minor, tax_minor,"
            " tax_inclusive, total_minor, credit_applied_minor, amount_due_minor, amount_paid_minor FROM invoices"
        )
        periods = Counter((sub, parse_instant_column(start)) for _, _, sub, start, *_ in invoices)
        assert max(periods.values()) == 1, "a period was invoiced twice"
        assert len(invoices) == SUBSCRIPTIONS
        numbers = sorted(int(n.split("-")[1]) for _, n, *_ in invoices)
        assert numbers == list(range(1, len(invoices) + 1)), "invoice numbers must be gapless and unique"
        for (
            _,
            _,
            sub,
            start,
            status,
            subtotal,
            discount,
            tax,
            inclusive,
            total,
            credit,
            due,
            paid,
        ) in invoices:
            want = expected[(sub, parse_instant_column(start).isoformat())]
            assert (subtotal, discount, tax, total) == (
                want.subtotal_minor,
                want.discount_minor,
                want.tax_minor,
                want.total_minor,
            )
            assert total == subtotal - discount + (0 if inclusive else tax)
            assert due == max(total, 0) - credit
            assert (status == "paid") == (paid == due) or due == 0
        # one attempt per invoice and attempt number, at most one payment per attempt and per paid invoice
        attempts = bulk.query("SELECT invoice_id, attempt_number, idempotency_key FROM payment_attempts")
        assert len({(i, n) for i, n, _ in attempts}) == len(attempts)
        assert len({k for *_, k in attempts}) == len(attempts)
        payments = bulk.query(
            "SELECT invoice_id, COUNT(*) FROM payments GROUP BY invoice_id HAVING COUNT(*) > 1"
        )
        assert payments == []
        (paid_without_payment,) = bulk.query(
            "SELECT COUNT(*) FROM invoices i WHERE i.status = 'paid' AND i.amount_due_minor > 0"
            " AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.invoice_id = i.id)"
        )[0]
        assert paid_without_payment == 0
        (pending,) = bulk.query("SELECT COUNT(*) FROM payment_attempts WHERE status = 'pending'")[0]
        assert pending == 0, "every attempt of a finished run has its answer recorded"
        verify(conn)


@pytest.mark.parametrize("pipelined", [True, False], ids=["planner-process", "one-process"])
def test_one_run_invoices_every_period_right(engine: Engine, pipelined: bool) -> None:
    ctx, expected = make_book(engine)
    result = run_billing(ctx, as_of=AS_OF, chunk_size=700, pipelined=pipelined)
    assert result.invoices == SUBSCRIPTIONS
    assert result.payments.attempted > 0
    with ctx.read() as conn:
        (attempts,) = Bulk(conn).query("SELECT COUNT(*) FROM payment_attempts")[0]
    assert result.payments.attempted == attempts
    assert result.payments.succeeded + result.payments.failed == attempts
    check_book(ctx, expected)
    assert run_billing(ctx, as_of=AS_OF).invoices == 0  # idempotent


def test_the_writer_plans_chunks_itself_while_the_helper_is_busy(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work balances between the processes: chunks the writer plans itself are written and collected right."""
    plan_in_helper = billing_run._plan_in_helper

    def slow_helper(*args: Any) -> Any:
        time.sleep(0.4)
        return plan_in_helper(*args)

    # sent to the (forked) helper by name, where the name finds this function too
    slow_helper.__module__, slow_helper.__qualname__ = plan_in_helper.__module__, plan_in_helper.__qualname__
    monkeypatch.setattr(billing_run, "_plan_in_helper", slow_helper)
    ctx, expected = make_book(engine)
    result = run_billing(ctx, as_of=AS_OF, chunk_size=300, pipelined=True)
    assert result.chunks == 10
    assert 0 < result.chunks_by_helper < result.chunks
    assert result.invoices == SUBSCRIPTIONS
    with ctx.read() as conn:
        (attempts,) = Bulk(conn).query("SELECT COUNT(*) FROM payment_attempts")[0]
    assert result.payments.attempted == attempts
    check_book(ctx, expected)


def test_who_plans_a_chunk_changes_nothing_that_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same book billed in one process and by two (the helper slowed down) ends with the same rows."""

    def bill(name: str, pipelined: bool) -> dict[str, list[tuple[Any, ...]]]:
        engine = create_engine(f"sqlite:///{tmp_path / name}")
        upgrade(engine)
        ctx, _ = make_book(engine)
        run_billing(ctx, as_of=AS_OF, chunk_size=300, pipelined=pipelined)
        with ctx.read() as conn:
            bulk = Bulk(conn)
            rows = {
                "invoices": bulk.query(
                    "SELECT id, number, subscription_id, status, total_minor, amount_paid_minor FROM invoices ORDER BY id"
                ),
                "attempts": bulk.query(
                    "SELECT id, invoice_id, status, decline_code FROM payment_attempts ORDER BY id"
                ),
                "payments": bulk.query(
                    "SELECT id, invoice_id, attempt_id, amount_minor FROM payments ORDER BY id"
                ),
                # the chain's order follows the transactions, which record answers at different times
                "events": sorted(bulk.query("SELECT event_type, aggregate_id, payload FROM outbox")),
            }
        engine.dispose()
        return rows

    one_process = bill("one.db", pipelined=False)
    plan_in_helper = billing_run._plan_in_helper

    def slow_helper(index: int, *args: Any) -> Any:
        time.sleep(0.3 if index % 3 else 0.0)
        return plan_in_helper(index, *args)

    slow_helper.__module__, slow_helper.__qualname__ = plan_in_helper.__module__, plan_in_helper.__qualname__
    monkeypatch.setattr(billing_run, "_plan_in_helper", slow_helper)
    two_processes = bill("two.db", pipelined=True)
    assert len(one_process["invoices"]) == SUBSCRIPTIONS
    for table, rows in one_process.items():
        assert two_processes[table] == rows, table


def test_two_concurrent_runs_invoice_each_period_once(engine: Engine, database_url: str) -> None:
    ctx, expected = make_book(engine)
    engine.dispose()
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(2)
    results = mp.Queue()
    workers = [
        mp.Process(target=_workers.billing_run, args=(database_url, AS_OF.isoformat(), barrier, 400, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
        assert worker.exitcode == 0
    outcomes = [results.get(timeout=5) for _ in workers]
    assert sum(invoices for invoices, _ in outcomes) == SUBSCRIPTIONS  # the work was shared, not doubled
    check_book(ctx, expected)


def test_a_gateway_held_in_memory_is_asked_from_the_writer(engine: Engine) -> None:
    """A scripted gateway's queue lives in this process: the pipelined run must not ask it from the helper."""
    gateway = ScriptedGateway([DeclineCode.INSUFFICIENT_FUNDS] * 50)
    ctx = BillingContext(engine, clock=FrozenClock(AS_OF), gateway=gateway)
    book = build_book(ctx, subscriptions=SUBSCRIPTIONS, as_of=AS_OF, seed=11)
    with ctx.read() as conn:
        expected = expected_totals(Bulk(conn), book.catalog)
    result = run_billing(ctx, as_of=AS_OF, chunk_size=700, pipelined=True)
    assert result.payments.attempted == len(gateway.requests)  # every charge went through this object
    assert result.payments.decline_codes.get("insufficient_funds") == 50
    check_book(ctx, expected)
