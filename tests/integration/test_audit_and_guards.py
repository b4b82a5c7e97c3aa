"""The audit chain detects tampering; the database refuses edits to finalized invoices and the outbox."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from billing_core.audit import verify
from billing_core.context import BillingContext
from billing_core.errors import AuditChainBroken, InvalidTransition
from billing_core.services.create_customer import create_customer
from billing_core.services.create_price import create_price
from billing_core.services.create_product import create_product
from billing_core.services.create_subscription import create_subscription
from billing_core.services.void_invoice import void_invoice


@pytest.fixture
def history(ctx: BillingContext) -> int:
    """A few use cases: customers, a price, subscriptions with their first invoices. Returns an invoice id."""
    product = create_product(ctx, name="Plan").id
    price = create_price(
        ctx, product_id=product, currency="USD", model="flat", interval="month", unit_amount_minor=12_00
    ).id
    for n in range(3):
        customer = create_customer(ctx, email=f"c{n}@example.com", name=f"C{n}", currency="USD").id
        create_subscription(ctx, customer_id=customer, items=[{"price_id": price, "quantity": 1}])
    with ctx.read() as conn:
        return int(conn.execute(text("SELECT MIN(id) FROM invoices")).scalar_one())


def tamper_with(engine: Engine, statement: str) -> None:
    """Run ``statement`` as a tamperer with direct access would: past the append-only triggers."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":  # a per-test copy of the database: drop the guards
            conn.execute(text("DROP TRIGGER IF EXISTS outbox_append_only_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS outbox_append_only_delete"))
        else:  # a shared server: switch triggers off for this transaction only
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(statement))


def test_chain_verifies_after_use_cases(ctx: BillingContext, history: int) -> None:
    with ctx.read() as conn:
        report = verify(conn)
    assert report.events >= 8
    assert report.head_seq == report.events
    assert len(report.head_hash) == 64


@pytest.mark.parametrize(
    "statement", ["UPDATE outbox SET payload = '{}' WHERE seq = 2", "DELETE FROM outbox WHERE seq = 2"]
)
def test_the_outbox_is_append_only(engine: Engine, history: int, statement: str) -> None:
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))


@pytest.mark.parametrize(
    ("tamper", "seq"),
    [
        ("UPDATE outbox SET payload = '{\"amount_minor\": 1}' WHERE seq = 4", 4),
        ("DELETE FROM outbox WHERE seq = 3", 3),
        ("UPDATE outbox SET event_type = 'invoice.voided' WHERE seq = 5", 5),
        ("UPDATE outbox_head SET last_hash = 'ffff'", None),
    ],
)
def test_tampering_is_detected(
    ctx: BillingContext, engine: Engine, history: int, tamper: str, seq: int | None
) -> None:
    tamper_with(engine, tamper)
    with pytest.raises(AuditChainBroken) as info, ctx.read() as conn:
        verify(conn)
    if seq is not None:
        assert info.value.seq == seq


def test_rewriting_the_whole_chain_is_caught_by_the_expected_head(ctx: BillingContext, history: int) -> None:
    with ctx.read() as conn:
        head = verify(conn).head_hash
        verify(conn, expect_head=head)
        with pytest.raises(AuditChainBroken):
            verify(conn, expect_head="0" * 64)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE invoices SET total_minor = 1 WHERE id = :id",
        "UPDATE invoice_lines SET amount_minor = 1 WHERE invoice_id = :id",
        "DELETE FROM invoice_lines WHERE invoice_id = :id",
    ],
)
def test_a_finalized_invoice_never_changes(engine: Engine, history: int, statement: str) -> None:
    with pytest.raises(DBAPIError, match="invoice_immutable"), engine.begin() as conn:
        conn.execute(text(statement), {"id": history})


def test_voiding_goes_through_the_use_case(ctx: BillingContext, engine: Engine, history: int) -> None:
    with engine.begin() as conn:
        status = conn.execute(
            text("SELECT status FROM invoices WHERE id = :id"), {"id": history}
        ).scalar_one()
    assert status == "open"  # no card on file: the first invoice waits for payment
    assert void_invoice(ctx, invoice_id=history) == "void"
    with pytest.raises(InvalidTransition):
        void_invoice(ctx, invoice_id=history)
    with ctx.read() as conn:
        assert verify(conn).events > 0
        voided = conn.execute(
            text("SELECT COUNT(*) FROM outbox WHERE event_type = 'invoice.voided'")
        ).scalar_one()
    assert voided == 1
