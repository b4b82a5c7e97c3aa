"""The Maildir backend: every notification lands once, as a file a mail client can open."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime
from pathlib import Path

import pytest

from billing_core.errors import InvalidInput
from billing_core.notifications import MaildirEmailSender, OutgoingEmail, dispatch_with_settings
from tests.notifications.conftest import Shop


def email(notification_id: int, subject: str) -> OutgoingEmail:
    return OutgoingEmail(
        notification_id=notification_id,
        message_id=f"<n{notification_id}@recoup.invalid>",
        sender="Recoup Billing <billing@recoup.invalid>",
        recipient="ada@example.de",
        recipient_name="Ada Lovelace",
        subject=subject,
        text="Ihre Zahlung über 1.234,50 € ist fehlgeschlagen.",
        html="<p>Ihre Zahlung über 1.234,50 € ist fehlgeschlagen.</p>",
        language="de",
        date=datetime(2026, 2, 1, 9, tzinfo=UTC),
    )


def test_maildir_holds_each_message_once(tmp_path: Path) -> None:
    sender = MaildirEmailSender(tmp_path / "mail")
    first = sender.send_many([email(1, "Zahlung fehlgeschlagen"), email(2, "Erinnerung")])
    assert all(d.ok for d in first)
    again = sender.send_many([email(1, "Zahlung fehlgeschlagen")])  # a resend after a crash
    assert again[0].ok
    box = mailbox.Maildir(tmp_path / "mail", create=False)
    messages = sorted(box, key=lambda m: str(m["Message-ID"]))
    assert [m["Message-ID"] for m in messages] == ["<n1@recoup.invalid>", "<n2@recoup.invalid>"]
    assert messages[0]["Subject"] == "Zahlung fehlgeschlagen"
    assert messages[0]["Content-Language"] == "de"
    body = messages[0].get_payload()[0].get_payload(decode=True).decode()
    assert "1.234,50 €" in body


def test_the_settings_choose_the_maildir_backend(shop: Shop, tmp_path: Path) -> None:
    from billing_core.payments import DeclineCode
    from recoup.settings import Settings

    customer_id, address = shop.customer(
        language="de", currency="EUR", timezone="Europe/Berlin", country="DE"
    )
    shop.invoice(customer_id, 1_234_50, "EUR", decline=DeclineCode.INSUFFICIENT_FUNDS)
    settings = Settings(data_dir=tmp_path, email_backend="maildir")
    result = dispatch_with_settings(shop.ctx, settings)
    assert result.sent >= 1
    box = mailbox.Maildir(tmp_path / "mail", create=False)
    (message,) = [m for m in box if address in str(m["To"])]
    assert message["Content-Language"] == "de"
    with pytest.raises(InvalidInput) as refused:
        dispatch_with_settings(
            shop.ctx, Settings(data_dir=tmp_path).model_copy(update={"email_backend": "fax"})
        )
    assert refused.value.field == "email_backend"


def test_the_command_uses_the_backend_the_settings_choose(
    shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from billing_core.payments import DeclineCode
    from recoup.cli import app

    customer_id, address = shop.customer(
        language="es", currency="EUR", timezone="Europe/Madrid", country="ES"
    )
    shop.invoice(customer_id, 99_00, "EUR", decline=DeclineCode.INSUFFICIENT_FUNDS)
    monkeypatch.setenv("RECOUP_DATABASE_URL", shop.ctx.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RECOUP_EMAIL_BACKEND", "maildir")
    monkeypatch.setenv("RECOUP_MAILDIR", str(tmp_path / "box"))
    result = CliRunner().invoke(app, ["notify", "run", "--sms", "log"])
    assert result.exit_code == 0, result.output
    box = mailbox.Maildir(tmp_path / "box", create=False)
    assert [m for m in box if address in str(m["To"])]
