"""``recoup features`` run as a user would, on a copy of the small world in a data directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoup.commands.features import app
from tests.features.conftest import World

HEAVY = ("feast", "pandas", "duckdb", "pyarrow", "numpy", "sqlalchemy")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def data_dir(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    shutil.copytree(world.root, root)
    for name in (
        "RECOUP_DATABASE_URL",
        "RECOUP_LAKE_DIR",
        "RECOUP_FEATURES_DIR",
        "RECOUP_FEAST_ONLINE",
        "RECOUP_FEAST_REGISTRY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECOUP_DATA_DIR", str(root))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return root


def test_importing_the_commands_imports_nothing_heavy() -> None:
    probe = (
        "import sys\nimport recoup.commands.features\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == ""


@pytest.mark.slow
def test_build_apply_materialize_push_status(data_dir: Path) -> None:
    code, output = invoke("build")
    assert code == 0, output
    assert "customer_payment" in output
    assert "device and IP velocity are empty" in output  # a book has no signup context
    assert (data_dir / "features" / "tables" / "customer_payment.parquet").exists()

    code, output = invoke("apply")
    assert code == 0, output
    assert "dunning_v1" in output
    assert "fraud_v1" in output

    code, output = invoke("materialize")
    assert code == 0, output
    assert "the beginning" in output
    code, output = invoke("materialize")
    assert code == 0, output
    assert "0 entities" in output  # incremental: nothing new

    code, output = invoke("push")
    assert code == 0, output
    assert "customer_realtime_push" in output

    code, output = invoke("status")
    assert code == 0, output
    assert "customer_payment" in output
    assert "never" not in output

    code, output = invoke("env")
    assert code == 0, output
    assert f"RECOUP_FEATURES_DIR={data_dir / 'features'}" in output.replace("\n", "")


def test_clear_errors(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = invoke("build", "--as-of", "next week")
    assert code == 2
    assert "as_of" in output
    code, output = invoke("build", "--table", "nonsense")
    assert code == 2
    assert "nonsense" in output
    code, output = invoke("materialize")
    assert code == 2
    assert "recoup features build" in output
    monkeypatch.setenv("RECOUP_FEAST_ONLINE", "memcached://x")
    code, output = invoke("status")
    assert code == 2
    assert "RECOUP_FEAST_ONLINE" in output
    monkeypatch.delenv("RECOUP_FEAST_ONLINE")
    monkeypatch.setenv("RECOUP_LAKE_DIR", str(data_dir / "nowhere"))
    code, output = invoke("build")
    assert code == 2
    assert "recoup lake export" in output
