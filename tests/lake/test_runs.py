"""How a run is cut does not change the lake: chunk sizes, file splits, when it runs; and the readers."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from billing_core.book import build_book
from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.errors import InvalidInput
from billing_core.lake import TABLES, connect, export_lake, read_table
from billing_core.lake.files import table_files
from billing_core.payments import SimulatedGateway
from billing_core.services.billing_run import run_billing
from tests.lake._checks import check_lake, lake_sql
from tests.lake.conftest import AS_OF, Book, activity


def rows(lake: Path, name: str) -> list[str]:
    return sorted(map(repr, read_table(lake, name).to_pylist()))


def forget_position(book: Book) -> None:
    """Let the next export start from the beginning again (into another, empty lake directory)."""
    with book.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM lake_exports")


def test_small_chunks_and_split_files_give_the_same_lake(book: Book, tmp_path: Path) -> None:
    activity(book)
    small = tmp_path / "small"
    export_lake(book.engine, small, clock=book.clock, chunk_size=7, max_buffered_rows=40)
    assert any(".1.parquet" in f.path.name for f in table_files(small, TABLES["invoice_lines"]))
    forget_position(book)
    export_lake(book.engine, book.lake, clock=book.clock)
    for name in TABLES:
        assert rows(small, name) == rows(book.lake, name), name
    check_lake(book)


def test_bulk_loaded_subscriptions_start_in_the_state_they_were_loaded_in(
    engine: object, tmp_path: Path
) -> None:
    clock = FrozenClock(AS_OF)
    ctx = BillingContext(engine, clock=clock, gateway=SimulatedGateway(7))  # type: ignore[arg-type]
    build_book(ctx, subscriptions=200, as_of=AS_OF, seed=5)
    early = tmp_path / "before billing"
    export_lake(ctx.engine, early, clock=clock)  # the book as loaded, before any event about it
    run_billing(ctx, as_of=AS_OF, pipelined=False)
    with ctx.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM lake_exports")
    late = tmp_path / "after billing"
    export_lake(ctx.engine, late, clock=clock)

    def first_rows(lake: Path) -> dict[int, dict[str, object]]:
        table = read_table(lake, "subscriptions").to_pylist()
        return {r["subscription_id"]: r for r in table if r["change"] == "created"}

    before, after = first_rows(early), first_rows(late)
    assert before.keys() == after.keys()
    changed_plans = {
        r[0]
        for r in lake_sql(late, "SELECT subscription_id FROM subscriptions WHERE change = 'plan_changed'")
    }
    assert changed_plans, "the book schedules some downgrades"
    for sub_id, row in before.items():
        rewound = after[sub_id]
        if sub_id in changed_plans:
            # the billing run's plan change does not say what the items were: unknown, never wrong
            assert rewound["items"] is None
            rewound = {**rewound, "items": row["items"]}
        assert rewound == row, sub_id


def test_read_table_and_duckdb_views(book: Book) -> None:
    activity(book)
    export_lake(book.engine, book.lake, clock=book.clock)
    invoices = read_table(book.lake, "invoices", columns=["invoice_id", "total_minor"])
    assert invoices.schema == pa.schema(
        [TABLES["invoices"].schema.field(c) for c in ("invoice_id", "total_minor")]
    )
    con = connect(book.lake)
    count = con.execute("SELECT COUNT(*) FROM invoices").fetchall()
    assert count == [(read_table(book.lake, "invoices").num_rows,)]
    kinds = con.sql("SELECT DISTINCT typeof(event_timestamp), typeof(total_minor) FROM invoices").fetchall()
    assert kinds == [("TIMESTAMP WITH TIME ZONE", "BIGINT")]
    con.close()
    with pytest.raises(InvalidInput, match="name: expected one of customers"):
        read_table(book.lake, "invoice")


def test_an_empty_lake_reads_as_empty_tables(tmp_path: Path) -> None:
    con = connect(tmp_path / "nothing yet")
    for name, table in TABLES.items():
        assert con.execute(f"SELECT COUNT(*) FROM {name}").fetchall() == [(0,)]
        assert read_table(tmp_path / "nothing yet", name).schema == table.schema
    con.close()
