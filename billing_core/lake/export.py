"""The lake export: what the billing core recorded since the last run, as partitioned parquet.

One run, under the lake directory's lock:

1. Read the committed position (the last row of ``lake_exports``) and delete whatever a run that
   never committed left in the lake (files whose range ends beyond the position).
2. Open one read snapshot. Its outbox head and the highest ids of the tables read by id
   (customers, payment methods, subscriptions, usage events, dunning actions) close the run's
   ranges: ``(position, head]`` for each source. On PostgreSQL the snapshot is taken while those
   five tables are briefly locked in SHARE mode, so that no insert is in flight behind a higher id
   that is already visible; on SQLite writers are serialized and ids are handed out in commit
   order.
3. Read the outbox range in chunks of sequence numbers. Each chunk's events become a temporary
   table of touches (event, entity, time, and what the event itself says), which a handful of
   joins turns into the rows of invoices, invoice lines, payments, attempts, refunds, credit
   notes and chargebacks. Subscriptions and disputes need the whole range (a state is rewound
   from the snapshot through later events), so their events are kept and written at the end.
   Customers, payment methods, dunning actions and usage are read by id range.
4. Write one file per table and partition, named by the range, under a temporary name, synced
   and renamed into place.
5. In one transaction, append the run to ``lake_exports`` (the new position) and mirror the
   outbox position into ``consumer_offsets``. Then update ``_position.json``.

A crash before step 5 leaves files the next run deletes (step 1) before it exports the same
events again, with a later head perhaps: nothing is lost, nothing is exported twice. A crash
after it leaves a stale ``_position.json`` that step 1 rewrites; readers meanwhile see the
previous run's lake.

Nothing from the future: every row carries the time of the event it records. Columns come
from a row only when they never change after that event (amounts fixed at finalization, a
customer's country); what changes (status, category, items, period) comes from the event's own
payload or is rewound from the snapshot through the later events of the same range, which is
exact because the snapshot is the state right after the range's last event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import DBAPIError

from billing_core.clock import Clock, SystemClock
from billing_core.db.bulk import Bulk
from billing_core.db.schema_lake import LAKE_SOURCES, lake_exports
from billing_core.db.types import parse_instant_column
from billing_core.errors import InvalidInput
from billing_core.lake import files
from billing_core.lake.columns import table_from_rows
from billing_core.lake.errors import LakeAhead
from billing_core.lake.schemas import (
    CHARGEBACKS,
    CREDIT_NOTES,
    CUSTOMERS,
    DISPUTES,
    DUNNING_ACTIONS,
    INVOICE_LINES,
    INVOICES,
    PAYMENT_ATTEMPTS,
    PAYMENT_METHODS,
    PAYMENTS,
    REFUNDS,
    SUBSCRIPTIONS,
    TABLES,
    USAGE_BY_DAY,
    LakeTable,
)

#: ``on_progress(stage, done, total)``: stages are outbox, subscriptions, disputes, customers,
#: payment_methods, usage_events, dunning_actions
Progress = Callable[[str, int, int], None]

CONSUMER = "lake"
ID_SOURCES = ("customers", "payment_methods", "subscriptions", "usage_events", "dunning_actions")

# the events the lake reads; every other event type is skipped in SQL
_EVENT_TYPES = (
    "invoice.finalized",
    "invoice.paid",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "payment.succeeded",
    "payment.failed",
    "refund.succeeded",
    "credit_note.issued",
    "chargeback.opened",
    "chargeback.closed",
    "subscription.created",
    "subscription.status_changed",
    "subscription.plan_changed",
    "subscription.plan_change_scheduled",
    "subscription.cancel_scheduled",
    "dispute.opened",
    "dispute.categorized",
    "dispute.under_review",
    "dispute.resolved",
    "dispute.withdrawn",
)
_EVENTS_SQL = (
    "SELECT seq, occurred_at, event_type, aggregate_id, payload FROM outbox WHERE seq > ? AND seq <= ?"
    " AND event_type IN (" + ", ".join(f"'{t}'" for t in _EVENT_TYPES) + ") ORDER BY seq"
)

# one row per event of a chunk: (seq, kind, entity id, occurred_at, change, amount, note)
_TOUCH = "tmp_lake_touch"
_TOUCH_COLUMNS = (
    ("seq", "INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"),
    ("kind", "TEXT", "TEXT"),
    ("id", "INTEGER", "BIGINT"),
    ("occurred_at", "TEXT", "TIMESTAMPTZ"),
    ("change", "TEXT", "TEXT"),
    ("amount", "INTEGER", "BIGINT"),
    ("note", "TEXT", "TEXT"),
)
_IDS = "tmp_lake_ids"
_NEEDS = "tmp_lake_needs"

# Per-chunk reads: each selects exactly its table's schema columns, in order.
_INVOICES_SQL = f"""
SELECT i.id, i.number, i.customer_id, i.subscription_id, t.change,
  CASE t.change WHEN 'finalized' THEN (CASE WHEN i.amount_due_minor > 0 THEN 'open' ELSE 'paid' END)
    WHEN 'paid' THEN 'paid' WHEN 'voided' THEN 'void' ELSE 'uncollectible' END,
  COALESCE(t.amount, i.amount_due_minor), t.note, i.billing_reason, i.currency, i.period_start, i.period_end,
  i.subtotal_minor, i.discount_minor, i.tax_minor, i.tax_inclusive, i.total_minor, i.credit_applied_minor,
  i.amount_due_minor, i.created_at, i.finalized_at, i.due_at, t.seq, t.occurred_at
