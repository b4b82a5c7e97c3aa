"""``benchmarks/usage_ingest.py`` runs as documented and ends with one JSON object (tiny sizes:
the speed is measured there, at full size, never here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_usage_ingest_benchmark_reports_its_numbers(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "usage_ingest.py"),
            "--events",
            "600",
            "--batch-size",
            "200",
            "--single",
            "30",
            "--connections",
            "2",
            "--customers",
            "10",
            "--db",
            str(tmp_path / "usage.db"),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {
        "batch_events_per_s",
        "bulk_events_per_s",
        "http_events_per_s",
        "http_p50_ms",
        "http_p99_ms",
        "http_concurrent_events_per_s",
        "http_concurrent_p99_ms",
        "events",
        "batch_size",
        "http_events",
    } <= set(report)
    assert (report["events"], report["batch_size"], report["http_events"]) == (600, 200, 30)
    # a tenth of every batch after the first repeats the batch before: received, removed
    assert report["batch_duplicates_removed"] == 2 * 20
    assert report["batch_events_recorded"] == 600 - 40
    assert report["http_p99_ms"] >= report["http_p50_ms"] > 0
