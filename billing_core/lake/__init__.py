"""The lake: the billing core's history as partitioned parquet, for the feature store and analysts.

:func:`export_lake` reads what the billing core recorded since its last run (the outbox, and the
tables read by id) and writes it as parquet under ``<lake>/<table>/<date|month>=<key>/``, every
row stamped with the time of the event it records, exactly once. :func:`read_table` and
:func:`connect` read it back (pyarrow, DuckDB). See ``docs/lake.md``.

This package imports pyarrow: import it inside the commands that need it.
"""

from __future__ import annotations

from billing_core.lake.errors import LakeAhead, LakeBusy, LakeError
from billing_core.lake.export import ExportResult, Position, export_lake, load_position
from billing_core.lake.read import connect, read_table, row_count
from billing_core.lake.schemas import TABLES, LakeTable

__all__ = [
    "TABLES",
    "ExportResult",
    "LakeAhead",
    "LakeBusy",
    "LakeError",
    "LakeTable",
    "Position",
    "connect",
    "export_lake",
    "load_position",
    "read_table",
    "row_count",
]
