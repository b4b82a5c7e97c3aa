"""benchmarks/features.py runs as documented and ends with one JSON object (speed is measured there)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_features_benchmark_reports_its_numbers(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "features.py"),
            "--rows",
            "2000",
            "--online-runs",
            "20",
            "--dir",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["pit_rows"] == 2000
    assert report["features"] >= 40
    assert report["tenure_mismatches"] == 0
    for key in ("pit_seconds", "pit_rows_per_s", "duckdb_asof_seconds", "materialize_rows_per_s",
                "online_p50_ms", "online_p99_ms", "online_100_p50_ms", "online_100_p99_ms"):  # fmt: skip
        assert report[key] > 0, key
