"""Fixtures of the feature store tests: tiny hand-built stores, and one small real world.

feast is imported here, at collection, with telemetry off: importing it changes the process's
warning filters, and pytest restores its own (warnings as errors) around every test after that.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.config import quiet

quiet()
import feast  # noqa: E402, F401  (imported once, at collection: see the module's docstring)
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType  # noqa: E402
from feast.repo_config import RepoConfig  # noqa: E402
from feast.types import FeastType, Float64, Int64, String  # noqa: E402

from billing_core.book import build_book  # noqa: E402
from billing_core.clock import FrozenClock  # noqa: E402
from billing_core.context import BillingContext  # noqa: E402
from billing_core.db.bulk import Bulk  # noqa: E402
from billing_core.db.engine import create_engine  # noqa: E402
from billing_core.lake import export_lake  # noqa: E402
from billing_core.payments import SimulatedGateway  # noqa: E402
from billing_core.services.advance_dispute import categorize_dispute, resolve_dispute  # noqa: E402
from billing_core.services.billing_run import run_billing  # noqa: E402
from billing_core.services.close_chargeback import close_chargeback  # noqa: E402
from billing_core.services.open_dispute import open_dispute  # noqa: E402
from billing_core.services.record_chargeback import record_chargeback  # noqa: E402
from billing_core.services.record_usage import record_usage_batch  # noqa: E402
from billing_core.services.refund_payment import refund_payment  # noqa: E402
from billing_core.services.run_dunning import run_dunning  # noqa: E402
from features.config import FeatureStoreSettings  # noqa: E402

T0 = datetime(2026, 3, 1, tzinfo=UTC)
_STOCK_WARNING = "ignore:fetch_arrow_table\\(\\) is deprecated:DeprecationWarning"

#: the stock DuckDB offline store runs through ibis, which calls a DuckDB method DuckDB deprecates
stock_store_warning = pytest.mark.filterwarnings(_STOCK_WARNING)


# ------------------------------------------------------------------------- tiny hand-built stores


@dataclass
class View:
    """A hand-built feature table: rows, its entity's key and type, its features, its TTL."""

    rows: list[dict[str, Any]]
    key: str = "customer_id"
    key_type: ValueType = ValueType.INT64
    features: dict[str, FeastType] | None = None
    ttl: timedelta = timedelta(0)


def tiny_store(
    root: Path, views: dict[str, View], *, offline: str = "asof", project: str = "tiny"
) -> FeatureStore:
    """A Feast store over hand-built parquet tables, one feature view each, and a service ``all``."""
    root.mkdir(parents=True, exist_ok=True)
    offline_type = "features.asof_offline_store.AsofDuckDBOfflineStore" if offline == "asof" else "duckdb"
    config = RepoConfig(
        project=project,
        provider="local",
        registry=str(root / "registry.db"),
        offline_store={"type": offline_type},
        online_store={"type": "sqlite", "path": str(root / "online.db")},
        entity_key_serialization_version=3,
        repo_path=str(root),
    )
    store = FeatureStore(config=config)
    objects: list[Any] = []
    entities: dict[str, Entity] = {}
    made = []
    for name, view in views.items():
        frame = pd.DataFrame(view.rows)
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        path = root / f"{name}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        entity = entities.get(view.key)
        if entity is None:
            entity = entities[view.key] = Entity(
                name=view.key, join_keys=[view.key], value_type=view.key_type
            )
            objects.append(entity)
        features = view.features or {
            c: (
                Float64
                if pd.api.types.is_float_dtype(frame[c])
                else Int64
                if pd.api.types.is_integer_dtype(frame[c])
                else String
            )
            for c in frame.columns
            if c not in (view.key, "event_timestamp")
        }
        fv = FeatureView(
            name=name,
            entities=[entity],
            ttl=view.ttl,
            schema=[Field(name=c, dtype=t) for c, t in features.items()],
            source=FileSource(name=f"{name}_source", path=str(path), timestamp_field="event_timestamp"),
        )
        objects.append(fv)
        made.append(fv)
    objects.append(FeatureService(name="all", features=made))
    store.apply(objects)
    return store


def historical(
    store: FeatureStore, entity_df: pd.DataFrame, *, full_feature_names: bool = False
) -> pd.DataFrame:
    frame: pd.DataFrame = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service("all"), full_feature_names=full_feature_names
    ).to_df()
    return frame


@pytest.fixture(params=["asof", pytest.param("duckdb", marks=stock_store_warning)])
def offline(request: pytest.FixtureRequest) -> str:
    """Both offline stores: the ASOF one and Feast's stock DuckDB store, which must agree."""
    name: str = request.param
    return name


