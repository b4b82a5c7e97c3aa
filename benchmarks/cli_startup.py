"""Benchmark: how long ``recoup --help`` takes, in a fresh interpreter each time.

    uv run python benchmarks/cli_startup.py --runs 10

Target: under one second. Heavy libraries (feast, mlflow, evidently, bentoml, pandas,
SQLAlchemy) must be imported inside the commands that need them, never at module level; the
report lists any of them that ``--help`` imported anyway.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

HEAVY = ("sqlalchemy", "pandas", "numpy", "feast", "mlflow", "evidently", "bentoml", "lightgbm", "sklearn")
PROBE = (
    "import sys\n"
    "from typer.testing import CliRunner\n"
    "from recoup.cli import app\n"
    "result = CliRunner().invoke(app, ['--help'])\n"
    "assert result.exit_code == 0, result.output\n"
    "print(','.join(m for m in {heavy!r} if m in sys.modules))\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    seconds = []
    for run in range(args.runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "recoup.cli", "--help"], check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
        print(f"run {run + 1}/{args.runs}: {seconds[-1]:.3f} s", file=sys.stderr)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY)], check=True, capture_output=True, text=True
    )
    heavy = [m for m in probe.stdout.strip().split(",") if m]
    print(
        json.dumps(
            {
                "runs": args.runs,
                "help_p50_s": round(statistics.median(seconds), 3),
                "help_max_s": round(max(seconds), 3),
                "target_s": 1.0,
                "heavy_modules_imported": heavy,
            }
        )
    )


if __name__ == "__main__":
    main()
