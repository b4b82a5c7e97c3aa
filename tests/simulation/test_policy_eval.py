"""Policies compared on one world, the ``recoup simulate`` commands, and the report's plots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from billing_core.errors import InvalidInput
from billing_core.simulation.policy_eval import POLICIES, _dso, compare_policies, policy
from billing_core.simulation.report import write_report
from billing_core.simulation.runner import RunConfig
from billing_core.simulation.truth import TruthStore
from recoup.commands.simulate import app
from tests.simulation._helpers import fresh_sqlite, simulate


def test_policies_are_named_and_distinct() -> None:
    names = {policy(name).name for name in POLICIES}
    assert len(names) == len(POLICIES)
    assert policy("static").name == "static-v1"
    with pytest.raises(InvalidInput) as error:
        policy("smart")
    assert error.value.field == "policy"


def test_days_sales_outstanding_of_a_tiny_book() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)

    def at(days: float) -> str:
        return (start + timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S.%f")

    # 100 USD billed every day of 10 days, each paid 3 days later: 300 USD owed on a typical day
    rows = [(i, "USD", 100_00, at(i + 0.5), at(i + 3.5), None, None, "paid") for i in range(10)]
    assert _dso(rows, start, start + timedelta(days=10)) == pytest.approx(
        2.7
    )  # 1, 2, then 3 days of billings owed
    never = [(1, "USD", 100_00, at(0.5), None, None, None, "open")]
    assert _dso(never, start, start + timedelta(days=10)) == pytest.approx(10.0)


def test_two_policies_on_the_same_world(tmp_path: Path) -> None:
    comparison = compare_policies(
        RunConfig(customers=300, months=4, seed=2), ["static", "static-lean"], directory=tmp_path
    )
    static, lean = comparison.metrics
    assert (static.policy, lean.policy) == ("static-v1", "static-lean")
    assert static.customers == lean.customers  # the same signups
    assert static.invoices_in_collections > 10
    assert lean.retries < static.retries
    assert lean.actions_per_invoice < static.actions_per_invoice
    for m in comparison.metrics:
        assert 0.0 < m.recovery_rate <= 1.0
        assert m.recovered_usd <= m.at_risk_usd
        assert m.dso_days > 0
        assert 0.0 <= m.involuntary_churn < 0.5
    assert [Path(p).name for p in comparison.databases] == ["static.db", "static-lean.db"]


def test_the_report_draws_four_plots(sqlite_template: Path, tmp_path: Path) -> None:
    engine = fresh_sqlite(sqlite_template, tmp_path, "report")
    try:
        run = simulate(engine, RunConfig(customers=200, months=2, seed=3), tmp_path / "report.truth")
        paths = write_report(engine, tmp_path / "img", truth=run.truth)
    finally:
        engine.dispose()
    assert [p.name for p in paths] == [
        "payment_delay.png",
        "decline_codes.png",
        "churn_curve.png",
        "fraud_timeline.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_the_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOUP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("RECOUP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "sim.db"
    code, output = _invoke("run", "--customers", "150", "--months", "2", "--seed", "4", "--db", str(db))
    assert code == 0, output
    assert "customers signed up" in output
    assert "truth_payment_attempts" in output
    assert (tmp_path / "sim.truth" / "truth_customers").is_dir()
    code, output = _invoke("run", "--customers", "150", "--months", "2", "--db", str(db))
    assert code == 2
    assert "not empty" in output
    code, output = _invoke("report", "--db", str(db), "--out", str(tmp_path / "img"))
    assert code == 0, output
    assert len(list((tmp_path / "img").glob("*.png"))) == 4
    code, output = _invoke(
        "run", "--customers", "150", "--months", "2", "--scenario", "boom", "--db", str(tmp_path / "x.db")
    )
    assert code == 2
    assert "scenario" in output
    code, output = _invoke(
        "policy-eval", "--policy", "static", "--policy", "static-sms", "--customers", "150", "--months", "2"
    )
    assert code == 0, output
    assert "static-v1" in output
    assert "static-sms" in output
    assert "recovery rate" in output
    code, output = _invoke("policy-eval", "--policy", "clever")
    assert code == 2
    assert "unknown policy" in output
    # the default database of the settings is used when --db is not given; no sub-command is `run`
    code, output = _invoke("--customers", "100", "--months", "1", "--seed", "9")
    assert code == 0, output
    assert TruthStore(tmp_path / "data" / "truth").tables()
