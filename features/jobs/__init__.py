"""The jobs that compute Recoup's feature tables from the lake, with DuckDB SQL.

``schemas`` declares every table (keys, columns, types, ranges); ``lake`` prepares the lake's
DuckDB views; ``customers``, ``invoices`` and ``fraud`` hold one query per table; ``build`` runs
them and writes one parquet file per table.
"""

from __future__ import annotations

from features.jobs.build import BuildResult, EmptyLake, build_tables, compute_table, read_build, table_path

__all__ = ["BuildResult", "EmptyLake", "build_tables", "compute_table", "read_build", "table_path"]
