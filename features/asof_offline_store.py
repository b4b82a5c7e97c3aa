"""Feast's DuckDB offline store, with point-in-time joins run as DuckDB ASOF joins.

``AsofDuckDBOfflineStore`` is Feast's ``DuckDBOfflineStore`` (materialization, pulls, writes and
saved datasets are inherited unchanged) whose ``get_historical_features`` plans one DuckDB query:
the entity rows, then one ``ASOF LEFT JOIN`` per feature view on the view's join keys and
``entity.event_timestamp >= feature.event_timestamp``. It keeps Feast's semantics, which the tests
check against the stock store on the same data:

* a feature row counts for an entity row when its keys match and its timestamp is at or before the
  entity row's; the latest such row wins (ties broken by the created timestamp column, if any);
* with a TTL, a row older than ``entity timestamp - ttl`` gives nulls;
* every entity row comes back, once, even when several share keys and timestamp (the file/dask
  store drops those);
* columns are named as Feast names them (``view__feature`` with ``full_feature_names``), after the
  entity columns; on-demand views are computed on the joined columns.

Rows come back in the entity rows' order. The stock store's generic inequality join compares
every feature row of a key with every entity row of that key; the ASOF join does not, which makes a
million-row training set several times faster (``benchmarks/features.py``). Cases it does not plan
(an entity query given as SQL, a non-file source, ``filter_by_created_timestamp``) go to the stock
implementation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast.data_format import ParquetFormat
from feast.feature_view import FeatureView
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from feast.infra.offline_stores.file_source import FileSource, SavedDatasetFileStorage
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from feast.saved_dataset import SavedDatasetStorage
from feast.transformation.python_transformation import PythonTransformation
from feast.type_map import feast_value_type_to_pa
from pydantic import StrictStr

ROW = "__feast_row"


class AsofDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    type: StrictStr = "features.asof_offline_store.AsofDuckDBOfflineStore"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class _ViewPlan:
    view: FeatureView
    path: str
    timestamp_field: str
    created_field: str | None
    #: feature table key column -> entity rows column
    keys: dict[str, str]
    #: (column in the feature table, column in the result)
    features: list[tuple[str, str]]
    ttl: timedelta | None


@dataclass
class _Plan:
    entity_df: pd.DataFrame
    timestamp_column: str
    views: list[_ViewPlan]
    on_demand: list[OnDemandFeatureView]
    feature_refs: list[str]
    full_feature_names: bool
    metadata: RetrievalMetadata
    threads: int | None = None
    _sources: dict[str, str] = field(default_factory=dict)


def _plannable_source(source: Any) -> bool:
    """A parquet file (or directory) on the local file system, read as is."""
    if type(source) is not FileSource:
        return False
    if source.file_format is not None and not isinstance(source.file_format, ParquetFormat):
        return False
    return "://" not in source.path or source.path.startswith("file://")


def _plannable(feature_views: list[FeatureView], entity_df: Any, filter_by_created: bool) -> bool:
    if not isinstance(entity_df, pd.DataFrame) or filter_by_created:
        return False
    return all(_plannable_source(view.batch_source) for view in feature_views)


def _utc(column: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.dt.tz_localize("UTC") if column.dt.tz is None else column.dt.tz_convert("UTC")
    return pd.to_datetime(column, utc=True)


def _plan(
    feature_views: list[FeatureView],
    feature_refs: list[str],
    entity_df: pd.DataFrame,
    registry: BaseRegistry,
    project: str,
    full_feature_names: bool,
) -> _Plan:
    timestamp_column = infer_event_timestamp_from_entity_df(
        dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
    )
    entity_df = entity_df.copy(deep=False)
    entity_df[timestamp_column] = _utc(entity_df[timestamp_column])
    views = []
    for view in feature_views:
        source = view.batch_source
        assert isinstance(source, FileSource)
        prefix = view.projection.name_to_use()
        base = view.projection.name_alias or view.name
        reverse = {new: old for old, new in source.field_mapping.items()}
        wanted = [ref.split(":", 1)[1] for ref in feature_refs if ref.startswith(f"{prefix}:")]
        keys = view.projection.join_key_map or {e.name: e.name for e in view.entity_columns}
        features = [
            (reverse.get(name, name), f"{base}__{name}" if full_feature_names else name) for name in wanted
        ]
        views.append(
            _ViewPlan(
                view=view,
                path=source.path.removeprefix("file://"),
                timestamp_field=reverse.get(source.timestamp_field, source.timestamp_field),
                created_field=reverse.get(source.created_timestamp_column, source.created_timestamp_column)
                if source.created_timestamp_column
                else None,
                keys={reverse.get(k, k): v for k, v in keys.items()},
                features=features,
                ttl=view.ttl if view.ttl and view.ttl > timedelta(0) else None,
            )
        )
    on_demand = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
    stamps = entity_df[timestamp_column]
    metadata = RetrievalMetadata(
        features=feature_refs,
        keys=[c for c in entity_df.columns if c != timestamp_column],
        min_event_timestamp=stamps.min().to_pydatetime() if len(stamps) else None,
        max_event_timestamp=stamps.max().to_pydatetime() if len(stamps) else None,
    )
    return _Plan(entity_df, timestamp_column, views, on_demand, feature_refs, full_feature_names, metadata)


def _view_query(plan: _ViewPlan) -> str:
    keys = [f"{_quote(k)} AS __k{i}" for i, k in enumerate(plan.keys)]
    columns = [*keys, f"{_quote(plan.timestamp_field)} AS __ts"]
    columns += [f"{_quote(src)} AS {_quote(out)}" for src, out in plan.features]
    query = f"SELECT {', '.join(columns)} FROM read_parquet({_literal(plan.path)})"
    if plan.created_field:
        partition = ", ".join(_quote(k) for k in plan.keys)
        query += (
            f" QUALIFY row_number() OVER (PARTITION BY {partition}, {_quote(plan.timestamp_field)}"
            f" ORDER BY {_quote(plan.created_field)} DESC) = 1"
        )
    return query


def sql(plan: _Plan, entity_relation: str) -> str:
    """The point-in-time join of ``plan`` as one DuckDB query over the relation of entity rows."""
    ts = _quote(plan.timestamp_column)
    select = [f"e.{_quote(c)}" for c in plan.entity_df.columns]
    joins = []
    for i, view in enumerate(plan.views):
        alias = f"v{i}"
        on = [f"e.{_quote(entity)} = {alias}.__k{j}" for j, entity in enumerate(view.keys.values())]
        on.append(f"e.{ts} >= {alias}.__ts")
        joins.append(f"ASOF LEFT JOIN ({_view_query(view)}) {alias} ON {' AND '.join(on)}")
        fresh = None
        if view.ttl is not None:
            micros = int(view.ttl / timedelta(microseconds=1))
            fresh = f"{alias}.__ts >= e.{ts} - INTERVAL '{micros} microseconds'"
        for _, out in view.features:
            column = f"{alias}.{_quote(out)}"
            select.append(f"CASE WHEN {fresh} THEN {column} END AS {_quote(out)}" if fresh else column)
    return f"SELECT {', '.join(select)} FROM {entity_relation} e {' '.join(joins)} ORDER BY e.{_quote(ROW)}"


class _Columns(Mapping[str, Any]):
    """Columns of the joined table by name, turned into numpy arrays only when a transformation reads them."""

    def __init__(self, table: pa.Table, names: dict[str, str]) -> None:
        self._table = table
        self._names = names  # input name -> column of the table
        self._arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        column = self._names[name]
        if column not in self._arrays:
            self._arrays[column] = self._table.column(column).to_numpy()
        return self._arrays[column]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _apply_on_demand(table: pa.Table, plan: _Plan) -> pa.Table:
    """Append the requested on-demand features, computed on whole columns."""
    for odfv in plan.on_demand:
        prefix = odfv.projection.name_to_use()
        requested = [ref.split(":", 1)[1] for ref in plan.feature_refs if ref.startswith(f"{prefix}:")]
        if not requested:
            continue
        transformation = odfv.feature_transformation
        if isinstance(transformation, PythonTransformation) and not getattr(odfv, "singleton", False):
            names: dict[str, str] = {}
            for projection in odfv.source_feature_view_projections.values():
                for feature in projection.features:
                    full = f"{projection.name_to_use()}__{feature.name}"
                    name = full if full in table.column_names else feature.name
                    if name in table.column_names:
                        names[feature.name] = name
                        names[full] = name
            for request in odfv.source_request_sources.values():
                for f in request.schema:
                    names[f.name] = f.name
            outputs = transformation.udf(_Columns(table, names))
            types = {f.name: feast_value_type_to_pa(f.dtype.to_value_type()) for f in odfv.features}
            for name in requested:
                column = f"{prefix}__{name}" if plan.full_feature_names else name
                values = outputs[name]
                array = pa.array(values, from_pandas=True)
                table = table.append_column(column, array.cast(types[name]))
        else:
            transformed = odfv.transform_arrow(table, plan.full_feature_names)
            for name in requested:
                column = f"{prefix}__{name}" if plan.full_feature_names else name
                table = table.append_column(column, transformed[column])
    return table


class AsofRetrievalJob(RetrievalJob):
    """A training set planned as DuckDB ASOF joins; runs when its rows are asked for."""

    def __init__(self, plan: _Plan) -> None:
        super().__init__()
        self._plan = plan

    def _execute(self) -> pa.Table:
        plan = self._plan
        rows = pa.Table.from_pandas(plan.entity_df, preserve_index=False)
        rows = rows.append_column(ROW, pa.array(np.arange(rows.num_rows, dtype=np.int64)))
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'").fetchall()
            if plan.threads:
                con.execute(f"SET threads = {int(plan.threads)}").fetchall()
            name = f"entity_rows_{uuid.uuid4().hex[:8]}"
            con.register(name, rows)
            table = con.sql(sql(plan, name)).to_arrow_table()
        finally:
            con.close()
        return _apply_on_demand(table, plan)

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return self._execute()

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._execute().to_pandas()

    def to_df(self, validation_reference: Any = None, timeout: int | None = None) -> pd.DataFrame:
        # the base class copies the frame once more to reset an index that is already 0..n-1
        return self.to_arrow(validation_reference=validation_reference, timeout=timeout).to_pandas()

    def to_sql(self) -> str:
        return sql(self._plan, "entity_rows")

    @property
    def full_feature_names(self) -> bool:
        return self._plan.full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return []  # computed in _execute, on whole columns

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._plan.metadata

    def persist(
        self, storage: SavedDatasetStorage, allow_overwrite: bool = False, timeout: int | None = None
    ) -> None:
        if not isinstance(storage, SavedDatasetFileStorage):
            raise NotImplementedError("the ASOF offline store saves datasets to parquet files only")
        path = storage.file_options.uri
        import os

        if os.path.exists(path) and not allow_overwrite:
            from feast.errors import SavedDatasetLocationAlreadyExists

            raise SavedDatasetLocationAlreadyExists(location=path)
        pq.write_table(self.to_arrow(), path)


class _QueryJob(RetrievalJob):
    """Rows read from parquet by one DuckDB query (materialization's pulls)."""

    def __init__(self, query: str) -> None:
        super().__init__()
        self._query = query

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'").fetchall()
            return con.sql(self._query).to_arrow_table()
        finally:
            con.close()

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def to_sql(self) -> str:
        return self._query

    @property
    def full_feature_names(self) -> bool:
        return False

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return []

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return None

    def persist(
        self, storage: SavedDatasetStorage, allow_overwrite: bool = False, timeout: int | None = None
    ) -> None:
        raise NotImplementedError("pulls are not saved as datasets")


def _pull_query(
    data_source: Any,
    columns: list[str],
    timestamp_field: str,
    start: datetime | None,
    end: datetime | None,
) -> str | None:
    """The columns of a parquet file source between two instants, or None for other sources."""
    if not _plannable_source(data_source):
        return None
    path = data_source.path.removeprefix("file://")
    where = []
    for op, bound in ((">=", start), ("<=", end)):
        if bound is not None:
            instant = bound if bound.tzinfo else bound.replace(tzinfo=UTC)
            where.append(
                f"{_quote(timestamp_field)} {op} TIMESTAMPTZ {_literal(instant.astimezone(UTC).isoformat())}"
            )
    query = f"SELECT {', '.join(_quote(c) for c in columns)} FROM read_parquet({_literal(path)})"
    return query + (f" WHERE {' AND '.join(where)}" if where else "")


class AsofDuckDBOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store whose point-in-time joins are DuckDB ASOF joins.

    Materialization's pulls from parquet files are single DuckDB queries too (the latest row per
    entity in a time range, or every row in it).
    """

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: Any,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        columns = [*join_key_columns, *feature_name_columns, timestamp_field]
        if created_timestamp_column:
            columns.append(created_timestamp_column)
        query = _pull_query(data_source, columns, timestamp_field, start_date, end_date)
        if query is None:
            return DuckDBOfflineStore.pull_latest_from_table_or_query(
                config, data_source, join_key_columns, feature_name_columns, timestamp_field,
                created_timestamp_column, start_date, end_date,
            )  # fmt: skip
        order = [f"{_quote(timestamp_field)} DESC"]
        if created_timestamp_column:
            order.append(f"{_quote(created_timestamp_column)} DESC")
        partition = ", ".join(_quote(k) for k in join_key_columns) or "1"
        query += f" QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {', '.join(order)}) = 1"
        return _QueryJob(query)

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: Any,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        columns = [*join_key_columns, *feature_name_columns, timestamp_field]
        if created_timestamp_column:
            columns.append(created_timestamp_column)
        query = _pull_query(data_source, columns, timestamp_field, start_date, end_date)
        if query is None:
            return DuckDBOfflineStore.pull_all_from_table_or_query(
                config, data_source, join_key_columns, feature_name_columns, timestamp_field,
                created_timestamp_column, start_date, end_date,
            )  # fmt: skip
        return _QueryJob(query)

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        if kwargs or not _plannable(feature_views, entity_df, filter_by_created_timestamp):
            return DuckDBOfflineStore.get_historical_features(
                config=config,
                feature_views=feature_views,
                feature_refs=feature_refs,
                entity_df=entity_df,
                registry=registry,
                project=project,
                full_feature_names=full_feature_names,
                filter_by_created_timestamp=filter_by_created_timestamp,
                **kwargs,
            )
        assert isinstance(entity_df, pd.DataFrame)
        plan = _plan(feature_views, feature_refs, entity_df, registry, project, full_feature_names)
        return AsofRetrievalJob(plan)
