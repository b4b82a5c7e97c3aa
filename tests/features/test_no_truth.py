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


def test_tables_from_a_simulated_world_do_not_depend_on_its_truth(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """Built with the truth store in place, then with it gone: the same tables, byte for byte."""
    import hashlib

    from billing_core.lake import export_lake
    from billing_core.simulation.runner import RunConfig
    from features.jobs.build import build_tables
    from tests.simulation._helpers import fresh_sqlite, simulate

    engine = fresh_sqlite(sqlite_template, tmp_path, "world")
    run = simulate(engine, RunConfig(customers=300, months=2, seed=5), tmp_path / "world.truth")
    assert run.truth.read("truth_churn").num_rows > 0
    export_lake(engine, tmp_path / "lake")
    engine.dispose()

    def build(into: str) -> tuple[dict[str, int], dict[str, str]]:
        result = build_tables(tmp_path / "lake", tmp_path / into)
        digests = {
            name: hashlib.sha256((tmp_path / into / f"{name}.parquet").read_bytes()).hexdigest()
            for name in result.rows
        }
        return result.rows, digests

    with_truth = build("with")
    (tmp_path / "world.truth").rename(tmp_path / "elsewhere")
    assert build("without") == with_truth
    # the simulated signups carry their device, IP address and card: those velocity tables are filled
    rows = with_truth[0]
    assert rows["device_velocity"] > 0
    assert rows["ip_velocity"] > 0
    assert rows["bin_velocity"] > 0