FROM {_TOUCH} t JOIN invoices i ON i.id = t.id WHERE t.kind = 'invoice' ORDER BY t.seq"""
_LINES_SQL = f"""
SELECT l.invoice_id, l.position, i.customer_id, l.subscription_id, l.kind, l.description, l.price_id,
  l.quantity, l.period_start, l.period_end, l.amount_minor, l.discount_minor, l.tax_minor, l.taxable,
  i.currency, t.seq, t.occurred_at
FROM {_TOUCH} t JOIN invoices i ON i.id = t.id JOIN invoice_lines l ON l.invoice_id = t.id
WHERE t.kind = 'invoice' AND t.change = 'finalized' ORDER BY t.seq, l.position"""
_PAYMENTS_SQL = f"""
SELECT p.id, p.invoice_id, p.attempt_id, p.customer_id, p.method, p.payment_method_id, p.amount_minor,
  p.currency, p.gateway_reference, p.created_at, t.seq, t.occurred_at
FROM {_TOUCH} t JOIN payments p ON p.id = t.id WHERE t.kind = 'payment' ORDER BY t.seq"""
_ATTEMPT_COLUMNS = """a.id, a.invoice_id, a.customer_id, a.payment_method_id, a.attempt_number, a.amount_minor,
  a.currency, t.change, a.decline_code, a.decline_type, a.source, a.scheduled_at, a.processed_at, t.seq,
  t.occurred_at"""
_ATTEMPTS_SQL = f"""
SELECT {_ATTEMPT_COLUMNS}
FROM {_TOUCH} t JOIN payments p ON p.id = t.id JOIN payment_attempts a ON a.id = p.attempt_id
WHERE t.kind = 'payment'
UNION ALL
SELECT {_ATTEMPT_COLUMNS}
FROM {_TOUCH} t JOIN payment_attempts a ON a.id = t.id WHERE t.kind = 'attempt'
ORDER BY 14"""
_REFUNDS_SQL = f"""
SELECT r.id, r.payment_id, p.invoice_id, p.customer_id, r.amount_minor, r.currency, r.reason,
  r.credit_note_id, r.created_at, t.seq, t.occurred_at
FROM {_TOUCH} t JOIN refunds r ON r.id = t.id JOIN payments p ON p.id = r.payment_id
WHERE t.kind = 'refund' ORDER BY t.seq"""
_CREDIT_NOTES_SQL = f"""
SELECT c.id, c.number, c.invoice_id, c.customer_id, c.amount_minor, c.currency, c.reason, c.outcome,
  c.refund_id, c.memo, c.created_at, t.seq, t.occurred_at
FROM {_TOUCH} t JOIN credit_notes c ON c.id = t.id WHERE t.kind = 'credit_note' ORDER BY t.seq"""
_CHARGEBACKS_SQL = f"""
SELECT c.id, c.payment_id, p.invoice_id, p.customer_id, t.change,
  CASE WHEN t.change = 'opened' THEN 'open' ELSE t.note END, c.network_reference, c.amount_minor,
  c.fee_minor, c.currency, c.reason_code, c.opened_at, CASE WHEN t.change = 'closed' THEN t.occurred_at END,
  t.seq, t.occurred_at
