"""The feature store's operations: register the repository, materialize, open the store.

    from features.config import FeatureStoreSettings
    from features.store import apply, materialize, open_repository

    settings = FeatureStoreSettings.from_env("data")
    store = open_repository(settings)
    apply(store)                      # register every object of features/repo, drop stale ones
    materialize(store, settings)      # the feature tables' new rows into the online store

Importing this module imports nothing heavy; each function imports feast when called.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from features.config import FeatureStoreSettings, open_store

if TYPE_CHECKING:
    from feast import FeatureStore

#: the repository's modules, in import order (each imports the ones before it)
REPO_MODULES = (
    "features.repo.entities",
    "features.repo.data_sources",
    "features.repo.feature_views",
    "features.repo.on_demand_feature_views",
    "features.repo.feature_services",
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def definitions(settings: FeatureStoreSettings) -> dict[str, ModuleType]:
    """The repository's modules, (re)imported so that their sources point at ``settings``' tables.

    The data sources read ``RECOUP_FEATURES_DIR`` when imported; this sets it while it imports, and
    re-imports the repository when an earlier import used another directory.
    """
    loaded = {name: sys.modules.get(name) for name in REPO_MODULES}
    sources = loaded["features.repo.data_sources"]
    stale = (
        sources is not None
        and Path(getattr(sources, "TABLES_DIR", "")).resolve() != settings.tables_dir.resolve()
    )
    modules: dict[str, ModuleType] = {}
    with settings.applied():
        for name in REPO_MODULES:
            module = loaded[name]
            if module is None:
                module = importlib.import_module(name)
            elif stale:
                module = importlib.reload(module)
            modules[name.rsplit(".", 1)[1]] = module
    return modules


def repository_objects(settings: FeatureStoreSettings) -> list[Any]:
    """Every Feast object of the repository, for ``settings``."""
    m = definitions(settings)
    return [
        *m["entities"].ENTITIES,
        *m["data_sources"].SOURCES,
        *m["feature_views"].VIEWS.values(),
        *m["on_demand_feature_views"].ON_DEMAND_VIEWS.values(),
        *m["feature_services"].SERVICES.values(),
    ]


def open_repository(settings: FeatureStoreSettings) -> FeatureStore:
    """The feature store, with the repository imported for ``settings`` (on-demand views need it)."""
    definitions(settings)
    return open_store(settings)


@dataclass
class ApplyResult:
    registered: dict[str, list[str]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)


def apply(store: FeatureStore, settings: FeatureStoreSettings) -> ApplyResult:
    """Register the repository's objects; delete registered objects it no longer defines."""
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView
    from feast.data_source import DataSource

    objects = repository_objects(settings)
    names = {(type(o).__name__, o.name) for o in objects}
    project = store.project
    registered: list[Any] = []
    with contextlib.suppress(Exception):  # an empty registry has no project yet
        registered = [
            *store.registry.list_feature_services(project),
            *store.registry.list_on_demand_feature_views(project),
            *store.registry.list_feature_views(project),
            *[e for e in store.registry.list_entities(project) if e.name != "__dummy"],
            *store.registry.list_data_sources(project),
        ]
    stale = [o for o in registered if (type(o).__name__, o.name) not in names]
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # Feast warns on every apply that on-demand views are experimental; they are used knowingly
        warnings.filterwarnings("ignore", "On demand feature view is an experimental feature", RuntimeWarning)
        store.apply(objects, objects_to_delete=stale, partial=False)
    result = ApplyResult(removed=sorted(f"{type(o).__name__} {o.name}" for o in stale))
    kinds = {
        "entities": Entity,
        "data sources": DataSource,
        "feature views": FeatureView,
        "on-demand feature views": OnDemandFeatureView,
        "feature services": FeatureService,
    }
    for label, kind in kinds.items():
        result.registered[label] = sorted(o.name for o in objects if isinstance(o, kind))
    return result


@dataclass
class MaterializeResult:
    end: datetime
    #: view -> (start, rows written)
    views: dict[str, tuple[datetime, int]] = field(default_factory=dict)
    seconds: float = 0.0


def build_instant(settings: FeatureStoreSettings) -> datetime | None:
    """The ``as_of`` of the last build of the feature tables (None before the first)."""
    from features.jobs.build import read_build

    record = read_build(settings.tables_dir)
    if not record:
        return None
    return datetime.fromisoformat(str(record["as_of"]))


def materialize(
    store: FeatureStore,
    settings: FeatureStoreSettings,
    *,
    end: datetime | None = None,
    full: bool = False,
    views: Iterable[str] | None = None,
    on_view: Callable[[str, int, int], None] | None = None,
) -> MaterializeResult:
    """Load the feature tables' rows up to ``end`` into the online store, view by view.

    Incremental: each view starts where its last materialization ended (everything, the first
    time, or with ``full``). ``end`` defaults to the tables' build instant: rows are never later.
    """
    import time

    import pyarrow.parquet as pq

    if end is None:
        end = build_instant(settings)
        if end is None:
            raise FileNotFoundError(
                f"no feature tables in {settings.tables_dir}: run `recoup features build` first"
            )
    started = time.perf_counter()
    wanted = list(views) if views is not None else [v.name for v in store.list_feature_views()]
    result = MaterializeResult(end=end)
    for done, name in enumerate(wanted):
        if on_view:
            on_view(name, done, len(wanted))
        view = store.get_feature_view(name)
        start = EPOCH if full or view.most_recent_end_time is None else view.most_recent_end_time
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        if start >= end:
            result.views[name] = (start, 0)
            continue
        path = view.batch_source.path  # type: ignore[union-attr]
        rows = 0
        if os.path.exists(path):
            rows = _latest_rows(pq.read_table(path, columns=[*view.join_keys, "event_timestamp"]), start, end)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            store.materialize(start_date=start, end_date=end, feature_views=[name])
        result.views[name] = (start, rows)
    if on_view:
        on_view("", len(wanted), len(wanted))
    result.seconds = time.perf_counter() - started
    return result


def _latest_rows(table: Any, start: datetime, end: datetime) -> int:
    """How many entities have a row in ``[start, end]`` (what materialization writes)."""
    import pyarrow.compute as pc

    stamps = table.column("event_timestamp")
    mask = pc.and_(pc.greater_equal(stamps, start), pc.less_equal(stamps, end))
    keys = table.drop_columns(["event_timestamp"]).filter(mask)
    return keys.group_by(keys.column_names).aggregate([]).num_rows if keys.num_columns else 0
