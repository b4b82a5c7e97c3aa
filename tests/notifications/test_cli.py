"""``recoup notify`` as an operator runs it, against the test database and the loopback server."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from billing_core.payments import DeclineCode
from recoup.cli import app
from tests.notifications.conftest import Shop, SmtpServer, free_port


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, smtp: SmtpServer) -> SmtpServer:
    monkeypatch.setenv("RECOUP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RECOUP_DATABASE_URL", database_url)
    monkeypatch.setenv("RECOUP_SMTP_HOST", smtp.host)
    monkeypatch.setenv("RECOUP_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("RECOUP_SMTP_SENDER", "Acme Billing <billing@acme.example>")
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    return smtp


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["notify", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_run_status_calls_and_phone(env: SmtpServer, shop: Shop) -> None:
    customer, email = shop.customer(language="es", currency="EUR", country="ES")
    invoice = shop.invoice(customer, 15_00, "EUR", decline=DeclineCode.INSUFFICIENT_FUNDS)
    shop.dunning_action(invoice, "remind", "call")

    code, output = invoke("status")
    assert code == 0
    assert "events not yet looked at" in output

    code, output = invoke("run")
    assert code == 0, output
    assert "sent" in output
    assert "email payment_failed" in output
    [received] = env.inbox.to(email)
    assert received.message["From"] == "Acme Billing <billing@acme.example>"
    assert "Acme Billing" in received.part("plain")

    code, output = invoke("status")
    assert code == 0
    assert "open call tasks" in output
    code, output = invoke("calls")
    assert code == 0
    assert "15.00 EUR" in output
    [task] = shop.call_tasks()
    code, output = invoke("call-done", str(task["id"]), "--outcome", "no_answer")
    assert code == 0
    assert "no_answer" in output
    code, output = invoke("call-done", str(task["id"]), "--outcome", "reached")
    assert code == 2
    assert "invalid_transition" in output

    code, output = invoke("phone", str(customer), "+34600000000")
    assert code == 0
    assert "+34600000000" in output
    code, output = invoke("phone", str(customer), "600000000")
    assert code == 2
    assert "phone" in output


def test_run_with_bad_options(env: SmtpServer) -> None:
    code, output = invoke("run", "--events", "payment.failed,invoice.created")
    assert code == 2
    assert "events" in output
    code, output = invoke("run", "--sms", "carrier-pigeon")
    assert code == 2
    assert "sms" in output


def test_an_unreachable_server_fails_the_command(
    env: SmtpServer, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOUP_SMTP_PORT", str(free_port()))
    customer, _ = shop.customer()
    shop.invoice(customer, 15_00, "USD", decline=DeclineCode.EXPIRED_CARD)
    code, output = invoke("run")
    assert code == 1
    assert "cannot reach SMTP server" in output
