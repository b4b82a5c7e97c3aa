"""The ground-truth store: schemas, writing, reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from billing_core.errors import InvalidInput
from billing_core.simulation import population, truth
from billing_core.simulation.params import WorldParams
from billing_core.simulation.rng import RandomSource


def test_every_table_is_named_distinctively() -> None:
    assert truth.TABLES
    assert all(name.startswith("truth_") for name in truth.TABLES)
    assert truth.truth_dir("/data") == Path("/data/truth")


def test_customer_rows_round_trip(tmp_path: Path) -> None:
    signups = population.draw_signups_between(WorldParams(), 0, 20, RandomSource(1))
    store = truth.TruthStore.for_data_dir(tmp_path)
    store.write("truth_customers", truth.customer_rows(signups))
    store.write("truth_customers", truth.customer_rows(signups.take(np.arange(5)), customer_id=np.arange(5)))
    table = store.read("truth_customers")
    assert table.num_rows == len(signups) + 5
    assert table.column("customer_key").to_pylist()[: len(signups)] == signups.customer_key.tolist()
    assert table.column("customer_id").null_count == len(signups)
    assert set(table.column("payday_cycle").to_pylist()) <= {"weekly", "biweekly", "semi_monthly", "monthly"}
    fraud = np.asarray(table.column("is_fraud").to_pylist())
    chargeback = table.column("chargeback_day").to_pylist()
    assert all((c is None) != bool(f) for c, f in zip(chargeback, fraud, strict=True))
    assert store.tables() == ["truth_customers"]
    assert sorted(p.name for p in (tmp_path / "truth" / "truth_customers").iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]


def test_attempt_rows_accept_arrays_and_frames(tmp_path: Path) -> None:
    import pandas as pd

    store = truth.TruthStore(tmp_path / "truth")
    rows = {
        "customer_key": np.array([10, 11]),
        "period_index": np.array([0, 0]),
        "attempt_number": np.array([0, 1]),
        "day": np.array([3, 4]),
        "local_hour": np.array([10, 2]),
        "p_success": np.array([0.9, 0.4]),
        "succeeded": np.array([False, True]),
        "decline_code": ["insufficient_funds", None],
        "p_fraud": np.array([0.001, 0.001]),
        "is_fraud": np.array([False, False]),
        "fraud_kind": ["none", "none"],
    }
    store.write("truth_payment_attempts", rows)
    store.write("truth_payment_attempts", pd.DataFrame(rows))
    table = store.read("truth_payment_attempts")
    assert table.num_rows == 4
    assert table.column("decline_code").to_pylist() == ["insufficient_funds", None] * 2
    assert table.schema == truth.SCHEMAS["truth_payment_attempts"]


def test_reading_an_unwritten_table_gives_its_empty_schema(tmp_path: Path) -> None:
    table = truth.TruthStore(tmp_path).read("truth_churn")
    assert table.num_rows == 0
    assert table.schema == truth.SCHEMAS["truth_churn"]


def test_rows_that_do_not_fit_are_refused_naming_the_column(tmp_path: Path) -> None:
    store = truth.TruthStore(tmp_path)
    with pytest.raises(InvalidInput) as error:
        store.write("truth_takeovers", {"customer_key": [1], "day": [2]})
    assert error.value.field == "truth_takeovers.p_takeover"
    with pytest.raises(InvalidInput) as error:
        store.write("truth_takeovers", {"customer_key": [1], "day": [2], "p_takeover": [0.1], "extra": [1]})
    assert error.value.field == "truth_takeovers.extra"
    with pytest.raises(InvalidInput) as error:
        store.write("truth_takeovers", {"customer_key": ["x"], "day": [2], "p_takeover": [0.1]})
    assert error.value.field == "truth_takeovers.customer_key"
    with pytest.raises(InvalidInput) as error:
        store.write("features", {})
    assert error.value.field == "table"
    assert not list(tmp_path.rglob("*.parquet"))
