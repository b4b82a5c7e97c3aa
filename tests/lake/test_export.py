"""The lake export against a billed book: complete, incremental, exactly once, nothing from the future."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from billing_core.db.types import parse_instant_column
from billing_core.lake import TABLES, LakeAhead, LakeBusy, export_lake, load_position, read_table, row_count
from billing_core.lake import export as lake_export
from billing_core.lake.files import exclusive, table_files
from billing_core.services.billing_run import run_billing
from tests.lake._checks import check_lake
from tests.lake.conftest import AS_OF, Book, activity


def snapshot(lake: Path) -> dict[Path, str]:
    """Every parquet file of the lake with the digest of its bytes."""
    return {
        f.path: hashlib.sha256(f.path.read_bytes()).hexdigest()
        for t in TABLES.values()
        for f in table_files(lake, t)
    }


def outbox_events(book: Book, lo: int, hi: int, *types: str) -> int:
    marks = ", ".join("?" * len(types))
    return int(
        book.query(
            f"SELECT COUNT(*) FROM outbox WHERE seq > ? AND seq <= ? AND event_type IN ({marks})",
            (lo, hi, *types),
        )[0][0]  # type: ignore[arg-type]
    )


def test_first_export_holds_the_whole_book(book: Book) -> None:
    activity(book)
    result = export_lake(book.engine, book.lake, clock=book.clock)
    assert result.export_id == 1
    assert result.ranges["outbox"] == (0, book.query("SELECT last_seq FROM outbox_head")[0][0])
    assert result.rows["customers"] == book.query("SELECT COUNT(*) FROM customers")[0][0]
    assert result.rows["dunning_actions"] == 4
    assert all(result.rows[name] > 0 for name in TABLES), result.rows
    check_lake(book)
    # the position moved with the outbox offset, in the same transaction
    position = load_position(book.engine)
    assert position.marks["outbox"] == result.ranges["outbox"][1]
    assert book.query("SELECT last_seq FROM consumer_offsets WHERE consumer = 'lake'") == [
        (position.marks["outbox"],)
    ]
    assert {name: row_count(book.lake, name) for name in TABLES} == result.rows


def test_files_are_partitioned_compressed_and_named_by_range(book: Book) -> None:
    activity(book)
    result = export_lake(book.engine, book.lake, clock=book.clock)
    lo, hi = result.ranges["outbox"]
    invoices = table_files(book.lake, TABLES["invoices"])
    assert {f.path.parent.name for f in invoices} == {"date=2026-03-01", "date=2026-03-02"}
    assert {f.path.name for f in invoices} == {f"part-{lo:012d}-{hi:012d}.parquet"}
    customers = table_files(book.lake, TABLES["customers"])
    assert {f.path.parent.name for f in customers} == {"month=2026-03"}
    metadata = pq.ParquetFile(invoices[0].path).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    # one file per table, partition and run
    assert result.files == sum(len(table_files(book.lake, t)) for t in TABLES.values())


def test_a_second_export_adds_only_what_is_new_and_leaves_earlier_files_alone(book: Book) -> None:
    first = export_lake(book.engine, book.lake, clock=book.clock)
    before = snapshot(book.lake)
    counts = {name: row_count(book.lake, name) for name in TABLES}
    activity(book)
    book.clock.set(AS_OF + timedelta(days=31))
    run_billing(book.ctx, as_of=book.clock.now(), pipelined=False)
    second = export_lake(book.engine, book.lake, clock=book.clock)

    assert second.export_id == 2
    after = snapshot(book.lake)
    assert {p: d for p, d in after.items() if p in before} == before, "an earlier file changed"
    new = set(after) - set(before)
    assert len(new) == second.files > 0
    for t in TABLES.values():
        for f in table_files(book.lake, t):
            if f.path in new:
                assert (f.lo, f.hi) == second.ranges[f.source], f.path
    # only the new versions: one invoice row per invoice event of the range, no repeat of the first export's
    lo, hi = second.ranges["outbox"]
    invoice_events = ("invoice.finalized", "invoice.paid", "invoice.voided", "invoice.marked_uncollectible")
    assert second.rows["invoices"] == outbox_events(book, lo, hi, *invoice_events)
    assert second.rows["payments"] == outbox_events(book, lo, hi, "payment.succeeded")
    assert second.rows["customers"] == 0
    assert second.ranges["customers"] == (first.ranges["customers"][1],) * 2
    assert second.rows["dunning_actions"] == 4
    assert {name: row_count(book.lake, name) for name in TABLES} == {
        name: counts[name] + second.rows[name] for name in TABLES
    }
    check_lake(book)


def test_nothing_new_writes_nothing(book: Book) -> None:
    export_lake(book.engine, book.lake, clock=book.clock)
    before = snapshot(book.lake)
    listing = {p: p.stat().st_mtime_ns for p in book.lake.rglob("*")}
    again = export_lake(book.engine, book.lake, clock=book.clock)
    assert again.nothing_new
    assert (again.files, again.rows) == (0, {})
    assert snapshot(book.lake) == before
    assert {p: p.stat().st_mtime_ns for p in book.lake.rglob("*")} == listing, "not even _position.json"
    assert book.query("SELECT COUNT(*) FROM lake_exports") == [(1,)]


def test_a_crash_before_the_position_moves_loses_and_repeats_nothing(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    export_lake(book.engine, book.lake, clock=book.clock)
    committed = {name: row_count(book.lake, name) for name in TABLES}
    before = snapshot(book.lake)
    activity(book)

    def crash(*args: object, **kwargs: object) -> int:
        raise RuntimeError("power cut after the files were written")

    monkeypatch.setattr(lake_export, "_commit", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        export_lake(book.engine, book.lake, clock=book.clock)
    monkeypatch.undo()
    # the files are on disk, but no reader sees them and the position did not move
    assert set(snapshot(book.lake)) - set(before)
    assert {name: row_count(book.lake, name) for name in TABLES} == committed
    assert load_position(book.engine).export_id == 1

    activity(book)  # more happens before the rerun
    rerun = export_lake(book.engine, book.lake, clock=book.clock)
    assert rerun.export_id == 2
    assert rerun.removed > 0
    check_lake(book)


def test_rows_are_stamped_with_their_event_time_never_later(book: Book) -> None:
    activity(book)
    result = export_lake(book.engine, book.lake, clock=book.clock)
    assert result.outbox_head_at == book.clock.now()
    times = {
        seq: parse_instant_column(occurred)
        for seq, occurred in book.query("SELECT seq, occurred_at FROM outbox")
    }
    for name in (
        "invoices",
        "invoice_lines",
        "payments",
        "payment_attempts",
        "refunds",
        "credit_notes",
        "chargebacks",
        "disputes",
    ):
        table = read_table(book.lake, name, columns=["event_seq", "event_timestamp"])
        seqs, stamps = table.column(0).to_pylist(), table.column(1).to_pylist()
        assert stamps == [times[seq] for seq in seqs], name
    subscriptions = read_table(book.lake, "subscriptions").to_pylist()
    for row in subscriptions:
        stamp = row["created_at"] if row["event_seq"] is None else times[row["event_seq"]]
        assert row["event_timestamp"] == stamp
    # dunning actions by execution, usage by the last event recorded of the group
    dunning = read_table(book.lake, "dunning_actions")
    assert dunning.column("event_timestamp").equals(dunning.column("executed_at"))
    usage = read_table(book.lake, "usage_by_day").to_pylist()
    assert all(u["event_timestamp"] == max(u["last_occurred_at"], u["last_received_at"]) for u in usage)
    assert all(u["first_occurred_at"].date() == u["day"] == u["last_occurred_at"].date() for u in usage)
    assert all(u["last_received_at"].date() == u["received_on"] for u in usage)


def test_one_export_at_a_time(book: Book) -> None:
    with exclusive(book.lake), pytest.raises(LakeBusy, match="another export"):
        export_lake(book.engine, book.lake, clock=book.clock)


def test_a_lake_from_another_database_is_refused(book: Book, tmp_path: Path) -> None:
    export_lake(book.engine, book.lake, clock=book.clock)
    with book.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM lake_exports")
    before = snapshot(book.lake)
    with pytest.raises(LakeAhead, match="export 1"):
        export_lake(book.engine, book.lake, clock=book.clock)
    assert snapshot(book.lake) == before, "nothing may be deleted from a lake the database does not know"
