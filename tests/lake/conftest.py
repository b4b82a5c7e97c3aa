"""A small book billed once, more activity through the use cases, and dunning rows written directly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert

from billing_core.book import build_book
from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.db.schema_dunning import dunning_actions, dunning_processes
from billing_core.payments import SimulatedGateway
from billing_core.services.advance_dispute import (
    categorize_dispute,
    resolve_dispute,
    review_dispute,
    withdraw_dispute,
)
from billing_core.services.billing_run import run_billing
from billing_core.services.close_chargeback import close_chargeback
from billing_core.services.issue_credit_note import issue_credit_note
from billing_core.services.mark_uncollectible import mark_uncollectible
from billing_core.services.open_dispute import open_dispute
from billing_core.services.record_chargeback import record_chargeback
from billing_core.services.record_usage import record_usage_batch
from billing_core.services.refund_payment import refund_payment
from billing_core.services.void_invoice import void_invoice

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
SUBSCRIPTIONS = 300


@dataclass
class Book:
    ctx: BillingContext
    clock: FrozenClock
    engine: Engine
    lake: Path
    rounds: int = 0

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self.ctx.read() as conn:
            return Bulk(conn).query(sql, params)


@pytest.fixture
def book(engine: Engine, tmp_path: Path) -> Book:
    """300 subscriptions billed on 1 March 2026 (a simulated gateway declines some payments)."""
    clock = FrozenClock(AS_OF)
    ctx = BillingContext(engine, clock=clock, gateway=SimulatedGateway(7))
    build_book(ctx, subscriptions=SUBSCRIPTIONS, as_of=AS_OF, seed=11)
    run_billing(ctx, as_of=AS_OF, pipelined=False)
    return Book(ctx, clock, engine, tmp_path / "lake")


def activity(book: Book) -> None:
    """A round of everything the lake exports, a day apart from the last, through the use cases.

    Each round picks entities no earlier round touched, so rounds can be repeated.
    """
    book.rounds += 1
    r = book.rounds
    ctx, clock = book.ctx, book.clock
    clock.advance(timedelta(days=1, hours=3))
    payments = book.query(
        "SELECT p.id, p.invoice_id, p.customer_id, p.amount_minor FROM payments p"
        " WHERE p.amount_refunded_minor = 0 AND p.amount_minor >= 300"
        " AND NOT EXISTS (SELECT 1 FROM chargebacks c WHERE c.payment_id = p.id)"
        " AND NOT EXISTS (SELECT 1 FROM disputes d WHERE d.invoice_id = p.invoice_id)"
        " AND NOT EXISTS (SELECT 1 FROM credit_notes n WHERE n.invoice_id = p.invoice_id)"
        " ORDER BY p.id LIMIT 5"
    )
    (p1, i1, _, a1), (_, i2, _, a2), (p3, _, _, a3), (_, i4, c4, a4), (_, i5, c5, a5) = payments
    refund_payment(ctx, payment_id=int(p1), amount_minor=int(a1) // 3, idempotency_key=f"refund-{r}")
    issue_credit_note(
        ctx, invoice_id=int(i2), amount_minor=int(a2) // 2, reason="service_credit", outcome="refund",
        memo="outage", idempotency_key=f"cn-{r}",
    )  # fmt: skip
    issue_credit_note(ctx, invoice_id=int(i1), amount_minor=1, reason="other", outcome="customer_balance")
    chargeback = record_chargeback(
        ctx, payment_id=int(p3), network_reference=f"NET-{r}", amount_minor=int(a3), reason_code="10.4", fee_minor=15_00
    )  # fmt: skip
    first = open_dispute(
        ctx, customer_id=int(c4), invoice_id=int(i4), amount_minor=int(a4), message="I was charged twice this month"
    )  # fmt: skip
    second = open_dispute(
        ctx, customer_id=int(c5), invoice_id=int(i5), amount_minor=int(a5) // 2, message="Cancelled but charged"
    )  # fmt: skip
    clock.advance(timedelta(hours=5))
    categorize_dispute(ctx, dispute_id=first.id, category="duplicate_charge")
    review_dispute(ctx, dispute_id=first.id)
    withdraw_dispute(ctx, dispute_id=second.id, note="found the cancellation email")
    clock.advance(timedelta(hours=5))
    close_chargeback(ctx, chargeback_id=chargeback.id, won=r % 2 == 0)
    resolve_dispute(ctx, dispute_id=first.id, outcome="credited", note="credit note issued")
    opened = book.query(
        "SELECT id FROM invoices WHERE status = 'open' AND amount_paid_minor = 0"
        " AND NOT EXISTS (SELECT 1 FROM dunning_processes d WHERE d.invoice_id = invoices.id) ORDER BY id LIMIT 4"
    )
    void_invoice(ctx, invoice_id=int(opened[0][0]))
    mark_uncollectible(ctx, invoice_id=int(opened[1][0]))
    dunning(book, [int(row[0]) for row in opened[2:]])
    customers = book.query("SELECT id FROM customers ORDER BY id LIMIT 3")
    day = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    record_usage_batch(
        ctx,
        [
            {
                "event_id": f"round{r}-{n}",
                "customer_id": int(customers[n % 3][0]),
                "metric_code": ("api_calls", "messages")[n % 2],
                # across the day before and the day of recording
                "occurred_at": day - timedelta(hours=n % 30),
                "value": 10 + n,
            }
            for n in range(40)
        ],
    )


def dunning(book: Book, invoice_ids: list[int]) -> None:
    """Dunning processes and actions as the dunning engine would append them."""
    now = book.clock.now()
    with book.engine.begin() as conn:
        for invoice_id in invoice_ids:
            bulk = Bulk(conn)
            customer_id, subscription_id, remaining, code = bulk.query(
                "SELECT customer_id, subscription_id, amount_remaining_minor, currency FROM invoices WHERE id = ?",
                (invoice_id,),
            )[0]
            process_id = conn.execute(
                insert(dunning_processes).values(
                    invoice_id=invoice_id, customer_id=customer_id, subscription_id=subscription_id,
                    reason="overdue", status="active", started_at=now - timedelta(days=2), step=2,
                    updated_at=now,
                )
            ).inserted_primary_key[0]  # fmt: skip
            for step, (action, channel, hours) in enumerate(
                (("remind", "email", 30), ("retry", None, 6)), start=1
            ):
                conn.execute(
                    insert(dunning_actions).values(
                        process_id=process_id, step=step, invoice_id=invoice_id, customer_id=customer_id,
                        subscription_id=subscription_id, action=action, channel=channel,
                        scheduled_at=now - timedelta(hours=hours + 1), executed_at=now - timedelta(hours=hours),
                        outcome="sent" if action == "remind" else "insufficient_funds", attempt_id=None,
                        amount_minor=remaining, currency=code, policy="static_v1",
                    )
                )  # fmt: skip
