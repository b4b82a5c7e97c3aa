"""Reading the lake: a pyarrow table per lake table, or DuckDB views over the parquet files.

Both read only the files of committed export runs (see ``_position.json``), so a reader never
sees what an interrupted run left behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from billing_core.errors import InvalidInput
from billing_core.lake.files import committed_files
from billing_core.lake.schemas import TABLES, LakeTable

if TYPE_CHECKING:
    import duckdb


def lake_table(name: str) -> LakeTable:
    try:
        return TABLES[name]
    except KeyError:
        raise InvalidInput("name", "one of " + ", ".join(TABLES), name) from None


def read_table(lake_dir: Path | str, name: str, *, columns: list[str] | None = None) -> pa.Table:
    """Every committed row of the lake table ``name``, with its declared schema."""
    table = lake_table(name)
    schema = table.schema if columns is None else pa.schema([table.schema.field(c) for c in columns])
    parts = [
        pq.read_table(path, columns=columns, schema=table.schema)
        for path in committed_files(Path(lake_dir), table)
    ]
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts).cast(schema)


def row_count(lake_dir: Path | str, name: str) -> int:
    """How many committed rows the lake table ``name`` has (from the files' footers)."""
    return sum(
        pq.ParquetFile(path).metadata.num_rows for path in committed_files(Path(lake_dir), lake_table(name))
    )


def connect(lake_dir: Path | str, conn: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per lake table over its committed parquet files.

    Views carry the declared columns (the partition directories add none); instants are
    ``TIMESTAMP WITH TIME ZONE`` and the session's time zone is UTC. Call again after an export
    to see its files.
    """
    import duckdb

    con = conn if conn is not None else duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, table in TABLES.items():
        paths = committed_files(Path(lake_dir), table)
        if paths:
            listed = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
            con.execute(
                f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{listed}], hive_partitioning = false)"
            )
        else:
            empty: Any = table.schema.empty_table()
            con.register(f"_{name}_empty", empty)
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _{name}_empty")
    return con
