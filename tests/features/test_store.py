"""End to end on a small real world: the repository applied, the tables materialized, a training set
per feature service through ``get_historical_features``, and online values that equal the offline
ones for the same entity and instant."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore

from features.config import FeatureStoreSettings
from features.jobs import read_build
from features.jobs.schemas import TABLES
from features.store import apply, materialize, open_repository
from features.training import ENTITY_COLUMNS, entity_rows, online_features, same_value, training_set
from tests.features.conftest import World

pytestmark = pytest.mark.slow
SERVICES = ["dunning_v1", "churn_v1", "fraud_v1", "disputes_v1"]


@pytest.fixture(scope="module")
def repo(
    built: tuple[World, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FeatureStore, FeatureStoreSettings, World]]:
    world, features_dir = built
    # a store of its own (registry, online database) over the built tables
    own = tmp_path_factory.mktemp("store")
    (own / "tables").symlink_to(features_dir / "tables")
    settings = world.settings(own)
    store = open_repository(settings)
    apply(store, settings)
    materialize(store, settings)
    return store, settings, world


def build_instant(settings: FeatureStoreSettings) -> datetime:
    return datetime.fromisoformat(str(read_build(settings.tables_dir)["as_of"]))  # type: ignore[index]


def test_apply_registers_the_versioned_services(
    repo: tuple[FeatureStore, FeatureStoreSettings, World],
) -> None:
    store, settings, _ = repo
    assert sorted(s.name for s in store.list_feature_services()) == sorted(SERVICES)
    assert {v.name for v in store.list_feature_views()} == set(TABLES)
    assert {v.name for v in store.list_on_demand_feature_views()} == {
        "customer_request", "dunning_request", "invoice_request", "fraud_request",
    }  # fmt: skip
    again = apply(store, settings)  # idempotent
    assert again.removed == []


def test_apply_removes_what_the_repository_no_longer_defines(
    repo: tuple[FeatureStore, FeatureStoreSettings, World], tmp_path: Path
) -> None:
    from feast import FeatureService

    _, _settings, world = repo
    own = world.settings(tmp_path)
    store = open_repository(own)
    apply(store, own)
    store.apply([FeatureService(name="churn_v0", features=[store.get_feature_view("usage_trend")])])
    result = apply(store, own)
    assert result.removed == ["FeatureService churn_v0"]
    assert "churn_v0" not in {s.name for s in store.list_feature_services()}


@pytest.mark.parametrize("service", SERVICES)
def test_a_training_set_per_service(
    service: str, repo: tuple[FeatureStore, FeatureStoreSettings, World]
) -> None:
    store, _settings, world = repo
    spine = entity_rows(service, world.lake)
    assert len(spine) > 0
    frame = training_set(store, service, spine)
    assert len(frame) == len(spine)
    projections = store.get_feature_service(service).feature_view_projections
    features = {f.name for p in projections for f in p.features}
    assert features <= set(frame.columns)
    for column in ENTITY_COLUMNS[service]:
        assert column in frame.columns
    # every view the lake can feed gives values (device, IP and BIN views wait for lake columns)
    waiting = {"device_velocity", "ip_velocity", "bin_velocity", "bin_realtime"}
    for projection in projections:
        if projection.name not in waiting:
            names = [f.name for f in projection.features if f.name != "signup_channel"]
            assert frame[names].notna().any().any(), (service, projection.name)


def test_training_rows_are_the_tables_rows_as_of_each_instant(
    repo: tuple[FeatureStore, FeatureStoreSettings, World],
) -> None:
    """A pandas merge_asof over the raw table gives the same values as the training set."""
    store, settings, world = repo
    spine = entity_rows("churn_v1", world.lake)
    frame = training_set(store, "churn_v1", spine)
    table = pd.read_parquet(settings.tables_dir / "customer_payment.parquet")
    left = spine.assign(event_timestamp=pd.to_datetime(spine["event_timestamp"], utc=True)).sort_values(
        "event_timestamp"
    )
    table["event_timestamp"] = pd.to_datetime(table["event_timestamp"], utc=True)
    expected = pd.merge_asof(
        left, table.sort_values("event_timestamp"), on="event_timestamp", by="customer_id"
    )
    merged = frame.merge(expected, on=["customer_id", "event_timestamp"], suffixes=("", "_expected"))
    assert len(merged) == len(spine)
    for column in ("open_balance_minor", "mrr_minor", "late_ratio_90d", "failed_attempts_30d"):
        assert np.allclose(
            merged[column].to_numpy(float), merged[f"{column}_expected"].to_numpy(float), equal_nan=True
        )


def _compare(store: FeatureStore, service: str, rows: list[dict[str, Any]], when: datetime) -> int:
    entity = pd.DataFrame(rows)
    entity["event_timestamp"] = pd.Timestamp(when)
    offline = training_set(store, service, entity).reset_index(drop=True)
    online = online_features(store, service, rows, at=when)
    names = [f.name for p in store.get_feature_service(service).feature_view_projections for f in p.features]
    checked = 0
    for i in range(len(rows)):
        for name in names:
            assert same_value(offline.loc[i, name], online[name][i]), (
                service,
                rows[i],
                name,
                offline.loc[i, name],
                online[name][i],
            )
            checked += 1
    return checked


def test_offline_and_online_values_agree(repo: tuple[FeatureStore, FeatureStoreSettings, World]) -> None:
    store, settings, world = repo
    when = build_instant(settings)
    rng = np.random.default_rng(1)
    checked = 0
    for service in SERVICES:
        spine = entity_rows(service, world.lake)
        picks = spine.iloc[rng.choice(len(spine), size=min(12, len(spine)), replace=False)]
        rows = [
            {
                c: (None if pd.isna(r[c]) else r[c].item() if hasattr(r[c], "item") else r[c])
                for c in ENTITY_COLUMNS[service]
            }
            for _, r in picks.iterrows()
        ]
        if service == "fraud_v1":
            for row, amount in zip(rows, picks["requested_amount_minor"], strict=True):
                row["requested_amount_minor"] = int(amount)
        checked += _compare(store, service, rows, when)
    assert checked > 500


def test_materialize_is_incremental(repo: tuple[FeatureStore, FeatureStoreSettings, World]) -> None:
    store, settings, _ = repo
    again = materialize(store, settings)
    assert all(rows == 0 for _, rows in again.views.values())
    end = build_instant(settings)
    assert all(store.get_feature_view(name).most_recent_end_time == end for name in TABLES)


def test_an_earlier_materialization_serves_earlier_values(
    repo: tuple[FeatureStore, FeatureStoreSettings, World], tmp_path: Path
) -> None:
    """Materialized up to an instant, the online store answers as of that instant."""
    _, settings, world = repo
    own = world.settings(tmp_path)
    (tmp_path / "tables").symlink_to(settings.tables_dir)
    store = open_repository(own)
    apply(store, own)
    when = build_instant(settings) - timedelta(days=9, hours=5)
    materialize(
        store,
        own,
        end=when,
        views=["customer_payment", "dunning_context", "invoice_context", "customer_realtime"],
    )
    spine = entity_rows("dunning_v1", world.lake)
    spine = spine[spine["event_timestamp"] <= pd.Timestamp(when)]
    rows = [
        {"invoice_id": int(r.invoice_id), "customer_id": int(r.customer_id)}
        for r in spine.tail(10).itertuples()
    ]
    assert _compare(store, "dunning_v1", rows, when) > 100