FROM {_TOUCH} t JOIN chargebacks c ON c.id = t.id JOIN payments p ON p.id = c.payment_id
WHERE t.kind = 'chargeback' ORDER BY t.seq"""
# table, the kinds of touch it reads, its query
_PER_CHUNK: tuple[tuple[LakeTable, frozenset[str], str], ...] = (
    (INVOICE_LINES, frozenset({"invoice"}), _LINES_SQL),
    (PAYMENTS, frozenset({"payment"}), _PAYMENTS_SQL),
    (PAYMENT_ATTEMPTS, frozenset({"payment", "attempt"}), _ATTEMPTS_SQL),
    (REFUNDS, frozenset({"refund"}), _REFUNDS_SQL),
    (CREDIT_NOTES, frozenset({"credit_note"}), _CREDIT_NOTES_SQL),
    (CHARGEBACKS, frozenset({"chargeback"}), _CHARGEBACKS_SQL),
)

_CUSTOMERS_SQL = (
    "SELECT id, external_id, email, currency, timezone, country, language, billing_anchor_day, tax_rate_id,"
    " created_at, signup_channel, signup_ip, signup_device_id, signup_ip_country, created_at"
    " FROM customers WHERE id > ? AND id <= ? ORDER BY id"
)
_PAYMENT_METHODS_SQL = (
    "SELECT id, customer_id, brand, bin, exp_month, exp_year, fingerprint, created_at, created_at"
    " FROM payment_methods WHERE id > ? AND id <= ? ORDER BY id"
)
_DUNNING_SQL = (
    "SELECT id, process_id, step, invoice_id, customer_id, subscription_id, action, channel, scheduled_at,"
    " executed_at, outcome, attempt_id, amount_minor, currency, policy, decline_code, day, executed_at"
    " FROM dunning_actions"
    " WHERE id > ? AND id <= ? ORDER BY id"
)
_USAGE_SQL = {
    True: (
        "SELECT substr(occurred_at, 1, 10) AS day, customer_id, metric_code, SUM(value), COUNT(*),"
        " substr(received_at, 1, 10) AS received_on, MIN(occurred_at), MAX(occurred_at), MAX(received_at)"
        " FROM usage_events WHERE id > ? AND id <= ? GROUP BY day, customer_id, metric_code, received_on"
    ),
    False: (
        "SELECT CAST(occurred_at AT TIME ZONE 'UTC' AS DATE) AS day, customer_id, metric_code, SUM(value),"
        " COUNT(*), CAST(received_at AT TIME ZONE 'UTC' AS DATE) AS received_on, MIN(occurred_at),"
        " MAX(occurred_at), MAX(received_at) FROM usage_events WHERE id > ? AND id <= ?"
        " GROUP BY 1, customer_id, metric_code, 6"
    ),
}
_USAGE_KEYS = ["day", "customer_id", "metric_code", "received_on"]

_SUBSCRIPTION_ROWS_SQL = f"""
SELECT s.id, s.customer_id, s.status, s.cancel_at_period_end, s.currency, s.tz_name, s.months_per_period,
  s.started_at, s.trial_end, s.coupon_id, s.created_at
FROM {_IDS} t JOIN subscriptions s ON s.id = t.id"""
_SUBSCRIPTION_ITEMS_SQL = f"""
SELECT si.subscription_id, si.price_id, si.quantity
FROM {_IDS} t JOIN subscription_items si ON si.subscription_id = t.id ORDER BY si.subscription_id, si.id"""
# the latest period invoiced before the range (before ``bound``, the first period the range invoiced)
_PERIODS_SQL = f"""
SELECT n.id, i.period_start, i.period_end
FROM {_NEEDS} n JOIN invoices i ON i.subscription_id = n.id
WHERE i.billing_reason = 'subscription_cycle' AND i.period_start = (
  SELECT MAX(j.period_start) FROM invoices j
  WHERE j.subscription_id = n.id AND j.billing_reason = 'subscription_cycle' AND j.period_start IS NOT NULL
    AND (n.bound IS NULL OR j.period_start < n.bound))"""
_DISPUTE_ROWS_SQL = f"""
SELECT d.id, d.customer_id, d.invoice_id, d.payment_id, d.amount_minor, d.currency, d.message, d.status,
  d.resolution_note, d.opened_at
