"""The dunning benchmark runs as documented and ends with one JSON object (speed is measured there)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dunning_benchmark_reports_its_numbers(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "dunning_run.py"), "--invoices", "120", "--db",
         str(tmp_path / "bench.db")],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {
        "invoices",
        "actions",
        "seconds",
        "actions_per_s",
        "recovered",
        "written_off",
        "suspended",
    } <= set(report)
    assert 0 < report["invoices"] <= 120
    assert report["actions"] > report["invoices"]
    assert report["recovered"] + report["written_off"] == report["invoices"]  # 60 days end every process
    assert report["still_open"] == 0
    assert report["action_events"] == report["actions"] == report["actions_reported"]
    assert report["suspended"] <= report["written_off"]
