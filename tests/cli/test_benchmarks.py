"""Benchmarks run as documented and end with one JSON object (speed is measured there, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def test_billing_run_benchmark_checks_every_invoice(tmp_path: Path) -> None:
    report = run("billing_run.py", "--invoices", "400", "--db", str(tmp_path / "bench.db"))
    assert report["invoices"] == 400
    assert report["invoices_checked"] == 400
    assert report["invoices_wrong"] == 0
    assert {"seconds", "invoices_per_s"} <= set(report)


def test_cli_startup_benchmark_reports_heavy_imports() -> None:
    report = run("cli_startup.py", "--runs", "1")
    assert report["heavy_modules_imported"] == []
    assert isinstance(report["help_p50_s"], float)