FROM {_IDS} t JOIN disputes d ON d.id = t.id"""


@dataclass(frozen=True, slots=True)
class Position:
    """Where the lake stands: the last committed export and, per source, the last item it covered."""

    export_id: int
    marks: dict[str, int]


@dataclass(frozen=True)
class ExportResult:
    """What one export run did. ``export_id`` is None when there was nothing new to export."""

    export_id: int | None
    ranges: dict[str, tuple[int, int]]
    rows: dict[str, int]
    files: int
    removed: int
    outbox_head_at: datetime | None
    seconds: float

    @property
    def nothing_new(self) -> bool:
        return self.export_id is None


def load_position(engine: Engine) -> Position:
    """The committed position: the last row of ``lake_exports`` (zeros before the first run)."""
    with engine.connect() as conn:
        row = (
            conn.execute(select(lake_exports).order_by(lake_exports.c.id.desc()).limit(1)).mappings().first()
        )
    if row is None:
        return Position(0, dict.fromkeys(LAKE_SOURCES, 0))
    return Position(int(row["id"]), {s: int(row[f"{s}_to"]) for s in LAKE_SOURCES})


def export_lake(
    engine: Engine,
    lake_dir: Path | str,
    *,
    clock: Clock | None = None,
    chunk_size: int = 50_000,
    max_buffered_rows: int = 500_000,
    on_progress: Progress | None = None,
) -> ExportResult:
    """Export everything recorded since the last run into ``lake_dir``, exactly once.

    ``chunk_size`` outbox events (or ids) are read per query; at most about ``max_buffered_rows``
    rows wait in memory before they are written (a run that holds more writes further files per
    partition, ``part-<from>-<to>.<n>.parquet``). ``on_progress(stage, done, total)`` reports.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidInput("chunk_size", "a whole number of events >= 1", chunk_size)
    if isinstance(max_buffered_rows, bool) or not isinstance(max_buffered_rows, int) or max_buffered_rows < 1:
        raise InvalidInput("max_buffered_rows", "a whole number of rows >= 1", max_buffered_rows)
    lake = Path(lake_dir)
    clock = clock or SystemClock()
    started_at = clock.now()
    started = time.perf_counter()
    with files.exclusive(lake):
        position = load_position(engine)
        _check_lake_matches(lake, position)
        removed = files.remove_uncommitted(lake, position.marks)
        files.write_position_file(lake, position.export_id, position.marks)
        with _snapshot(engine) as conn:
            bulk = Bulk(conn)
            heads = _heads(bulk)
            if heads["outbox"] < position.marks["outbox"]:
                raise LakeAhead(
                    f"outbox events up to {position.marks['outbox']}", f"events up to {heads['outbox']}"
                )
            ranges = {s: (position.marks[s], max(position.marks[s], heads[s])) for s in LAKE_SOURCES}
            if all(lo == hi for lo, hi in ranges.values()):
                return ExportResult(None, ranges, {}, 0, removed, None, time.perf_counter() - started)
            head_at = _event_time(bulk, ranges["outbox"][1])
            run = _Run(bulk, lake, ranges, chunk_size, max_buffered_rows, on_progress)
            run.export()
            rows, written = run.close()
        export_id = _commit(
            engine, position, ranges, head_at=head_at, started_at=started_at, now=clock.now(), rows=rows,
            files=len(written),
        )  # fmt: skip
        files.write_position_file(lake, export_id, {s: hi for s, (_, hi) in ranges.items()})
    return ExportResult(
        export_id, ranges, rows, len(written), removed, head_at, time.perf_counter() - started
    )


def _check_lake_matches(lake: Path, position: Position) -> None:
    """Refuse a lake directory written from another database: its files would be deleted."""
    recorded = files.read_position_file(lake)
    if recorded is None:
        if any(files.table_files(lake, t) for t in TABLES.values()):
            raise LakeAhead("parquet files but no _position.json", f"export {position.export_id}")
        return
    if recorded[0] > position.export_id:
        raise LakeAhead(f"export {recorded[0]}", f"export {position.export_id}")


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read snapshot for the whole run, taken when no insert is in flight on the id sources."""
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(read_only=True) as conn, conn.begin():
            conn.exec_driver_sql("SELECT last_seq FROM outbox_head WHERE id = 1").all()
            yield conn
        return
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        _take_snapshot_under_share_locks(engine, conn)
        yield conn


def _take_snapshot_under_share_locks(engine: Engine, conn: Connection, attempts: int = 5) -> None:
    """PostgreSQL: the snapshot's first query runs while the id sources are locked in SHARE mode.

    SHARE waits for every transaction that is inserting into those tables and keeps new inserts
    out for the few milliseconds it is held, so every id at or below a visible id is visible
    too. The lock is short and waits at most a few seconds; if it collides with a writer the
    export gives way and tries again.
    """
    tables = ", ".join(ID_SOURCES)
    for attempt in range(attempts):
        try:
            with engine.connect() as locker, locker.begin():
                locker.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
                locker.exec_driver_sql(f"LOCK TABLE {tables} IN SHARE MODE")
                conn.exec_driver_sql("SELECT last_seq FROM outbox_head WHERE id = 1").all()
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def _heads(bulk: Bulk) -> dict[str, int]:
    heads = {"outbox": int(bulk.query("SELECT last_seq FROM outbox_head WHERE id = 1")[0][0])}
    for table in ID_SOURCES:
        heads[table] = int(bulk.query(f"SELECT COALESCE(MAX(id), 0) FROM {table}")[0][0])
    return heads


def _event_time(bulk: Bulk, seq: int) -> datetime | None:
    rows = bulk.query("SELECT occurred_at FROM outbox WHERE seq = ?", (seq,))
    return parse_instant_column(rows[0][0]) if rows else None


def _commit(
    engine: Engine,
    position: Position,
    ranges: dict[str, tuple[int, int]],
    *,
    head_at: datetime | None,
    started_at: datetime,
    now: datetime,
    rows: dict[str, int],
    files: int,
) -> int:
    """Move the position: the run's row in ``lake_exports`` and the outbox offset, in one transaction."""
    export_id = position.export_id + 1
    values: dict[str, Any] = {"id": export_id}
    for source, (lo, hi) in ranges.items():
        values[f"{source}_from"] = lo
        values[f"{source}_to"] = hi
    values.update(
        outbox_head_at=head_at,
        started_at=started_at,
        committed_at=now,
        rows=json.dumps(rows, sort_keys=True),
        files=files,
    )
    with engine.begin() as conn:
        conn.execute(insert(lake_exports).values(**values))
        bulk = Bulk(conn)
        bulk.execute(
            "INSERT INTO consumer_offsets (consumer, last_seq, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (consumer) DO UPDATE SET last_seq = excluded.last_seq, updated_at = excluded.updated_at",
            (CONSUMER, ranges["outbox"][1], bulk.instant(now)),
        )
    return export_id


