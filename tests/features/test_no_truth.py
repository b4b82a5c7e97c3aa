"""The feature pipeline never reads the world simulator's ground truth.

The simulator writes the probabilities it drew from to ``<data dir>/truth/`` (tables ``truth_*``)
for evaluation only; a feature computed from them would leak the answer into training. Nothing
under ``features/`` may name them, nor import the simulator, whose ``truth`` module writes them.
"""

from __future__ import annotations

import re
from pathlib import Path

FEATURES = Path(__file__).resolve().parents[2] / "features"
FORBIDDEN = re.compile(
    r"truth|billing_core\.simulation|from\s+billing_core\s+import\s+simulation", re.IGNORECASE
)


def test_no_file_under_features_refers_to_the_truth_store() -> None:
    files = [p for p in FEATURES.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert any(p.suffix == ".py" for p in files)
    offenders = []
    for path in files:
        text = path.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if FORBIDDEN.search(line):
                offenders.append(f"{path.relative_to(FEATURES.parent)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_scan_would_catch_a_reference() -> None:
    for line in (
        'read_parquet("data/truth/truth_churn.parquet")',
        "from billing_core.simulation.truth import TruthStore",
    ):
        assert FORBIDDEN.search(line)
