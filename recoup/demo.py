"""``recoup demo``: the whole story on embedded defaults, in a fresh database.

1. a synthetic book of business (five currencies, flat, per-seat, tiered and package prices,
   discounts, taxes, credit balances, trials and usage);
2. one customer's story told through the use cases: subscribe, use, upgrade mid-cycle, get a
   credit note, pay;
3. monthly billing runs over the whole book, each invoicing and collecting in bulk, then the last
   run again to show it is idempotent;
4. a report in one reporting currency through effective-dated FX rates;
5. the audit chain verified from the first event.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.engine import create_engine
from billing_core.db.migrate import upgrade
from billing_core.money import Money
from billing_core.payments import SimulatedGateway

START = datetime(2026, 2, 1, tzinfo=UTC)


def _month(n: int) -> datetime:
    """Midnight UTC on the first of the n-th month after START."""
    year, month = divmod(START.month - 1 + n, 12)
    return START.replace(year=START.year + year, month=month + 1)


FX_TO_USD = {"EUR": "1.087", "GBP": "1.262", "JPY": "0.00665", "KWD": "3.25"}


def run_demo(
    demo_dir: Path, *, subscriptions: int, months: int, seed: int, console: Console, err: Console
) -> dict[str, object]:
    from recoup import cli

    if demo_dir.exists():
        shutil.rmtree(demo_dir)
    demo_dir.mkdir(parents=True)
    url = f"sqlite:///{(demo_dir / 'recoup.db').resolve()}"
    engine = create_engine(url)
    upgrade(engine)
    clock = FrozenClock(START - timedelta(days=40))
    ctx = BillingContext(engine, clock=clock, gateway=SimulatedGateway(seed))
    console.print(
        Panel.fit(f"Recoup demo: a fresh billing database at {demo_dir / 'recoup.db'}", style="bold")
    )

    console.rule("1. A book of business")
    started = time.perf_counter()
    book = cli._build_book(ctx, subscriptions, START, seed)
    console.print(
        f"{book.customers:,} customers and {book.subscriptions:,} subscriptions in USD, EUR, GBP, JPY and KWD, "
        f"{book.usage_events:,} usage events, built in {time.perf_counter() - started:.1f} s"
    )

    console.rule("2. One customer's story")
    story = _story(ctx, clock, book.catalog.plans["EUR"], console)

    console.rule("3. Monthly billing runs")
    runs = []
    for month in range(months + 1):
        as_of = _month(month)
        clock.set(as_of)
        result = cli._run_billing(ctx, as_of)
        runs.append(result)
        console.print(
            f"{as_of.date()}: {result.invoices:,} invoices in {result.seconds:.1f} s "
            f"({result.invoices / max(result.seconds, 1e-9):,.0f}/s); payments {result.payments.succeeded:,} "
            f"succeeded, {result.payments.failed:,} declined"
        )
    again = cli._run_billing(ctx, _month(months))
    console.print(
        f"the {_month(months).date()} run again: [bold]{again.invoices}[/bold] new invoices "
        "(every period is invoiced exactly once)"
    )
    cli._print_billing(runs[-1])

    console.rule("4. Revenue in one reporting currency")
    from billing_core.reporting import invoice_summary
    from billing_core.services.record_fx_rate import record_fx_rate

    for code, rate in FX_TO_USD.items():
        record_fx_rate(ctx, base=code, quote="USD", rate=rate, effective_at=START - timedelta(days=60))
    with ctx.read() as conn:
        summary = invoice_summary(conn, reporting_currency="USD", at=clock.now())
    cli._print_summary(summary, "USD", clock.now())

    console.rule("5. The audit log")
    from billing_core.audit import verify

    with ctx.read() as conn:
        report = verify(conn)
    console.print(
        f"[green]audit chain intact[/green]: {report.events:,} events, head {report.head_hash[:16]}..."
    )
    engine.dispose()
    console.print(
        f"\nThe demo database stays at {demo_dir / 'recoup.db'}; point RECOUP_DATABASE_URL={url} at it to run "
        "`recoup report` or `recoup audit verify` yourself."
    )
    return {
        "story": story,
        "invoices": sum(r.invoices for r in runs),
        "rerun_invoices": again.invoices,
        "audit_events": report.events,
    }


def _story(
    ctx: BillingContext, clock: FrozenClock, plans: dict[str, int], console: Console
) -> dict[str, int]:
    """Ada, in Berlin, pays in euros: subscribe, upgrade mid-cycle, receive a credit note."""
    from sqlalchemy import select

    from billing_core.db import schema as t
    from billing_core.services.add_payment_method import add_payment_method
    from billing_core.services.change_plan import change_plan
    from billing_core.services.create_customer import create_customer
    from billing_core.services.create_subscription import create_subscription
    from billing_core.services.issue_credit_note import issue_credit_note

    clock.set(datetime(2026, 1, 10, 9, tzinfo=UTC))
    ada = create_customer(
        ctx,
        email="ada@example.de",
        name="Ada Lovelace",
        currency="EUR",
        timezone="Europe/Berlin",
        country="DE",
        language="de",
    )
    add_payment_method(
        ctx, customer_id=ada.id, brand="visa", bin="424242", last4="4242", exp_month=12, exp_year=2030
    )
    sub = create_subscription(ctx, customer_id=ada.id, items=[{"price_id": plans["pro"], "quantity": 1}])
    clock.set(datetime(2026, 1, 25, 15, tzinfo=UTC))
    change = change_plan(ctx, subscription_id=sub.id, items=[{"price_id": plans["business"], "quantity": 1}])
    table = Table(title="Ada's invoices")
    for name in ("number", "reason", "line", "amount", "total", "status"):
        table.add_column(name, justify="right" if name in ("amount", "total") else "left")
    with ctx.read() as conn:
        invoices = (
            conn.execute(
                select(t.invoices).where(t.invoices.c.customer_id == ada.id).order_by(t.invoices.c.id)
            )
            .mappings()
            .all()
        )
        for inv in invoices:
            lines = (
                conn.execute(
                    select(t.invoice_lines)
                    .where(t.invoice_lines.c.invoice_id == inv["id"])
                    .order_by(t.invoice_lines.c.position)
                )
                .mappings()
                .all()
            )
            for i, line in enumerate(lines):
                first = i == 0
                table.add_row(
                    inv["number"] if first else "",
                    inv["billing_reason"] if first else "",
                    line["description"],
                    str(Money.of(line["amount_minor"], inv["currency"])),
                    str(Money.of(inv["total_minor"], inv["currency"])) if first else "",
                    inv["status"] if first else "",
                )
    console.print(table)
    last = invoices[-1]
    note = issue_credit_note(
        ctx,
        invoice_id=invoices[0]["id"],
        amount_minor=5_00,
        reason="service_credit",
        outcome="customer_balance",
    )
    console.print(
        f"upgrade on 25 January (Berlin time): credit for the unused days of Pro and a charge for the rest of the "
        f"month on Business, invoice {last['number']} due {Money.of(change.amount_due_minor, 'EUR')}; a credit note "
        f"of {Money.of(5_00, 'EUR')} after an outage goes to Ada's balance and the February invoice consumes it."
    )
    return {
        "customer_id": ada.id,
        "subscription_id": sub.id,
        "invoices": len(invoices),
        "credit_note_id": note.id,
    }
