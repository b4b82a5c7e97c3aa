"""The lake as the feature jobs see it: DuckDB views, with the optional parts made explicit.

The jobs read the lake's tables by their names (``invoices``, ``payment_attempts``...) plus two
views this module adds:

* ``f_customers``: the lake's ``customers`` with ``email_domain`` and the signup context columns
  ``signup_channel``, ``signup_ip``, ``signup_device_id`` and ``signup_ip_country``. The lake exports
  the signup columns once the billing core records them; until then they are NULL here, and the
  device and IP velocity tables are empty.
* ``f_payment_methods``: one row per card (``payment_method_id``, ``customer_id``, ``brand``,
  ``bin``, ``exp_month``, ``exp_year``, ``country``, ``event_timestamp``), from a lake table
  ``payment_methods`` when there is one; empty otherwise (BIN velocity and card expiry are then
  empty or null).

:func:`prepare` works on any DuckDB connection whose tables carry the lake's names and columns,
so tests build tiny lakes by hand; a lake table that is missing becomes an empty view with the
lake's declared schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

#: optional columns of the lake's customers table, and their DuckDB types
SIGNUP_COLUMNS = {
    "signup_channel": "VARCHAR",
    "signup_ip": "VARCHAR",
    "signup_device_id": "VARCHAR",
    "signup_ip_country": "VARCHAR",
}

#: the payment methods view the jobs read; a lake table of this name may carry a subset
PAYMENT_METHOD_COLUMNS = {
    "payment_method_id": "BIGINT",
    "customer_id": "BIGINT",
    "brand": "VARCHAR",
    "bin": "VARCHAR",
    "exp_month": "INTEGER",
    "exp_year": "INTEGER",
    "country": "VARCHAR",
    "event_timestamp": "TIMESTAMPTZ",
}


@dataclass(frozen=True)
class LakeShape:
    """Which optional parts the lake has."""

    signup_columns: frozenset[str]
    payment_methods: bool

    @property
    def devices(self) -> bool:
        return "signup_device_id" in self.signup_columns

    @property
    def ips(self) -> bool:
        return "signup_ip" in self.signup_columns


def _relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    return {str(r[0]) for r in rows}


def _columns(con: duckdb.DuckDBPyConnection, name: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [name]
    ).fetchall()
    return {str(r[0]) for r in rows}


def prepare(con: duckdb.DuckDBPyConnection) -> LakeShape:
    """Add ``f_customers`` and ``f_payment_methods`` (and empty views for missing lake tables)."""
    from billing_core.lake.schemas import TABLES

    con.execute("SET TimeZone = 'UTC'")
    present = _relations(con)
    for name, table in TABLES.items():
        if name not in present:
            empty: Any = table.schema.empty_table()
            con.register(f"_{name}_missing", empty)
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _{name}_missing")

    have = _columns(con, "customers")
    signup = frozenset(c for c in SIGNUP_COLUMNS if c in have)
    extra = ", ".join(
        f"{c}" if c in signup else f"CAST(NULL AS {t}) AS {c}" for c, t in SIGNUP_COLUMNS.items()
    )
    con.execute(
        "CREATE OR REPLACE VIEW f_customers AS SELECT customer_id, email, currency, country, timezone,"
        " created_at, event_timestamp,"
        " lower(nullif(split_part(email, '@', 2), '')) AS email_domain, " + extra + " FROM customers"
    )

    methods = "payment_methods" in present
    if methods:
        have = _columns(con, "payment_methods")
        if "id" in have and "payment_method_id" not in have:
            have = have | {"payment_method_id"}
            aliased = {"payment_method_id": "id AS payment_method_id"}
        else:
            aliased = {}
        cols = ", ".join(
            aliased.get(c, c) if c in have else f"CAST(NULL AS {t}) AS {c}"
            for c, t in PAYMENT_METHOD_COLUMNS.items()
        )
        con.execute(f"CREATE OR REPLACE VIEW f_payment_methods AS SELECT {cols} FROM payment_methods")
    else:
        cols = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in PAYMENT_METHOD_COLUMNS.items())
        con.execute(f"CREATE OR REPLACE VIEW f_payment_methods AS SELECT {cols} WHERE false")
    return LakeShape(signup, methods)


def open_lake(
    lake_dir: Path | str, *, threads: int | None = None
) -> tuple[duckdb.DuckDBPyConnection, LakeShape]:
    """A DuckDB connection over the lake's committed files, prepared for the jobs."""
    from billing_core.lake import connect

    con = connect(lake_dir)
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    return con, prepare(con)


def lake_head(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The latest instant any lake row records: the feature tables stop there."""
    from billing_core.lake.schemas import TABLES

    parts = " UNION ALL ".join(f"SELECT max(event_timestamp) AS t FROM {name}" for name in TABLES)
    rows = con.execute(f"SELECT max(t) FROM ({parts})").fetchall()
    value: datetime | None = rows[0][0]
    return value
