"""Build the feature tables from the lake: one DuckDB query per table, one parquet file per table.

    from features.jobs import build_tables
    result = build_tables("data/lake", "data/features/tables")

Each table is computed whole from the lake as of ``as_of`` (by default the latest instant the lake
records) and replaces the previous file atomically; the tables are deterministic, so a rebuild
rewrites the same rows for the same past and adds what the new lake rows changed. ``_build.json``
beside the tables records the instant and the row counts, which ``recoup features materialize``
uses as the end of its window.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from features.jobs import customers, fraud, invoices
from features.jobs.lake import LakeShape, lake_head, open_lake, prepare
from features.jobs.schemas import TABLES, FeatureTable
from features.jobs.sql import ts_literal

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

Job = Callable[[LakeShape, str], str]

JOBS: dict[str, Job] = {
    "customer_payment": customers.customer_payment,
    "invoice_context": invoices.invoice_context,
    "dunning_context": invoices.dunning_context,
    "usage_trend": customers.usage_trend,
    "churn_signals": customers.churn_signals,
    "email_domain_velocity": fraud.email_domain_velocity,
    "bin_velocity": fraud.bin_velocity,
    "device_velocity": fraud.device_velocity,
    "ip_velocity": fraud.ip_velocity,
    "payment_risk": fraud.payment_risk,
    "customer_realtime": fraud.customer_realtime,
    "bin_realtime": fraud.bin_realtime,
    "dispute_context": invoices.dispute_context,
}
assert set(JOBS) == set(TABLES)

BUILD_FILE = "_build.json"


class EmptyLake(Exception):
    """The lake has no rows yet: export it first (``recoup lake export``)."""


@dataclass
class BuildResult:
    as_of: datetime
    tables_dir: Path
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    shape: LakeShape | None = None


def table_path(tables_dir: Path | str, name: str) -> Path:
    return Path(tables_dir) / f"{name}.parquet"


def compute_table(
    con: duckdb.DuckDBPyConnection, name: str, as_of: datetime, shape: LakeShape | None = None
) -> pa.Table:
    """The feature table ``name`` as of ``as_of``, from the lake views of ``con``, sorted by key and time."""
    table = TABLES[name]
    if shape is None:
        shape = prepare(con)
    query = JOBS[name](shape, ts_literal(as_of))
    keys = ", ".join(table.key_names)
    columns = ", ".join([*table.key_names, "event_timestamp", *table.feature_names])
    compact = ""
    if table.ttl is None:
        # a row whose values equal the entity's previous row changes nothing: leave it out
        values = "{" + ", ".join(f"'{c}': {c}" for c in table.feature_names) + "}"
        compact = f" QUALIFY {values} IS DISTINCT FROM lag({values}) OVER (PARTITION BY {keys} ORDER BY event_timestamp)"
    result = con.sql(
        f"SELECT {columns} FROM ({query}){compact} ORDER BY {keys}, event_timestamp"
    ).to_arrow_table()
    return _conform(result, table)


def _conform(data: pa.Table, table: FeatureTable) -> pa.Table:
    """Cast to the declared schema (names, order, types and nullability)."""
    import pyarrow as pa

    schema = table.schema
    columns = []
    for f in schema:
        column = data.column(f.name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        columns.append(column.cast(f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def write_table(path: Path, data: pa.Table) -> None:
    """Write a parquet file atomically (a temporary name, synced, then renamed into place)."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(data, tmp, compression="zstd", row_group_size=256 * 1024)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def build_tables(
    lake_dir: Path | str,
    tables_dir: Path | str,
    *,
    as_of: datetime | None = None,
    names: Iterable[str] | None = None,
    threads: int | None = None,
    on_table: Callable[[str, int, int], None] | None = None,
) -> BuildResult:
    """Compute the feature tables from the lake and write them under ``tables_dir``.

    ``on_table(name, done, total)`` is called before each table and once at the end.
    """
    wanted = list(names) if names is not None else list(JOBS)
    for name in wanted:
        if name not in JOBS:
            raise KeyError(f"unknown feature table {name!r}: one of {', '.join(JOBS)}")
    con, shape = open_lake(lake_dir, threads=threads)
    try:
        if as_of is None:
            as_of = lake_head(con)
            if as_of is None:
                raise EmptyLake(f"the lake in {lake_dir} has no rows: run `recoup lake export` first")
        result = BuildResult(as_of, Path(tables_dir), shape=shape)
        for done, name in enumerate(wanted):
            if on_table:
                on_table(name, done, len(wanted))
            started = time.perf_counter()
            data = compute_table(con, name, as_of, shape)
            write_table(table_path(tables_dir, name), data)
            result.rows[name] = data.num_rows
            result.seconds[name] = time.perf_counter() - started
        if on_table:
            on_table("", len(wanted), len(wanted))
    finally:
        con.close()
    _record(result)
    return result


def _record(result: BuildResult) -> None:
    path = result.tables_dir / BUILD_FILE
    previous = read_build(result.tables_dir) or {}
    rows = dict(previous.get("rows", {}))
    rows.update(result.rows)
    shape = result.shape
    record = {
        "as_of": result.as_of.isoformat(),
        "rows": rows,
        "lake": {
            "signup_columns": sorted(shape.signup_columns) if shape else [],
            "payment_methods": bool(shape and shape.payment_methods),
        },
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def read_build(tables_dir: Path | str) -> dict[str, object] | None:
    """What the last build recorded (``as_of``, rows per table), or None before the first."""
    path = Path(tables_dir) / BUILD_FILE
    if not path.exists():
        return None
    data: dict[str, object] = json.loads(path.read_text())
    return data
