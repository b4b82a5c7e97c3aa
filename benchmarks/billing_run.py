"""Benchmark: the billing run over a synthetic book, with every invoice total checked.

    uv run python benchmarks/billing_run.py --invoices 1000000

Builds a fresh SQLite database (in a temporary directory unless ``--db`` is given) with a book
of ``--invoices`` subscriptions all due once by the run date (mixed plans, seats, graduated,
volume and package usage, discounts, exclusive and inclusive taxes, credit balances, trials
ending, downgrades, cancellations at period end, one-time charges), times the billing run
(invoicing and payment collection through the simulated gateway), then checks every invoice
against an independent re-pricing. Progress goes to stderr; the last line of stdout is JSON.

Target: 1,000,000 invoices in under 60 seconds on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _machine import machine  # benchmarks/_machine.py
from tqdm import tqdm

from billing_core.book import build_book, expected_totals
from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.db.engine import create_engine
from billing_core.db.migrate import upgrade
from billing_core.db.types import parse_instant_column
from billing_core.payments import SimulatedGateway
from billing_core.services.billing_run import run_billing


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file to create (default: a temp dir)")
    parser.add_argument("--chunk-size", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    machine_before = machine()  # before anything of ours loads the cores

    with tempfile.TemporaryDirectory(prefix="recoup-bench-") as tmp:
        path = args.db or Path(tmp) / "billing.db"
        if path.exists():
            path.unlink()
        engine = create_engine(f"sqlite:///{path}")
        upgrade(engine)
        as_of = datetime(2026, 3, 1, tzinfo=UTC)
        ctx = BillingContext(engine, clock=FrozenClock(as_of), gateway=SimulatedGateway(args.seed))

        started = time.perf_counter()
        with tqdm(total=args.invoices, desc="building book", unit="sub", file=sys.stderr) as bar:
            book = build_book(
                ctx,
                subscriptions=args.invoices,
                as_of=as_of,
                seed=args.seed,
                on_progress=lambda n: bar.update(n - bar.n),
            )
        build_seconds = time.perf_counter() - started

        with ctx.read() as conn:
            expected = expected_totals(Bulk(conn), book.catalog)
            (balances_before,) = Bulk(conn).query("SELECT SUM(balance_minor) FROM customers")[0]

        with tqdm(total=args.invoices, desc="billing run", unit="inv", file=sys.stderr) as bar:
            result = run_billing(
                ctx,
                as_of=as_of,
                chunk_size=args.chunk_size,
                on_progress=lambda done, total: bar.update(done - bar.n),
            )
        checked, wrong = _check(ctx, expected, balances_before or 0)
        report = {
            "invoices": result.invoices,
            "seconds": round(result.seconds, 2),
            "invoices_per_s": round(result.invoices / result.seconds, 1) if result.seconds else None,
            "payments_attempted": result.payments.attempted,
            "payments_succeeded": result.payments.succeeded,
            "payments_failed": result.payments.failed,
            "chunks": result.chunks,
            "chunks_by_helper": result.chunks_by_helper,
            "customers": book.customers,
            "usage_events": book.usage_events,
            "book_build_seconds": round(build_seconds, 2),
            "invoices_checked": checked,
            "invoices_wrong": wrong,
            "database": "sqlite",
            "machine": machine_before,
        }
        engine.dispose()
    print(json.dumps(report))
    if wrong or checked != args.invoices:
        sys.exit(1)


def _check(ctx: BillingContext, expected: dict, balances_before: int) -> tuple[int, int]:
    """Every invoice matches the re-pricing; credit consumption matches the balances."""
    wrong = 0
    checked = 0
    with ctx.read() as conn:
        bulk = Bulk(conn)
        rows = bulk.query(
            "SELECT subscription_id, period_start, subtotal_minor, discount_minor, tax_minor, total_minor,"
            " credit_applied_minor, amount_due_minor FROM invoices WHERE billing_reason IN"
            " ('subscription_cycle', 'subscription_final')"
        )
        for sub_id, start, subtotal, discount, tax, total, credit, due in tqdm(
            rows, desc="checking", unit="inv", file=sys.stderr
        ):
            checked += 1
            want = expected.get((sub_id, parse_instant_column(start).isoformat()))
            if (
                want is None
                or (subtotal, discount, tax, total)
                != (want.subtotal_minor, want.discount_minor, want.tax_minor, want.total_minor)
                or due != total - credit
                or credit < 0
                or (total >= 0 and credit > total)
            ):
                wrong += 1
        (credit_used,) = bulk.query("SELECT COALESCE(SUM(credit_applied_minor), 0) FROM invoices")[0]
        (balances_after,) = bulk.query("SELECT COALESCE(SUM(balance_minor), 0) FROM customers")[0]
        if balances_before - credit_used != balances_after:
            wrong += 1
    return checked, wrong


if __name__ == "__main__":
    main()
