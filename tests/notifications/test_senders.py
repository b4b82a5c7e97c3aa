"""The senders at their edges: SMTP with STARTTLS and login, the message format, the SMS fakes."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from billing_core.notifications import (
    Delivery,
    LoggingSmsSender,
    OutgoingEmail,
    OutgoingSms,
    RecordingSmsSender,
    SmtpEmailSender,
)
from tests.notifications.conftest import Inbox, SmtpServer, free_port

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def email(n: int = 1, recipient: str = "ada@example.com", **changes: Any) -> OutgoingEmail:
    values: dict[str, Any] = {
        "notification_id": n,
        "message_id": f"<m{n}.{n}@recoup.invalid>",
        "sender": "Recoup Billing <billing@recoup.invalid>",
        "recipient": recipient,
        "recipient_name": "Ada Lovelace",
        "subject": "Ihre Zahlung über 20,00\u00a0€ ist nicht durchgegangen",
        "text": "Guten Tag Ada,\n\n.Punkt am Zeilenanfang\n",
        "html": "<p>Guten Tag Ada,</p>",
        "language": "de",
        "date": AT,
    }
    values.update(changes)
    return OutgoingEmail(**values)


def test_the_mime_message() -> None:
    message = email().to_mime()
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Message-ID"] == "<m1.1@recoup.invalid>"
    assert message["Content-Language"] == "de"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"] == "Sun, 01 Mar 2026 09:00:00 +0000"
    assert str(message["To"]) == "Ada Lovelace <ada@example.com>"


def test_a_batch_over_one_connection_with_queue_ids(smtp: SmtpServer) -> None:
    answers = smtp.sender().send_many([email(1), email(2, "bob@example.com")])
    assert answers == [Delivery.sent("Q1"), Delivery.sent("Q2")]
    first = smtp.inbox.messages[0]
    assert first.rcpt_tos == ["ada@example.com"]
    assert ".Punkt am Zeilenanfang" in first.part("plain")  # dot-stuffing undone by the server


def test_a_refused_recipient_does_not_spoil_the_batch(smtp: SmtpServer) -> None:
    smtp.inbox.refuse_recipients.add("gone@example.com")
    answers = smtp.sender().send_many([email(1, "gone@example.com"), email(2)])
    assert not answers[0].ok
    assert answers[0].permanent
    assert "550" in (answers[0].error or "")
    assert answers[1] == Delivery.sent("Q1")


def test_a_message_refused_after_data(smtp: SmtpServer) -> None:
    smtp.inbox.data_reply = "554 5.6.0 message content rejected"
    [answer] = smtp.sender().send_many([email()])
    assert not answer.ok
    assert answer.permanent
    assert not answer.unreachable
    smtp.inbox.data_reply = "451 4.3.0 try again later"
    [answer] = smtp.sender().send_many([email()])
    assert not answer.ok
    assert not answer.permanent


def test_nobody_listening() -> None:
    answers = SmtpEmailSender("127.0.0.1", free_port(), timeout=2).send_many([email(1), email(2)])
    assert all(a.unreachable and not a.ok for a in answers)
    assert len(answers) == 2
    assert "cannot reach SMTP server" in (answers[0].error or "")


def test_an_address_the_message_cannot_carry_is_refused_for_good(smtp: SmtpServer) -> None:
    [answer, after] = smtp.sender().send_many([email(1, recipient="jürgen@example.de"), email(2)])
    assert not answer.ok
    assert answer.permanent
    assert "non-ASCII" in (answer.error or "")
    assert after == Delivery.sent("Q1")


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_smtp(tls_files: tuple[Path, Path]) -> Iterator[tuple[SmtpServer, list[str]]]:
    """A server that wants STARTTLS before AUTH, and AUTH before mail."""
    cert, key = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    logins: list[str] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"recoup", b"s3cret")
        if ok:
            logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself

    inbox, port = Inbox(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticate,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, inbox), logins
    finally:
        controller.stop()


def test_starttls_and_login(tls_smtp: tuple[SmtpServer, list[str]], tls_files: tuple[Path, Path]) -> None:
    server, logins = tls_smtp
    client_context = ssl.create_default_context(cafile=str(tls_files[0]))
    sender = SmtpEmailSender(
        server.host,
        server.port,
        username="recoup",
        password="s3cret",
        starttls=True,
        ssl_context=client_context,
        timeout=5,
    )
    assert sender.send_many([email()]) == [Delivery.sent("Q1")]
    assert logins == ["recoup"]
    assert len(server.inbox.messages) == 1
    wrong = SmtpEmailSender(
        server.host,
        server.port,
        username="recoup",
        password="nope",
        starttls=True,
        ssl_context=client_context,
        timeout=5,
    )
    [answer] = wrong.send_many([email()])
    assert answer.unreachable
    assert "535" in (answer.error or "")
    plain = SmtpEmailSender(server.host, server.port, timeout=5)  # no STARTTLS: the server refuses mail
    [answer] = plain.send_many([email()])
    assert not answer.ok
    assert not answer.permanent
    assert len(server.inbox.messages) == 1


def test_settings_configure_smtp() -> None:
    from recoup.settings import Settings

    settings = Settings(smtp_host="mail.example.com", smtp_port=587, smtp_username="u", smtp_starttls=True)
    sender = SmtpEmailSender.from_settings(settings)
    assert (sender.host, sender.port, sender.username, sender.starttls) == (
        "mail.example.com",
        587,
        "u",
        True,
    )


def test_sms_fakes(caplog: pytest.LogCaptureFixture) -> None:
    text = OutgoingSms(1, "<m1@recoup.invalid>", "+4915112345678", "Erinnerung", "de")
    recording = RecordingSmsSender([Delivery.failed("provider busy"), None])
    assert recording.send_many([text, text]) == [Delivery.failed("provider busy"), Delivery.sent("sms-1")]
    assert recording.sent == [text]
    assert len(recording.attempted) == 2
    echoed: list[str] = []
    with caplog.at_level(logging.INFO, logger="billing_core.notifications.senders"):
        [answer] = LoggingSmsSender(echoed.append).send_many([text])
    assert answer == Delivery.sent("log-m1@recoup.invalid")
    assert echoed == ["SMS to +4915112345678 [de]: Erinnerung"]
    assert "SMS to +4915112345678" in caplog.text
