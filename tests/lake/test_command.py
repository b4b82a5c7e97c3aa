"""``recoup lake export`` and ``recoup lake status``, run as a user would, on a data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from billing_core.lake import read_table
from recoup.cli import app


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECOUP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("RECOUP_DATABASE_URL", raising=False)
    monkeypatch.delenv("RECOUP_LAKE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_export_then_status(env: Path) -> None:
    code, output = invoke("lake", "export")
    assert code == 2
    assert "recoup db upgrade" in output
    assert invoke("db", "upgrade")[0] == 0
    assert invoke("book", "--subscriptions", "40", "--as-of", "2026-03-01")[0] == 0
    assert invoke("bill", "--as-of", "2026-03-01")[0] == 0

    code, output = invoke("lake", "export")
    assert code == 0, output
    assert "Lake export 1" in output
    invoices = read_table(env / "lake", "invoices")
    assert f"{invoices.num_rows:,}" in output.split("invoices")[1].split("\n")[0]

    code, output = invoke("lake", "export")
    assert code == 0
    assert "nothing new" in output

    code, output = invoke("lake", "status")
    assert code == 0
    assert "export 1" in output
    assert "invoice_lines" in output
