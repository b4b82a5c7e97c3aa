"""The Redis online store, selected by configuration alone (``RECOUP_FEAST_ONLINE=redis://...``).

Runs when ``RECOUP_TEST_REDIS_URL`` points at a server (``redis://127.0.0.1:6379/15``); each test
uses a project of its own and removes its keys afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore

from features.config import FeatureStoreSettings, redis_connection_string
from features.jobs import read_build
from features.store import apply, materialize, open_repository
from features.training import ENTITY_COLUMNS, entity_rows
from tests.features.conftest import World
from tests.features.test_store import _compare

REDIS_URL = os.environ.get("RECOUP_TEST_REDIS_URL", "")


def test_the_redis_url_selects_the_redis_configuration(tmp_path: Path) -> None:
    settings = FeatureStoreSettings.from_env(
        tmp_path, env={"RECOUP_FEAST_ONLINE": "redis://:s3cret@cache.internal:6380/4"}
    )
    assert settings.online_kind == "redis"
    assert settings.yaml_path.name == "feature_store.redis.yaml"
    assert settings.environment()["RECOUP_FEAST_REDIS"] == "cache.internal:6380,db=4,password=s3cret"
    assert redis_connection_string("rediss://h") == "h:6379,ssl=true"
    default = FeatureStoreSettings.from_env(tmp_path, env={})
    assert default.online_kind == "sqlite"
    assert default.yaml_path.name == "feature_store.yaml"
    assert default.environment()["RECOUP_FEAST_ONLINE_PATH"] == str(
        (tmp_path / "features" / "online.db").resolve()
    )


@pytest.mark.parametrize("bad", ["memcached://x", "redis://", "redis://h:1/zero"])
def test_bad_online_settings_are_named(tmp_path: Path, bad: str) -> None:
    from features.config import FeatureStoreConfigError

    with pytest.raises(FeatureStoreConfigError, match="RECOUP_FEAST_ONLINE"):
        FeatureStoreSettings.from_env(tmp_path, env={"RECOUP_FEAST_ONLINE": bad})


@pytest.fixture
def redis_store(
    built: tuple[World, Path], tmp_path: Path
) -> Iterator[tuple[FeatureStore, FeatureStoreSettings, World]]:
    if not REDIS_URL:
        pytest.skip("RECOUP_TEST_REDIS_URL is not set")
    world, features_dir = built
    (tmp_path / "tables").symlink_to(features_dir / "tables")
    project = f"recoup_test_{uuid.uuid4().hex[:10]}"
    settings = world.settings(tmp_path, RECOUP_FEAST_ONLINE=REDIS_URL, RECOUP_FEAST_PROJECT=project)
    store = open_repository(settings)
    assert store.config.online_store.type == "redis"
    apply(store, settings)
    try:
        yield store, settings, world
    finally:
        store.teardown()


@pytest.mark.slow
def test_redis_serves_what_the_offline_store_says(
    redis_store: tuple[FeatureStore, FeatureStoreSettings, World],
) -> None:
    store, settings, world = redis_store
    materialize(store, settings)
    when = datetime.fromisoformat(str(read_build(settings.tables_dir)["as_of"]))  # type: ignore[index]
    rng = np.random.default_rng(4)
    checked = 0
    for service in ("dunning_v1", "churn_v1"):
        spine = entity_rows(service, world.lake)
        picks = spine.iloc[rng.choice(len(spine), size=10, replace=False)]
        rows = [{c: int(r[c]) for c in ENTITY_COLUMNS[service]} for _, r in picks.iterrows()]
        checked += _compare(store, service, rows, when)
    assert checked > 300


@pytest.mark.slow
def test_push_reaches_redis(redis_store: tuple[FeatureStore, FeatureStoreSettings, World]) -> None:
    store, _, _ = redis_store
    frame = pd.DataFrame(
        {
            "customer_id": pd.Series([987_654], dtype="int64"),
            "event_timestamp": pd.Series([pd.Timestamp("2030-01-01", tz="UTC")], dtype="datetime64[us, UTC]"),
            "failed_attempts_24h": pd.Series([3], dtype="int32"),
        }
    )
    from feast.data_source import PushMode

    store.push("customer_realtime_push", frame, to=PushMode.ONLINE)
    value = store.get_online_features(
        features=["customer_realtime:failed_attempts_24h"], entity_rows=[{"customer_id": 987_654}]
    ).to_dict()
    assert value["failed_attempts_24h"] == [3]