def at(text: str) -> datetime:
    return (
        datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else datetime.fromisoformat(text)
    )


# ------------------------------------------------------------------------------- a small real world


@dataclass
class World:
    """A billing history (book, billing runs, dunning, disputes, usage) exported to a lake."""

    root: Path
    database_url: str
    lake: Path
    end: datetime

    def settings(self, features_dir: Path, **env: str) -> FeatureStoreSettings:
        return FeatureStoreSettings.from_env(
            self.root, self.lake, env={"RECOUP_FEATURES_DIR": str(features_dir), **env}
        )

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return Bulk(conn).query(sql, params)
        finally:
            engine.dispose()


def make_world(root: Path, template: Path, *, subscriptions: int = 160, seed: int = 5) -> World:
    """Two monthly billing runs with declines, daily dunning, disputes, a chargeback, a refund, usage."""
    shutil.copy(template, root / "recoup.db")
    for suffix in ("-wal", "-shm"):
        if Path(f"{template}{suffix}").exists():
            shutil.copy(f"{template}{suffix}", root / f"recoup.db{suffix}")
    url = f"sqlite:///{root / 'recoup.db'}"
    engine = create_engine(url)
    clock = FrozenClock(T0)
    ctx = BillingContext(
        engine, clock=clock, gateway=SimulatedGateway(seed, soft_decline_rate=0.3, hard_decline_rate=0.05)
    )
    build_book(ctx, subscriptions=subscriptions, as_of=T0, seed=seed)
    run_billing(ctx, as_of=T0, pipelined=False)

    def query(sql: str) -> list[tuple[Any, ...]]:
        with ctx.read() as conn:
            return Bulk(conn).query(sql)

    for day in range(1, 40):
        clock.advance(timedelta(days=1))
        now = clock.now()
        if day == 31:
            run_billing(ctx, as_of=now, pipelined=False)
        run_dunning(ctx, as_of=now, pipelined=False)
        if day in (3, 33):
            paid = query(
                "SELECT p.id, p.invoice_id, p.customer_id, p.amount_minor FROM payments p"
                " WHERE p.amount_minor >= 300 AND p.amount_refunded_minor = 0"
                " AND NOT EXISTS (SELECT 1 FROM chargebacks c WHERE c.payment_id = p.id)"
                " AND NOT EXISTS (SELECT 1 FROM disputes d WHERE d.invoice_id = p.invoice_id)"
                " ORDER BY p.id LIMIT 3"
            )
            (p1, _, _, a1), (p2, _, _, a2), (_, i3, c3, a3) = paid
            refund_payment(
                ctx, payment_id=int(p1), amount_minor=int(a1) // 2, idempotency_key=f"refund-{day}"
            )
            chargeback = record_chargeback(
                ctx,
                payment_id=int(p2),
                network_reference=f"NET-{day}",
                amount_minor=int(a2),
                reason_code="10.4",
            )
            dispute = open_dispute(
                ctx,
                customer_id=int(c3),
                invoice_id=int(i3),
                amount_minor=int(a3),
                message="I was charged twice",
            )
            clock.advance(timedelta(hours=3))
            categorize_dispute(ctx, dispute_id=dispute.id, category="duplicate_charge")
            close_chargeback(ctx, chargeback_id=chargeback.id, won=day == 3)
            resolve_dispute(ctx, dispute_id=dispute.id, outcome="credited", note="refunded")
        if day % 2 == 0:
            customers = [int(r[0]) for r in query("SELECT id FROM customers ORDER BY id LIMIT 6")]
            start = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
            record_usage_batch(
                ctx,
                [
                    {
                        "event_id": f"day{day}-{n}",
                        "customer_id": customers[n % len(customers)],
                        "metric_code": "api_calls",
                        # over the day before and the day of recording: some of it arrives late
                        "occurred_at": start - timedelta(hours=n % 30),
                        "value": 10 + (n * 7 + day) % 50,
                    }
                    for n in range(24)
                ],
            )
    end = clock.now()
    engine.dispose()
    export_lake(create_engine(url), root / "lake")
    return World(root, url, root / "lake", end)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> World:
    return make_world(tmp_path_factory.mktemp("world"), sqlite_template)


@pytest.fixture(scope="session")
def built(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Path]:
    """The world's feature tables, built once: (world, features directory)."""
    from features.jobs import build_tables

    features_dir = tmp_path_factory.mktemp("features")
    build_tables(world.lake, features_dir / "tables")
    return world, features_dir
