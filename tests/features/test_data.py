"""Data tests on every feature table built from a small real world (book, billing, dunning, lake).

Schema and types as declared, nulls only where allowed, values in range, one row per entity and
instant, nothing stamped after the build instant; and the strongest leakage test there is: every
table built from the lake cut at an earlier instant equals the full table's rows up to that
instant, so no row depends on anything recorded after its own timestamp.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from billing_core.lake import connect
from billing_core.lake.schemas import TABLES as LAKE_TABLES
from features.jobs import compute_table, read_build, table_path
from features.jobs.lake import prepare
from features.jobs.schemas import TABLES
from tests.features.conftest import World

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tables(built: tuple[World, Path]) -> dict[str, object]:
    _world, features_dir = built
    return {name: pq.read_table(table_path(features_dir / "tables", name)) for name in TABLES}


@pytest.mark.parametrize("name", list(TABLES))
def test_schema_types_and_nulls(name: str, tables: dict[str, object]) -> None:
    data = tables[name]
    declared = TABLES[name].schema
    assert data.schema.names == declared.names  # type: ignore[attr-defined]
    for field in declared:
        column = data.column(field.name)  # type: ignore[attr-defined]
        assert column.type == field.type, (name, field.name)
        if not field.nullable:
            assert column.null_count == 0, (name, field.name)


@pytest.mark.parametrize("name", list(TABLES))
def test_ranges(name: str, tables: dict[str, object]) -> None:
    data = tables[name]
    for column in TABLES[name].columns:
        values = data.column(column.name)  # type: ignore[attr-defined]
        if (column.lo is None and column.hi is None) or values.null_count == len(values):
            continue
        low, high = pc.min(values).as_py(), pc.max(values).as_py()
        if isinstance(low, float):
            assert not np.isnan(low), (name, column.name)
            assert not np.isnan(high), (name, column.name)
        if column.lo is not None:
            assert low >= column.lo - 1e-9, (name, column.name, low)
        if column.hi is not None:
            assert high <= column.hi + 1e-9, (name, column.name, high)


@pytest.mark.parametrize("name", list(TABLES))
def test_one_row_per_entity_and_instant_none_after_the_build(
    name: str, tables: dict[str, object], built: tuple[World, Path]
) -> None:
    _, features_dir = built
    as_of = pd.Timestamp(str(read_build(features_dir / "tables")["as_of"]))  # type: ignore[index]
    frame = tables[name].to_pandas()  # type: ignore[attr-defined]
    keys = TABLES[name].key_names
    assert not frame.duplicated([*keys, "event_timestamp"]).any()
    if len(frame):
        assert frame["event_timestamp"].max() <= as_of


def test_the_real_world_fills_the_tables_it_can(tables: dict[str, object]) -> None:
    """Tables whose inputs the lake has are not empty (a book's customers carry no signup device or IP)."""
    waiting = {"device_velocity", "ip_velocity"}
    for name in TABLES:
        rows = tables[name].num_rows  # type: ignore[attr-defined]
        assert (rows == 0) == (name in waiting), (name, rows)


def test_a_customer_row_exists_from_signup(tables: dict[str, object], world: World) -> None:
    payment = tables["customer_payment"].to_pandas()  # type: ignore[attr-defined]
    first = payment.groupby("customer_id")["event_timestamp"].min()
    customers = world.query("SELECT COUNT(*) FROM customers")[0][0]
    assert len(first) == customers
    assert (first == payment.groupby("customer_id")["signup_at"].min()).all()


def _cut_lake(lake: Path, cut: pd.Timestamp) -> duckdb.DuckDBPyConnection:
    """The lake as it was at ``cut``: every table keeps the rows stamped at or before it."""
    full = connect(lake)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'").fetchall()
    for name in LAKE_TABLES:
        data = full.sql(
            f"SELECT * FROM {name} WHERE event_timestamp <= ?", params=[cut.to_pydatetime()]
        ).to_arrow_table()
        con.register(f"_{name}_cut", data)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_cut").fetchall()
    full.close()
    return con


@pytest.mark.parametrize("days", [4, 17, 33])
def test_no_row_depends_on_what_came_after_it(days: int, world: World, tables: dict[str, object]) -> None:
    cut = pd.Timestamp(world.end) - pd.Timedelta(days=39 - days) + pd.Timedelta(hours=5)
    con = _cut_lake(world.lake, cut)
    shape = prepare(con)
    for name in TABLES:
        early = compute_table(con, name, cut.to_pydatetime(), shape).to_pandas()
        full = tables[name].to_pandas()  # type: ignore[attr-defined]
        full = full[full["event_timestamp"] <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(early, full, check_exact=False, rtol=1e-9, obj=name)
    con.close()


def test_rebuilding_gives_the_same_tables(
    built: tuple[World, Path], tables: dict[str, object], tmp_path: Path
) -> None:
    from features.jobs import build_tables

    world, features_dir = built
    as_of = pd.Timestamp(str(read_build(features_dir / "tables")["as_of"]))  # type: ignore[index]
    build_tables(world.lake, tmp_path, as_of=as_of.to_pydatetime(), names=["customer_payment", "usage_trend"])
    for name in ("customer_payment", "usage_trend"):
        again = pq.read_table(table_path(tmp_path, name))
        assert again.equals(tables[name])  # type: ignore[arg-type]


def test_as_of_defaults_to_the_lakes_latest_event(built: tuple[World, Path]) -> None:
    world, features_dir = built
    as_of = pd.Timestamp(str(read_build(features_dir / "tables")["as_of"]))  # type: ignore[index]
    latest = world.query("SELECT MAX(occurred_at) FROM outbox")[0][0]
    assert abs(as_of - pd.Timestamp(latest, tz="UTC")) < timedelta(days=2)
