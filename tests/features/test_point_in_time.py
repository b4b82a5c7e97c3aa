"""Point-in-time joins on tiny tables built by hand, through both offline stores.

Every test runs on the ASOF offline store (the default) and on Feast's stock DuckDB offline store:
they must give the same answers, and those answers must be the point-in-time ones.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.features.conftest import View, at, historical, stock_store_warning, tiny_store


def entity_rows(*rows: tuple[int, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "event_timestamp": pd.to_datetime([at(r[1]) for r in rows], utc=True),
        }
    )


def by_row(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["customer_id", "event_timestamp"], kind="stable").reset_index(drop=True)


def test_a_later_event_never_leaks(tmp_path: Path, offline: str) -> None:
    store = tiny_store(
        tmp_path,
        {
            "balance": View(
                [
                    {"customer_id": 1, "event_timestamp": at("2026-01-01T00:00:00"), "balance": 10.0},
                    {"customer_id": 1, "event_timestamp": at("2026-01-02T00:00:00"), "balance": 20.0},
                    # a microsecond after the second entity row: must not be seen by it
                    {"customer_id": 1, "event_timestamp": at("2026-01-03T00:00:00.000001"), "balance": 30.0},
                    {"customer_id": 2, "event_timestamp": at("2026-01-05T00:00:00"), "balance": 99.0},
                ]
            )
        },
        offline=offline,
    )
    rows = entity_rows(
        (1, "2025-12-31T23:59:59"),  # before any row: nothing
        (1, "2026-01-01T00:00:00"),  # exactly at a row: that row
        (1, "2026-01-02T12:00:00"),
        (1, "2026-01-03T00:00:00"),  # the 30.0 row is a microsecond later
        (1, "2026-01-03T00:00:00.000001"),
        (2, "2026-01-04T23:59:59.999999"),
    )
    result = by_row(historical(store, rows))
    assert pd.isna(result["balance"].iloc[0])
    assert pd.isna(result["balance"].iloc[5])
    assert result["balance"].iloc[1:5].tolist() == [10.0, 20.0, 20.0, 30.0]


def test_ttl_is_respected(tmp_path: Path, offline: str) -> None:
    store = tiny_store(
        tmp_path,
        {
            "recent": View(
                [
                    {"customer_id": 1, "event_timestamp": at("2026-01-01T00:00:00"), "score": 1.0},
                    {"customer_id": 1, "event_timestamp": at("2026-01-10T00:00:00"), "score": 2.0},
                ],
                ttl=timedelta(days=2),
            ),
            "forever": View([{"customer_id": 1, "event_timestamp": at("2026-01-01T00:00:00"), "level": 5}]),
        },
        offline=offline,
    )
    rows = entity_rows(
        (1, "2026-01-02T23:59:59"),  # inside the TTL of the first row
        (1, "2026-01-03T00:00:00"),  # exactly ttl after it: still valid
        (1, "2026-01-03T00:00:01"),  # expired: null, though an older row exists
        (1, "2026-01-11T00:00:00"),
        (1, "2026-01-13T00:00:00.000001"),
    )
    result = by_row(historical(store, rows))
    scores = result["score"].tolist()
    assert scores[:2] == [1.0, 1.0]
    assert pd.isna(scores[2])
    assert scores[3] == 2.0
    assert pd.isna(scores[4])
    # a view without TTL keeps its last value forever
    assert result["level"].tolist() == [5, 5, 5, 5, 5]


def test_entity_rows_sharing_key_and_time_all_come_back(tmp_path: Path, offline: str) -> None:
    store = tiny_store(
        tmp_path,
        {"balance": View([{"customer_id": 7, "event_timestamp": at("2026-01-01T00:00:00"), "balance": 3.0}])},
        offline=offline,
    )
    rows = entity_rows((7, "2026-01-05T00:00:00"), (7, "2026-01-05T00:00:00"), (7, "2026-01-05T00:00:00"))
    rows["label"] = [0, 1, 2]  # extra columns ride along
    result = historical(store, rows)
    assert len(result) == 3
    assert sorted(result["label"].tolist()) == [0, 1, 2]
    assert result["balance"].tolist() == [3.0, 3.0, 3.0]


def test_several_views_and_keys(tmp_path: Path, offline: str) -> None:
    store = tiny_store(
        tmp_path,
        {
            "a": View(
                [
                    {"customer_id": 1, "event_timestamp": at("2026-01-01"), "x": 1.0},
                    {"customer_id": 2, "event_timestamp": at("2026-01-02"), "x": 2.0},
                ]
            ),
            "b": View(
                [
                    {"customer_id": 1, "event_timestamp": at("2026-01-03"), "z": 10},
                    {"customer_id": 1, "event_timestamp": at("2026-01-04"), "z": 11},
                ]
            ),
        },
        offline=offline,
    )
    rows = entity_rows((1, "2026-01-03T12:00:00"), (2, "2026-01-03T12:00:00"), (3, "2026-01-09"))
    result = by_row(historical(store, rows, full_feature_names=True))
    assert result["a__x"].iloc[:2].tolist() == [1.0, 2.0]
    assert result["b__z"].iloc[0] == 10
    assert pd.isna(result["b__z"].iloc[1])
    assert result.iloc[2][["a__x", "b__z"]].isna().all()


def test_string_keys(tmp_path: Path, offline: str) -> None:
    from feast import ValueType

    store = tiny_store(
        tmp_path,
        {
            "domains": View(
                [
                    {"email_domain": "a.example", "event_timestamp": at("2026-01-01"), "signups": 3},
                    {"email_domain": "b.example", "event_timestamp": at("2026-01-01"), "signups": 9},
                ],
                key="email_domain",
                key_type=ValueType.STRING,
            )
        },
        offline=offline,
    )
    rows = pd.DataFrame(
        {
            "email_domain": ["b.example", "a.example", None],
            "event_timestamp": pd.to_datetime([at("2026-01-02")] * 3, utc=True),
        }
    )
    result = historical(store, rows).sort_values("signups", na_position="last")
    assert result["signups"].tolist()[:2] == [3, 9]
    assert pd.isna(result["signups"].tolist()[2])


@stock_store_warning
def test_both_stores_agree_on_random_tables(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    base = pd.Timestamp("2026-01-01", tz="UTC")

    def rows(n: int, customers: int) -> list[dict[str, object]]:
        keys = rng.integers(1, customers + 1, size=n)
        seconds = rng.integers(0, 30 * 86_400, size=n)
        seen: set[tuple[int, int]] = set()
        out = []
        for k, s in zip(keys.tolist(), seconds.tolist(), strict=True):
            if (k, s) in seen:  # one row per key and instant, as every Recoup table has
                continue
            seen.add((k, s))
            out.append(
                {
                    "customer_id": k,
                    "event_timestamp": base + pd.Timedelta(seconds=s),
                    "v": float(rng.normal()),
                }
            )
        return out

    views = {"p": View(rows(400, 30)), "q": View(rows(300, 30), ttl=timedelta(days=3))}
    entity = pd.DataFrame(
        {
            "customer_id": rng.integers(1, 35, size=500),
            "event_timestamp": base + pd.to_timedelta(rng.integers(0, 32 * 86_400, size=500), unit="s"),
        }
    )
    results = []
    for offline in ("asof", "duckdb"):
        store = tiny_store(tmp_path / offline, views, offline=offline)
        frame = historical(store, entity, full_feature_names=True)
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        results.append(
            frame.sort_values(["customer_id", "event_timestamp", "p__v", "q__v"]).reset_index(drop=True)
        )
    asof, stock = results
    assert len(asof) == len(stock) == 500
    for column in ("customer_id", "event_timestamp"):
        assert asof[column].tolist() == stock[column].tolist()
    for column in ("p__v", "q__v"):
        assert np.allclose(asof[column].to_numpy(float), stock[column].to_numpy(float), equal_nan=True)
    assert asof["q__v"].isna().sum() > asof["p__v"].isna().sum()  # the TTL bites


def test_asof_store_keeps_the_entity_rows_order(tmp_path: Path) -> None:
    store = tiny_store(
        tmp_path, {"balance": View([{"customer_id": 1, "event_timestamp": at("2026-01-01"), "balance": 1.0}])}
    )
    stamps = pd.to_datetime(
        [at("2026-01-05"), at("2026-01-02"), at("2025-12-01"), at("2026-01-03")], utc=True
    )
    rows = pd.DataFrame({"customer_id": [1, 1, 1, 2], "event_timestamp": stamps, "n": [0, 1, 2, 3]})
    result = historical(store, rows)
    assert result["n"].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("naive", [True, False])
def test_naive_entity_timestamps_are_utc(tmp_path: Path, naive: bool) -> None:
    store = tiny_store(
        tmp_path,
        {"balance": View([{"customer_id": 1, "event_timestamp": at("2026-01-01T10:00:00"), "balance": 1.0}])},
    )
    stamp = pd.Timestamp("2026-01-01T09:59:59")
    rows = pd.DataFrame(
        {"customer_id": [1], "event_timestamp": [stamp if naive else stamp.tz_localize("UTC")]}
    )
    assert pd.isna(historical(store, rows)["balance"].iloc[0])
