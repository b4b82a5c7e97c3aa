"""Migrations build exactly the schema the code declares, and can be undone and redone."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from billing_core.book import build_book
from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.db.due import DUE_DAY_INDEX, due_condition
from billing_core.db.migrate import current_revision, downgrade, upgrade
from billing_core.db.schema import compared_by_alembic, metadata
from billing_core.services.billing_run import run_billing


def diffs(engine: Engine) -> list[object]:
    with engine.connect() as conn, warnings.catch_warnings():
        # the due index is an expression index, which SQLAlchemy does not reflect on SQLite
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
        warnings.filterwarnings(
            "ignore", message="autogenerate skipping metadata-specified expression-based index"
        )
        context = MigrationContext.configure(conn, opts={"include_object": compared_by_alembic})
        return list(compare_metadata(context, metadata))


def test_the_due_query_reaches_the_due_index(engine: Engine) -> None:
    with engine.connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
        bulk = Bulk(conn)
        condition, params = due_condition(bulk, datetime(2026, 3, 1, tzinfo=UTC))
        if bulk.sqlite:
            (sql,) = bulk.query("SELECT sql FROM sqlite_master WHERE name = ?", (DUE_DAY_INDEX,))[0]
            assert "substr(next_invoice_at, 1, 10)" in sql
            plan = " ".join(
                str(row[-1])
                for row in bulk.query(
                    f"EXPLAIN QUERY PLAN SELECT id FROM subscriptions WHERE {condition}", params
                )
            )
            assert DUE_DAY_INDEX in plan
            names = {index["name"] for index in inspect(conn).get_indexes("subscriptions")}
            assert "ix_subscriptions_due" not in names
        else:
            names = {index["name"] for index in inspect(conn).get_indexes("subscriptions")}
            assert "ix_subscriptions_due" in names
            assert DUE_DAY_INDEX not in names


def test_migrated_schema_matches_the_declared_tables(engine: Engine) -> None:
    assert current_revision(engine) is not None
    assert diffs(engine) == []


def test_downgrade_to_base_and_upgrade_again(engine: Engine) -> None:
    downgrade(engine, "base")
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    upgrade(engine)
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    assert diffs(engine) == []


def test_the_due_index_changes_under_a_filled_book(engine: Engine) -> None:
    """0008 swaps the due index on a database that already holds subscriptions; queries agree."""
    as_of = datetime(2026, 3, 1, tzinfo=UTC)
    ctx = BillingContext(engine, clock=FrozenClock(as_of))
    build_book(ctx, subscriptions=300, as_of=as_of, seed=3)

    def due_ids() -> list[int]:
        with engine.connect() as conn:
            bulk = Bulk(conn)
            condition, params = due_condition(bulk, as_of)
            return [
                row[0]
                for row in bulk.query(f"SELECT id FROM subscriptions WHERE {condition} ORDER BY id", params)
            ]

    with engine.connect() as conn:
        everything = [
            row[0]
            for row in Bulk(conn).query(
                "SELECT id FROM subscriptions WHERE next_invoice_at IS NOT NULL ORDER BY id"
            )
        ]
    assert due_ids() == everything  # the book is all due by as_of
    downgrade(engine, "0007")
    assert due_ids() == everything
    upgrade(engine)
    assert due_ids() == everything
    assert run_billing(ctx, as_of=as_of, pipelined=False).invoices == len(everything)
    assert due_ids() == []
