"""The push consumer: payment events from the outbox keep the real-time counters fresh online, with
the values the batch tables hold at the same instant."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from feast import FeatureStore

from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.db.engine import create_engine
from billing_core.lake import export_lake
from billing_core.payments import SimulatedGateway
from billing_core.services.pay_invoice import pay_invoice
from features.config import FeatureStoreSettings
from features.jobs import build_tables
from features.push import CONSUMER, OutboxPusher, PushResult
from features.store import apply, open_repository
from tests.features.conftest import World

pytestmark = pytest.mark.slow


class Copy:
    """A private copy of the world (database and lake) with a store of its own."""

    def __init__(self, world: World, root: Path) -> None:
        shutil.copytree(world.root, root, dirs_exist_ok=True)
        self.root = root
        self.url = f"sqlite:///{root / 'recoup.db'}"
        self.engine = create_engine(self.url)
        self.end = world.end
        self.settings = FeatureStoreSettings.from_env(
            root, root / "lake", env={"RECOUP_FEATURES_DIR": str(root / "features")}
        )
        self.store: FeatureStore = open_repository(self.settings)
        apply(self.store, self.settings)

    def pusher(self, **options: Any) -> OutboxPusher:
        return OutboxPusher.for_store(self.engine, self.store, **options)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return Bulk(conn).query(sql, params)

    def offline(self, clock: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The batch tables' values at ``clock`` (the lake exported again, the tables rebuilt as of it)."""
        export_lake(self.engine, self.root / "lake")
        build_tables(
            self.root / "lake",
            self.settings.tables_dir,
            as_of=clock,
            names=["customer_realtime", "bin_realtime"],
        )
        frames = []
        for name, key in (("customer_realtime", "customer_id"), ("bin_realtime", "card_bin")):
            table = pd.read_parquet(self.settings.tables_dir / f"{name}.parquet")
            frames.append(table.sort_values("event_timestamp").groupby(key).last())
        return frames[0], frames[1]

    def online(self, customers: list[int]) -> dict[int, Any]:
        response = self.store.get_online_features(
            features=["customer_realtime:failed_attempts_24h"],
            entity_rows=[{"customer_id": c} for c in customers],
        ).to_dict()
        return dict(zip(response["customer_id"], response["failed_attempts_24h"], strict=True))

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def copy(world: World, tmp_path: Path) -> Any:
    c = Copy(world, tmp_path / "copy")
    yield c
    c.close()


def _bin_counts(copy: Copy, clock: datetime) -> dict[str, int]:
    """Attempts per BIN in the hour up to ``clock``, straight from the billing database."""
    rows = copy.query(
        "SELECT m.bin, a.processed_at FROM payment_attempts a JOIN payment_methods m ON m.id = a.payment_method_id"
        " WHERE a.status IN ('succeeded', 'failed')"
    )
    counts: dict[str, int] = {}
    for bin_, processed in rows:
        at = (
            pd.Timestamp(processed, tz="UTC")
            if not isinstance(processed, datetime)
            else pd.Timestamp(processed)
        )
        counts[str(bin_)] = counts.get(str(bin_), 0) + int(clock - timedelta(hours=1) < at <= clock)
    return counts


def test_pushed_counters_equal_the_batch_tables(copy: Copy) -> None:
    result = copy.pusher().run_once()
    assert result.payment_events > 0
    assert result.position == copy.query("SELECT last_seq FROM outbox_head")[0][0]
    assert (
        copy.query("SELECT last_seq FROM consumer_offsets WHERE consumer = ?", (CONSUMER,))[0][0]
        == result.position
    )
    assert result.clock is not None
    customers, _ = copy.offline(result.clock)
    failed = [
        int(c)
        for (c,) in copy.query("SELECT DISTINCT customer_id FROM payment_attempts WHERE status = 'failed'")
    ]
    online = copy.online(failed)
    for customer_id in failed:
        assert online[customer_id] == customers.loc[customer_id, "failed_attempts_24h"], customer_id
    _assert_bins(copy, result.clock)


def _assert_bins(copy: Copy, clock: datetime) -> None:
    expected = _bin_counts(copy, clock)
    bins = copy.store.get_online_features(
        features=["bin_realtime:bin_attempts_last_hour"], entity_rows=[{"card_bin": b} for b in expected]
    ).to_dict()
    assert expected
    assert dict(zip(bins["card_bin"], bins["bin_attempts_last_hour"], strict=True)) == expected


def test_new_declines_reach_the_online_store(copy: Copy) -> None:
    first = copy.pusher().run_once()
    assert first.clock is not None
    open_invoices = copy.query(
        "SELECT id, customer_id FROM invoices i WHERE status = 'open' AND amount_remaining_minor > 0"
        " AND EXISTS (SELECT 1 FROM customers c WHERE c.id = i.customer_id AND c.default_payment_method_id IS NOT NULL)"
        " ORDER BY id LIMIT 4"
    )
    assert open_invoices
    clock = FrozenClock(first.clock + timedelta(hours=2))
    ctx = BillingContext(
        copy.engine, clock=clock, gateway=SimulatedGateway(1, soft_decline_rate=1.0, hard_decline_rate=0.0)
    )
    for invoice_id, _ in open_invoices:
        pay_invoice(ctx, invoice_id=int(invoice_id))
    second = copy.pusher().run_once()
    assert second.payment_events == len(open_invoices)
    assert second.clock == clock.now()
    customers, _ = copy.offline(clock.now())
    touched = sorted({int(c) for _, c in open_invoices})
    online = copy.online(touched)
    for customer_id in touched:
        assert online[customer_id] == customers.loc[customer_id, "failed_attempts_24h"] >= 1
    _assert_bins(copy, clock.now())
    assert sum(_bin_counts(copy, clock.now()).values()) == len(open_invoices)


def test_a_restarted_consumer_continues_with_the_same_counts(copy: Copy, tmp_path: Path) -> None:
    pages: list[PushResult] = []
    consumer = copy.pusher(page_size=97)
    pages.append(consumer.run_once(max_pages=5))
    # a new process: it rebuilds its windows from the outbox before its position
    restarted = copy.pusher(page_size=97)
    pages.append(restarted.run_once())
    assert pages[1].position == copy.query("SELECT last_seq FROM outbox_head")[0][0]
    clock = pages[1].clock
    assert clock is not None
    customers, _ = copy.offline(clock)
    assert dict(restarted.customers.counts) == {
        int(c): int(n) for c, n in customers["failed_attempts_24h"].items() if n
    }
    # and a pusher that read everything in one go holds the same windows
    fresh = OutboxPusher(copy.engine, lambda source, frame: None)
    fresh.warm_up(pages[1].position)
    assert fresh.customers.counts == restarted.customers.counts
    assert fresh.bins.counts == restarted.bins.counts


def test_from_head_skips_history(copy: Copy) -> None:
    pushed: list[tuple[str, int]] = []
    pusher = OutboxPusher(copy.engine, lambda source, frame: pushed.append((source, len(frame))))
    head = pusher.skip_to_head()
    result = pusher.run_once()
    assert result.position == head
    assert result.events == 0
    assert pushed == []


def test_follow_consumes_then_polls_until_stopped(copy: Copy) -> None:
    seen: list[PushResult] = []
    polls = iter(range(3))
    pusher = OutboxPusher(copy.engine, lambda source, frame: None, page_size=5_000)
    pusher.follow(interval=0.01, should_stop=lambda: next(polls, None) is None, on_result=seen.append)
    assert len(seen) == 1  # everything at the first poll, nothing at the next ones
    assert seen[0].position == copy.query("SELECT last_seq FROM outbox_head")[0][0]
