"""``recoup dunning run`` and ``recoup dunning status``, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from billing_core.db.engine import create_engine
from recoup.cli import app


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECOUP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("RECOUP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize("bad", ["yesterday", "2026-02-30", "2026-02-01T10:00:00"])
def test_a_bad_as_of_is_refused_clearly(env: Path, bad: str) -> None:
    code, output = invoke("dunning", "run", "--as-of", bad)
    assert code == 2
    assert "as_of" in output
    assert bad in output
    assert not (env / "recoup.db").exists()  # refused before touching anything


def test_run_twice_then_status(env: Path) -> None:
    assert invoke("db", "upgrade")[0] == 0
    assert invoke("book", "--subscriptions", "300", "--as-of", "2026-02-01", "--seed", "5")[0] == 0
    assert invoke("bill", "--as-of", "2026-02-01")[0] == 0
    engine = create_engine(f"sqlite:///{env / 'recoup.db'}")
    with engine.connect() as conn:
        failed = conn.execute(
            text("SELECT COUNT(DISTINCT invoice_id) FROM payment_attempts WHERE status = 'failed'")
        ).scalar_one()
    assert failed > 0

    code, output = invoke("dunning", "run", "--as-of", "2026-02-01")
    assert code == 0, output
    assert "processes opened" in output
    code, output = invoke("dunning", "run", "--as-of", "2026-02-02")
    assert code == 0, output
    assert "retry" in output
    with engine.connect() as conn:
        processes = conn.execute(text("SELECT COUNT(*) FROM dunning_processes")).scalar_one()
        actions = conn.execute(text("SELECT COUNT(*) FROM dunning_actions")).scalar_one()
    assert processes >= failed
    assert actions > 0

    code, output = invoke("dunning", "run", "--as-of", "2026-02-02")  # nothing twice
    assert code == 0, output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM dunning_actions")).scalar_one() == actions

    code, output = invoke("dunning", "status", "--at", "2026-02-04")
    assert code == 0, output
    assert "Open dunning processes" in output
    assert "remind" in output
    code, output = invoke("dunning", "status", "--at", "soon")
    assert code == 2
    assert "at" in output
    engine.dispose()


def test_dunning_help_lists_its_commands() -> None:
    code, output = invoke("dunning", "--help")
    assert code == 0
    assert "run" in output
    assert "status" in output
