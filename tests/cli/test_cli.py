"""The ``recoup`` command line, run as a user would: a real database in a data directory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from billing_core.db.engine import create_engine
from recoup.cli import app, parse_as_of

HEAVY = ("sqlalchemy", "pandas", "numpy", "feast", "mlflow", "evidently", "bentoml", "lightgbm", "sklearn")


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


def test_help_imports_no_heavy_library() -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from recoup.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_help_lists_commands() -> None:
    code, output = invoke("--help")
    assert code == 0
    for command in ("bill", "report", "book", "demo", "db", "audit"):
        assert command in output


def test_as_of_parsing() -> None:
    assert parse_as_of("2026-03-01").isoformat() == "2026-03-01T00:00:00+00:00"
    assert parse_as_of("2026-03-01T12:00:00+02:00").isoformat() == "2026-03-01T10:00:00+00:00"


def test_upgrade_book_bill_verify(env: Path) -> None:
    code, output = invoke("db", "upgrade")
    assert code == 0, output
    assert (env / "recoup.db").exists()
    code, output = invoke("book", "--subscriptions", "300", "--as-of", "2026-02-01", "--seed", "3")
    assert code == 0, output
    assert "300 subscriptions" in output

    code, output = invoke("bill", "--as-of", "2026-02-01")
    assert code == 0, output
    engine = create_engine(f"sqlite:///{env / 'recoup.db'}")
    with engine.connect() as conn:
        invoices = conn.execute(text("SELECT COUNT(*) FROM invoices")).scalar_one()
        attempts = conn.execute(text("SELECT COUNT(*) FROM payment_attempts")).scalar_one()
    assert invoices == 300
    assert attempts > 0

    code, output = invoke("bill", "--as-of", "2026-02-01")  # idempotent
    assert code == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM invoices")).scalar_one() == 300

    code, output = invoke("report", "--currency", "USD")
    assert code == 2  # no FX rates on file yet: a clear error, not a traceback
    assert "currency" in output

    code, output = invoke("report", "--currency", "XXQ")
    assert code == 2
    assert "reporting_currency" in output
    assert "XXQ" in output

    code, output = invoke("audit", "verify")
    assert code == 0, output
    assert "intact" in output
    head = output.split("head ")[-1].strip()
    code, output = invoke("audit", "verify", "--expect-head", head)
    assert code == 0, output
    code, output = invoke("audit", "verify", "--expect-head", "0" * 64)
    assert code == 1
    engine.dispose()


def test_audit_verify_detects_tampering(env: Path) -> None:
    assert invoke("db", "upgrade")[0] == 0
    assert invoke("book", "--subscriptions", "50")[0] == 0
    engine = create_engine(f"sqlite:///{env / 'recoup.db'}")
    with engine.begin() as conn:
        # the append-only trigger refuses edits, so a tamperer would drop it first
        conn.execute(text("DROP TRIGGER IF EXISTS outbox_no_update"))
        names = [r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))]
        for name in names:
            if name.startswith("outbox"):
                conn.execute(text(f'DROP TRIGGER "{name}"'))
        conn.execute(text("UPDATE outbox SET payload = '{}' WHERE seq = 3"))
    engine.dispose()
    code, output = invoke("audit", "verify")
    assert code == 1
    assert "broken" in output


def test_bad_as_of_names_the_field(env: Path) -> None:
    assert invoke("db", "upgrade")[0] == 0
    code, output = invoke("bill", "--as-of", "next tuesday")
    assert code == 2
    assert "as_of" in output
    assert "next tuesday" in output


def test_demo_runs_end_to_end(env: Path) -> None:
    code, output = invoke(
        "demo", "--subscriptions", "400", "--months", "1",
        "--world-customers", "300", "--world-months", "3", "--policy-customers", "150",
    )  # fmt: skip
    assert code == 0, output
    assert "0 new invoices" in output
    assert output.count("audit chain intact") == 2  # the billing book and the world
    agree = re.search(r"(\d+) of (\d+) features agree", output)
    assert agree is not None, output
    assert agree.group(1) == agree.group(2), output
    assert "recovery rate" in output  # the policy comparison
    assert "duplicates': 10" in output  # the usage batch sent twice over
    demo = env / "demo"
    assert (demo / "billing" / "recoup.db").exists()
    assert any((demo / "billing" / "mail" / "new").iterdir())
    assert {p.name for p in (demo / "world" / "report").glob("*.png")} >= {
        "churn_curve.png",
        "decline_codes.png",
    }
    assert (demo / "world" / "truth").is_dir()
    assert (demo / "world" / "lake" / "customers").is_dir()
