"""Benchmark: point-in-time training sets, materialization and online lookups through Feast.

    uv run python benchmarks/features.py --rows 1000000

Writes synthetic feature tables with the real schemas of the churn model's service (``churn_v1``:
customer_payment, usage_trend, churn_signals and the tenure on-demand view, 50 features) for
``--rows / 10`` customers with ``--rows-per-entity`` rows each, registers Recoup's repository in a
temporary Feast store (DuckDB offline store with ASOF joins, SQLite online store), then measures:

* ``pit_*``: a training set of ``--rows`` entity rows through ``get_historical_features`` on the
  ``churn_v1`` service (``features.training.training_set``), to a pandas DataFrame;
* ``duckdb_asof_seconds``: the same join written directly as DuckDB ASOF joins over the same files,
  to a pandas DataFrame (the floor Feast is compared with);
* ``stock_pit_seconds`` (with ``--stock``): the same training set through Feast's stock DuckDB
  offline store;
* ``materialize_rows_per_s``: rows written to the online store per second (latest row per entity
  of the three views);
* ``online_*_ms``: ``get_online_features`` on ``churn_v1`` (``features.training.online_features``)
  for one entity and for 100 entities, in a process that holds no training frame and has frozen
  its startup objects out of the garbage collector (``gc.freeze()``, as a serving worker does
  after loading).

Targets: 1,000,000 rows and at least 40 features in under 30 s on 2 cores, within twice the direct
ASOF join; one entity online in under 2 ms at p99. Progress goes to stderr; the last line of
stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# This file is named like the package it measures: drop its own directory from the import path, or
# `import features` would import this script.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]

SERVICE = "churn_v1"
VIEWS = ("customer_payment", "usage_trend", "churn_signals")
START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_S = 365 * 86_400


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def synthetic_table(name: str, customers: int, per_entity: int, rng: np.random.Generator) -> pa.Table:
    """A feature table of the declared schema: ``per_entity`` rows per customer, unique times."""
    from features.jobs.schemas import TABLES

    table = TABLES[name]
    n = customers * per_entity
    keys = np.repeat(np.arange(1, customers + 1, dtype=np.int64), per_entity)
    # distinct seconds per customer: a sorted sample without repeats, in [0, SPAN_S)
    offsets = np.sort(rng.integers(0, SPAN_S // per_entity, size=(customers, per_entity)), axis=1)
    offsets = (offsets + np.arange(per_entity) * (SPAN_S // per_entity)).reshape(-1)
    stamps = (np.datetime64(START.replace(tzinfo=None), "us") + offsets.astype("timedelta64[s]")).astype(
        "datetime64[us]"
    )
    columns: dict[str, Any] = {
        "customer_id": keys,
        "event_timestamp": pa.array(stamps, type=pa.timestamp("us", tz="UTC")),
    }
    for c in table.columns:
        lo = 0 if c.lo is None else c.lo
        hi = (lo + 1_000) if c.hi is None else c.hi
        if pa.types.is_integer(c.type):
            values: Any = rng.integers(int(lo), int(hi) + 1, size=n)
        elif pa.types.is_floating(c.type):
            values = rng.uniform(lo, hi, size=n)
        elif pa.types.is_boolean(c.type):
            values = rng.random(n) < 0.5
        elif pa.types.is_string(c.type):
            values = np.array(["USD", "EUR", "GBP", "JPY"], dtype=object)[rng.integers(0, 4, size=n)]
        else:
            values = stamps - rng.integers(0, 86_400 * 400, size=n).astype("timedelta64[s]")
        columns[c.name] = pa.array(values).cast(c.type)
    return pa.table(columns).cast(table.schema)


def entity_rows(rows: int, customers: int, rng: np.random.Generator) -> Any:
    import pandas as pd

    offsets = rng.integers(0, SPAN_S + 30 * 86_400, size=rows)
    stamps = pd.to_datetime(
        np.datetime64(START.replace(tzinfo=None), "s") + offsets.astype("timedelta64[s]"), utc=True
    )
    return pd.DataFrame(
        {"customer_id": rng.integers(1, customers + 1, size=rows).astype(np.int64), "event_timestamp": stamps}
    )


def direct_asof(tables_dir: Path, frame: Any, threads: int | None) -> Any:
    """The same point-in-time join, written by hand as DuckDB ASOF joins; a pandas DataFrame."""
    import duckdb

    from features.jobs.schemas import TABLES

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'").fetchall()
    if threads:
        con.execute(f"SET threads = {threads}").fetchall()
    rows = pa.Table.from_pandas(frame, preserve_index=False)
    rows = rows.append_column("__row", pa.array(np.arange(rows.num_rows)))
    con.register("entity_rows", rows)
    select, joins = ["e.customer_id", "e.event_timestamp"], []
    for i, name in enumerate(VIEWS):
        cols = TABLES[name].feature_names
        path = tables_dir / f"{name}.parquet"
        inner = ", ".join(["customer_id", "event_timestamp AS ts", *cols])
        joins.append(
            f"ASOF LEFT JOIN (SELECT {inner} FROM read_parquet('{path}')) v{i}"
            f" ON e.customer_id = v{i}.customer_id AND e.event_timestamp >= v{i}.ts"
        )
        select += [f"v{i}.{c}" for c in cols]
    select.append("(epoch_us(e.event_timestamp) - epoch_us(v0.signup_at)) / 86400e6 AS tenure_days")
    query = f"SELECT {', '.join(select)} FROM entity_rows e {' '.join(joins)} ORDER BY e.__row"
    result = con.sql(query).to_arrow_table().to_pandas()
    con.close()
    return result


def percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(samples) * 1000, q)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="entity rows of the training set")
    parser.add_argument("--rows-per-entity", type=int, default=10, help="feature rows per customer and table")
    parser.add_argument("--online-runs", type=int, default=500, help="online lookups timed per size")
    parser.add_argument("--stock", action="store_true", help="also time Feast's stock DuckDB offline store")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument(
        "--online",
        default="",
        help="online store URL, e.g. redis://127.0.0.1:6379/15 (default: SQLite in --dir)",
    )
    args = parser.parse_args()

    customers = max(args.rows // 10, 1)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="recoup-features-") as tmp:
        work = args.dir or Path(tmp)
        features_dir = work / "features"
        tables_dir = features_dir / "tables"
        tables_dir.mkdir(parents=True, exist_ok=True)
        os.environ["RECOUP_FEATURES_DIR"] = str(features_dir)

        log(
            f"writing synthetic tables: {customers:,} customers x {args.rows_per_entity} rows x {len(VIEWS)} tables"
        )
        feature_rows = 0
        for name in VIEWS:
            table = synthetic_table(name, customers, args.rows_per_entity, rng)
            pq.write_table(
                table, tables_dir / f"{name}.parquet", compression="zstd", row_group_size=256 * 1024
            )
            feature_rows += table.num_rows
        frame = entity_rows(args.rows, customers, rng)

        log("importing feast and registering the repository")
        from features.config import FeatureStoreSettings
        from features.store import apply, materialize, open_repository
        from features.training import online_features, training_set

        env = {"RECOUP_FEATURES_DIR": str(features_dir), "RECOUP_FEAST_ONLINE": args.online}
        if args.online:  # a project of its own, removed at the end
            env["RECOUP_FEAST_PROJECT"] = f"bench_{os.getpid()}"
        settings = FeatureStoreSettings.from_env(work, env=env)
        store = open_repository(settings)
        apply(store, settings)
        service = store.get_feature_service(SERVICE)
        n_features = sum(len(p.features) for p in service.feature_view_projections)

        log(f"training set: {args.rows:,} rows, {n_features} features through get_historical_features")
        training_set(store, SERVICE, frame.head(1_000))  # warm: registry, imports
        started = time.perf_counter()
        result = training_set(store, SERVICE, frame)
        pit_seconds = time.perf_counter() - started
        assert len(result) == args.rows, (len(result), args.rows)

        log("the same join as direct DuckDB ASOF joins")
        direct_asof(tables_dir, frame.head(1_000), args.threads)
        started = time.perf_counter()
        direct = direct_asof(tables_dir, frame, args.threads)
        asof_seconds = time.perf_counter() - started
        assert len(direct) == args.rows
        mismatch = int(
            (
                ~np.isclose(
                    result["tenure_days"].to_numpy(float),
                    direct["tenure_days"].to_numpy(float),
                    equal_nan=True,
                )
            ).sum()
        )

        stock_seconds = None
        if args.stock:
            log("the same training set through Feast's stock DuckDB offline store")
            stock_settings = FeatureStoreSettings.from_env(
                work, env={**env, "RECOUP_FEAST_OFFLINE": "duckdb"}
            )
            stock = open_repository(stock_settings)
            started = time.perf_counter()
            training_set(stock, SERVICE, frame)
            stock_seconds = round(time.perf_counter() - started, 3)

        log("materializing the three views into SQLite")
        end = START + timedelta(seconds=SPAN_S)
        started = time.perf_counter()
        done = materialize(store, settings, end=end, full=True, views=list(VIEWS))
        materialize_seconds = time.perf_counter() - started
        written = sum(rows for _, rows in done.views.values())

        log(f"online lookups: {args.online_runs} x 1 entity, {args.online_runs // 5} x 100 entities")
        # as a serving process: no training frames in memory, startup objects frozen out of the GC
        del result, direct, frame
        gc.collect()
        gc.freeze()
        at = end
        one, hundred = [], []
        ids = rng.integers(1, customers + 1, size=args.online_runs + 100)
        for i in range(20):
            online_features(store, SERVICE, [{"customer_id": int(ids[i])}], at=at)
        for i in range(args.online_runs):
            started = time.perf_counter()
            online_features(store, SERVICE, [{"customer_id": int(ids[i])}], at=at)
            one.append(time.perf_counter() - started)
        for _ in range(max(args.online_runs // 5, 5)):
            batch = [{"customer_id": int(c)} for c in rng.integers(1, customers + 1, size=100)]
            started = time.perf_counter()
            online_features(store, SERVICE, batch, at=at)
            hundred.append(time.perf_counter() - started)
        if args.online:
            store.teardown()

    report = {
        "rows": args.rows,
        "customers": customers,
        "feature_rows": feature_rows,
        "features": n_features,
        "pit_rows": args.rows,
        "pit_seconds": round(pit_seconds, 3),
        "pit_rows_per_s": round(args.rows / pit_seconds),
        "duckdb_asof_seconds": round(asof_seconds, 3),
        "pit_over_asof": round(pit_seconds / asof_seconds, 2),
        "stock_pit_seconds": stock_seconds,
        "tenure_mismatches": mismatch,
        "materialize_rows": written,
        "materialize_seconds": round(materialize_seconds, 3),
        "materialize_rows_per_s": round(written / materialize_seconds),
        "online_p50_ms": percentile_ms(one, 50),
        "online_p99_ms": percentile_ms(one, 99),
        "online_100_p50_ms": percentile_ms(hundred, 50),
        "online_100_p99_ms": percentile_ms(hundred, 99),
        "online_store": settings.online_kind,
        "cores": os.cpu_count(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