def _temp_table(
    bulk: Bulk, name: str, columns: Sequence[tuple[str, str, str]], rows: Sequence[Sequence[Any]]
) -> None:
    """A temporary table of ``rows`` (``columns``: name, SQLite type, PostgreSQL type)."""
    bulk.execute(f"DROP TABLE IF EXISTS {name}")
    spec = ", ".join(f"{c} {lite if bulk.sqlite else pg}" for c, lite, pg in columns)
    bulk.execute(f"CREATE TEMP TABLE {name} ({spec})" + ("" if bulk.sqlite else " ON COMMIT DROP"))
    bulk.insert(name, [c for c, _, _ in columns], rows)
    if not bulk.sqlite:
        bulk.execute(f"ANALYZE {name}")


def _chunks(values: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# A subscription event: (seq, occurred_at, change, status_to, status_from, reason, items,
# previous_items, period_start, period_end); items are lists of {"price_id", "quantity"}.
SubEvent = tuple[int, Any, str, Any, Any, Any, Any, Any, Any, Any]


class _Run:
    """One export run inside the snapshot: reads the ranges and feeds the sinks."""

    def __init__(
        self,
        bulk: Bulk,
        lake: Path,
        ranges: dict[str, tuple[int, int]],
        chunk_size: int,
        max_buffered_rows: int,
        on_progress: Progress | None,
    ) -> None:
        self.bulk = bulk
        self.sqlite = bulk.sqlite
        self.lake = lake
        self.ranges = ranges
        self.chunk_size = chunk_size
        self.max_buffered_rows = max_buffered_rows
        self.on_progress = on_progress
        self.sinks: dict[tuple[str, str], files.Sink] = {}
        self.subscription_events: dict[int, list[SubEvent]] = {}
        self.dispute_events: dict[int, list[tuple[int, Any, str, dict[str, Any]]]] = {}
        # the events kept for the whole range share one object per distinct instant
        self.instants: dict[Any, Any] = {}

    # -- plumbing --------------------------------------------------------------------------------
    def progress(self, stage: str, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(stage, done, total)

    def add(self, table: LakeTable, rows: Sequence[Sequence[Any]], prefix: str = "part") -> None:
        if rows:
            self.add_table(table, table_from_rows(rows, table.schema, sqlite=self.sqlite), prefix)

    def add_table(self, table: LakeTable, data: pa.Table, prefix: str = "part") -> None:
        if not data.num_rows:
            return
        sink = self.sinks.get((table.name, prefix))
        if sink is None:
            lo, hi = self.ranges[table.sources[prefix]]
            sink = self.sinks[(table.name, prefix)] = files.Sink(self.lake, table, prefix, lo, hi)
        sink.add(data)
        # memory stays bounded: past the budget, the sink holding the most rows writes them out
        if sum(s.buffered for s in self.sinks.values()) >= self.max_buffered_rows:
            max(self.sinks.values(), key=lambda s: s.buffered).flush()

    def close(self) -> tuple[dict[str, int], list[Path]]:
        rows = dict.fromkeys(TABLES, 0)
        written: list[Path] = []
        for (name, _), sink in sorted(self.sinks.items()):
            written += sink.close()
            rows[name] += sink.rows
        return rows, written

    def export(self) -> None:
        self.export_outbox()
        self.export_subscriptions()
        self.export_disputes()
        self.export_customers()
        self.export_payment_methods()
        self.export_usage()
        self.export_dunning_actions()

    # -- the outbox ------------------------------------------------------------------------------
    def export_outbox(self) -> None:
        lo, hi = self.ranges["outbox"]
        loads = orjson.loads
        for start in range(lo, hi, self.chunk_size):
            end = min(start + self.chunk_size, hi)
            touches: list[tuple[Any, ...]] = []
            for seq, occurred, event_type, aggregate_id, payload in self.bulk.query(
                _EVENTS_SQL, (start, end)
            ):
                if event_type == "invoice.finalized":
                    touches.append((seq, "invoice", int(aggregate_id), occurred, "finalized", None, None))
                elif event_type == "payment.succeeded":
                    touches.append((seq, "payment", int(aggregate_id), occurred, "succeeded", None, None))
                elif event_type == "invoice.paid":
                    p = loads(payload)
                    touches.append(
                        (seq, "invoice", int(aggregate_id), occurred, "paid", p["amount_paid_minor"], p.get("paid_with"))
                    )  # fmt: skip
                elif event_type == "payment.failed":
                    touches.append((seq, "attempt", int(aggregate_id), occurred, "failed", None, None))
                elif event_type == "invoice.voided":
                    p = loads(payload)
                    touches.append(
                        (seq, "invoice", int(aggregate_id), occurred, "voided", p["amount_voided_minor"], None)
                    )  # fmt: skip
                elif event_type == "invoice.marked_uncollectible":
                    p = loads(payload)
                    touches.append((seq, "invoice", int(aggregate_id), occurred, "marked_uncollectible",
                                    p["amount_written_off_minor"], None))  # fmt: skip
                elif event_type == "refund.succeeded":
                    touches.append(
                        (seq, "refund", loads(payload)["refund_id"], occurred, "succeeded", None, None)
                    )
                elif event_type == "credit_note.issued":
                    p = loads(payload)
                    touches.append((seq, "credit_note", p["credit_note_id"], occurred, "issued", None, None))
                elif event_type == "chargeback.opened":
                    p = loads(payload)
                    touches.append((seq, "chargeback", p["chargeback_id"], occurred, "opened", None, None))
                elif event_type == "chargeback.closed":
                    p = loads(payload)
                    touches.append(
                        (seq, "chargeback", p["chargeback_id"], occurred, "closed", None, p["outcome"])
                    )
                elif event_type.startswith("subscription."):
                    self._subscription_event(
                        int(aggregate_id), seq, occurred, event_type[13:], loads(payload)
                    )
                else:  # dispute.*
                    self.dispute_events.setdefault(int(aggregate_id), []).append(
                        (seq, occurred, event_type[8:], loads(payload))
                    )
            if touches:
                self._export_touches(touches)
            self.progress("outbox", end - lo, hi - lo)

    def _subscription_event(
        self, sub_id: int, seq: int, occurred: Any, change: str, p: dict[str, Any]
    ) -> None:
        event: SubEvent
        if change == "created":
            event = (seq, occurred, change, p["status"], None, None, p["items"], None, None, None)
        elif change == "status_changed":
            event = (seq, occurred, change, p["to"], p["from"], p.get("reason"), None, None, None, None)
        elif change == "plan_changed":
            previous = p.get("previous_items")
            event = (seq, occurred, change, None, None, p.get("effective"), p["items"], previous, None, None)
        else:  # plan_change_scheduled, cancel_scheduled
            event = (seq, occurred, change, None, None, None, None, None, None, None)
        self.subscription_events.setdefault(sub_id, []).append(event)

    def _export_touches(self, touches: list[tuple[Any, ...]]) -> None:
        bulk = self.bulk
        _temp_table(bulk, _TOUCH, _TOUCH_COLUMNS, touches)
        kinds = {t[1] for t in touches}
        if "invoice" in kinds:
            rows = bulk.query(_INVOICES_SQL)
            self.add(INVOICES, rows)
            for row in rows:
                # a period invoice renews its subscription: the subscription's history has a row for it
                if (
                    row[4] == "finalized"
                    and row[8] == "subscription_cycle"
                    and row[3] is not None
                    and row[10]
                ):
                    instant = self.instants.setdefault
                    self.subscription_events.setdefault(row[3], []).append((
                        row[22], instant(row[23], row[23]), "renewed", None, None, None, None, None,
                        instant(row[10], row[10]), instant(row[11], row[11]),
                    ))  # fmt: skip
        for table, reads, sql in _PER_CHUNK:
            if reads & kinds:
                self.add(table, bulk.query(sql))

    # -- subscriptions ---------------------------------------------------------------------------
    def export_subscriptions(self) -> None:
        lo, hi = self.ranges["subscriptions"]
        events = self.subscription_events
        created = {sub_id for sub_id, evs in events.items() if any(e[2] == "created" for e in evs)}
        # subscriptions written without a `subscription.created` event (bulk loads) are adopted:
        # their first row is stamped with their created_at
        adopted: set[int] = set()
        step = max(self.chunk_size, 10_000)
        for start in range(lo, hi, step):
            adopted.update(
                r[0]
                for r in self.bulk.query(
                    "SELECT id FROM subscriptions WHERE id > ? AND id <= ?", (start, min(start + step, hi))
                )
                if r[0] not in created
            )
        ids = sorted(set(events) | adopted)
        done = 0
        for chunk in _chunks(ids, self.chunk_size):
            self._export_subscription_chunk(chunk, adopted)
            done += len(chunk)
            self.progress("subscriptions", done, len(ids))

    def _export_subscription_chunk(self, ids: Sequence[int], adopted: set[int]) -> None:
        bulk = self.bulk
        _temp_table(bulk, _IDS, (("id", "INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"),), [(i,) for i in ids])
        rows = {r[0]: r for r in bulk.query(_SUBSCRIPTION_ROWS_SQL)}
        items: dict[int, list[dict[str, int]]] = {}
        for sub_id, price_id, quantity in bulk.query(_SUBSCRIPTION_ITEMS_SQL):
            items.setdefault(sub_id, []).append({"price_id": price_id, "quantity": quantity})
        # the period before the range, where a row needs it
        needs: list[tuple[int, Any]] = []
        for sub_id in ids:
            evs = self.subscription_events.get(sub_id, [])
            evs.sort(key=lambda e: e[0])
            if sub_id in adopted or (evs and evs[0][2] not in ("created", "renewed")):
                bound = next((e[8] for e in evs if e[2] == "renewed"), None)
                needs.append((sub_id, bound))
        periods: dict[int, tuple[Any, Any]] = {}
        if needs:
            _temp_table(
                bulk,
                _NEEDS,
                (("id", "INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"), ("bound", "TEXT", "TIMESTAMPTZ")),
                needs,
            )
            periods = {r[0]: (r[1], r[2]) for r in bulk.query(_PERIODS_SQL)}
        part: list[tuple[Any, ...]] = []
        new: list[tuple[Any, ...]] = []
        for sub_id in ids:
            row = rows.get(sub_id)
            if row is None:  # pragma: no cover - subscriptions are never deleted
                continue
            versions = _subscription_versions(
                row,
                items.get(sub_id, []),
                self.subscription_events.get(sub_id, []),
                periods.get(sub_id, (None, None)),
                adopted=sub_id in adopted,
            )
            for version in versions:
                (part if version[17] is not None else new).append(version)
        self.add(SUBSCRIPTIONS, part)
        self.add(SUBSCRIPTIONS, new, prefix="adopted")

    # -- disputes --------------------------------------------------------------------------------
    def export_disputes(self) -> None:
        ids = sorted(self.dispute_events)
        done = 0
        for chunk in _chunks(ids, self.chunk_size):
            _temp_table(
                self.bulk, _IDS, (("id", "INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"),), [(i,) for i in chunk]
            )
            rows = {r[0]: r for r in self.bulk.query(_DISPUTE_ROWS_SQL)}
            out: list[tuple[Any, ...]] = []
            for dispute_id in chunk:
                out += _dispute_versions(rows[dispute_id], self.dispute_events[dispute_id])
            out.sort(key=lambda v: v[14])
            self.add(DISPUTES, out)
            done += len(chunk)
            self.progress("disputes", done, len(ids))

    # -- tables read by id -----------------------------------------------------------------------
    def _by_id(self, source: str, sql: str, table: LakeTable) -> None:
        lo, hi = self.ranges[source]
        for start in range(lo, hi, self.chunk_size):
            end = min(start + self.chunk_size, hi)
            self.add(table, self.bulk.query(sql, (start, end)))
            self.progress(source, end - lo, hi - lo)

    def export_customers(self) -> None:
        self._by_id("customers", _CUSTOMERS_SQL, CUSTOMERS)

    def export_payment_methods(self) -> None:
        self._by_id("payment_methods", _PAYMENT_METHODS_SQL, PAYMENT_METHODS)

    def export_dunning_actions(self) -> None:
        self._by_id("dunning_actions", _DUNNING_SQL, DUNNING_ACTIONS)

    def export_usage(self) -> None:
        lo, hi = self.ranges["usage_events"]
        if lo == hi:
            return
        partial = USAGE_BY_DAY.schema.remove(USAGE_BY_DAY.schema.get_field_index("event_timestamp"))
        partial = partial.set(
            partial.get_field_index("metric_code"), pa.field("metric_code", pa.string(), False)
        )
        parts = []
        step = self.chunk_size * 4
        for start in range(lo, hi, step):
            end = min(start + step, hi)
            rows = self.bulk.query(_USAGE_SQL[self.sqlite], (start, end))
            if rows:
                parts.append(table_from_rows(rows, partial, sqlite=self.sqlite))
            self.progress("usage_events", end - lo, hi - lo)
        if not parts:
            return
        data = pa.concat_tables(parts)
        if len(parts) > 1:  # a day's usage may straddle chunks: one row per group and run
            data = data.group_by(_USAGE_KEYS, use_threads=False).aggregate(
                [
                    ("quantity", "sum"),
                    ("events", "sum"),
                    ("first_occurred_at", "min"),
                    ("last_occurred_at", "max"),
                    ("last_received_at", "max"),
                ]
            )
            data = data.rename_columns(
                [n.removesuffix("_sum").removesuffix("_min").removesuffix("_max") for n in data.column_names]
            )
        data = data.sort_by([(key, "ascending") for key in _USAGE_KEYS])
        occurred, received = data.column("last_occurred_at"), data.column("last_received_at")
        columns = {name: data.column(name) for name in data.column_names}
        columns["metric_code"] = pc.dictionary_encode(columns["metric_code"])
        columns["event_timestamp"] = pc.if_else(pc.greater(occurred, received), occurred, received)
        table = pa.Table.from_arrays(
            [columns[f.name].cast(f.type) for f in USAGE_BY_DAY.schema], schema=USAGE_BY_DAY.schema
        )
        self.add_table(USAGE_BY_DAY, table)


def _subscription_versions(
    row: tuple[Any, ...],
    row_items: list[dict[str, int]],
    events: list[SubEvent],
    period_before: tuple[Any, Any],
    *,
    adopted: bool,
) -> list[tuple[Any, ...]]:
    """The subscription's rows for the range, each with the whole state from its event on.

    ``row`` is the subscription as the snapshot holds it: the state after the range's last event.
    Walking the range's events backwards (a status change says what it changed from, a plan
    change what the items were) gives the state before each event; walking forwards, what each
    event set itself wins. Items are unknown (null) before a plan change whose event does not say
    what the items were. The period is the last one invoiced: by a renewal in the range, or the
    latest invoiced before it (``period_before``).
    """
    (
        sub_id,
        customer_id,
        status,
        cancel,
        currency,
        tz_name,
        months,
        started_at,
        trial_end,
        coupon_id,
        created_at,
    ) = row
    # backwards: the state after each event, from the snapshot
    after: list[tuple[Any, Any, bool]] = [("", None, False)] * len(events)
    state: tuple[Any, Any, bool] = (status, row_items, bool(cancel))
    for index in range(len(events) - 1, -1, -1):
        after[index] = state
        _, _, change, _, status_from, _, _, previous_items, _, _ = events[index]
        st, it, ca = state
        if change == "status_changed":
            st = status_from
        elif change == "plan_changed":
            it = previous_items
        elif change == "cancel_scheduled":
            ca = False
        state = (st, it, ca)
    fixed = (currency, tz_name, months, started_at, trial_end, coupon_id, created_at)
    out: list[tuple[Any, ...]] = []
    if adopted:
        st, it, ca = state
        out.append(
            (sub_id, customer_id, "created", None, st, None, it, *period_before, ca, *fixed, None, created_at)
        )
    # forwards: what the range's events set themselves
    known_status: Any = None
    known_items: Any = None
    known_cancel: bool | None = None
    period = period_before
    for index, event in enumerate(events):
        seq, occurred, change, status_to, status_from, reason, items, _, period_start, period_end = event
        if change == "created":
            known_status, known_items, known_cancel = status_to, items, False
        elif change == "status_changed":
            known_status = status_to
        elif change == "plan_changed":
            known_items = items
        elif change == "cancel_scheduled":
            known_cancel = True
        elif change == "renewed":
            period = (period_start, period_end)
        st, it, ca = after[index]
        out.append((
            sub_id, customer_id, change, reason, known_status if known_status is not None else st,
            status_from, known_items if known_items is not None else it, *period,
            known_cancel if known_cancel is not None else ca, *fixed, seq, occurred,
        ))  # fmt: skip
    return out


_DISPUTE_STATUS_CHANGES = ("under_review", "resolved", "withdrawn")


def _dispute_versions(
    row: tuple[Any, ...], events: list[tuple[int, Any, str, dict[str, Any]]]
) -> list[tuple[Any, ...]]:
    """A dispute's rows for the range; a categorization keeps the status the dispute had then.

    Every dispute event says the category and outcome from then on; a status change says the
    status it left, so the status at a categorization is rewound from the snapshot's.
    """
    dispute_id, customer_id, invoice_id, payment_id, amount, currency, message, status, note, opened_at = row
    events.sort(key=lambda e: e[0])
    after: list[Any] = [None] * len(events)
    state = status
    for index in range(len(events) - 1, -1, -1):
        after[index] = state
        change, payload = events[index][2], events[index][3]
        if change in _DISPUTE_STATUS_CHANGES:
            state = payload["from"]
    out = []
    known: Any = None
    for index, (seq, occurred, change, payload) in enumerate(events):
        if change == "opened":
            known, category, outcome = "open", None, None
        elif change == "categorized":
            category, outcome = payload.get("category"), None
        else:
            known, category, outcome = change, payload.get("category"), payload.get("outcome")
        terminal = change in ("resolved", "withdrawn")
        out.append((
            dispute_id, customer_id, invoice_id, payment_id, change, known if known is not None else after[index],
            category, outcome, amount, currency, message, note if terminal else None, opened_at,
            occurred if terminal else None, seq, occurred,
        ))  # fmt: skip
    return out
