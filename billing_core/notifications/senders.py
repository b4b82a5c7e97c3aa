"""The edges of notifications: an email sender and an SMS sender, each a protocol with fakes.

* :class:`EmailSender`: :class:`SmtpEmailSender` speaks SMTP (``smtplib``; optional STARTTLS and
  login) to the server in the settings; :class:`MaildirEmailSender` delivers into a local
  Maildir (development, demos: any mail client opens it); :class:`RecordingEmailSender` keeps
  messages in memory and answers from a script, for tests.
* :class:`SmsSender`: :class:`LoggingSmsSender` writes each text to the log (and, if asked, to a
  console); :class:`RecordingSmsSender` is the scripted fake. Recoup ships no real SMS provider:
  one is a class with a ``send_many`` method that calls the provider's API, passing
  ``message_id`` as its idempotency key where the provider supports one.

A sender never raises for a message it could not deliver: it answers with a :class:`Delivery`
for each message, in order, as the payment gateway answers with a decline. ``permanent`` means
the provider refused this message for good (an SMTP 5xx answer to the recipient); ``unreachable``
means the provider could not be reached at all, and the dispatcher stops its run after recording.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.errors import HeaderParseError, MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """A rendered email, ready to send. ``message_id`` is the same on every resend."""

    notification_id: int
    message_id: str
    sender: str
    recipient: str
    recipient_name: str
    subject: str
    text: str
    html: str
    language: str
    date: datetime

    def to_mime(self) -> EmailMessage:
        """The MIME message: a plain-text part and an HTML alternative, both UTF-8."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = Address(display_name=self.recipient_name, addr_spec=self.recipient)
        message["Subject"] = self.subject
        message["Date"] = format_datetime(self.date)
        message["Message-ID"] = self.message_id
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(self.text)
        message.add_alternative(self.html, subtype="html")
        message["Content-Language"] = self.language  # after the content, which resets Content-* headers
        return message


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """A rendered text message. ``message_id`` is the provider's idempotency key, if it has one."""

    notification_id: int
    message_id: str
    phone: str
    text: str
    language: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a provider answered for one message."""

    ok: bool
    provider_message_id: str | None = None
    error: str | None = None
    permanent: bool = False
    unreachable: bool = False

    @classmethod
    def sent(cls, provider_message_id: str | None = None) -> Delivery:
        return cls(True, provider_message_id)

    @classmethod
    def failed(cls, error: str, *, permanent: bool = False) -> Delivery:
        return cls(False, error=error, permanent=permanent)

    @classmethod
    def unreachable_provider(cls, error: str) -> Delivery:
        return cls(False, error=error, unreachable=True)


class EmailSender(Protocol):
    """Sends emails; answers one :class:`Delivery` per message, in order."""

    def send_many(self, messages: Sequence[OutgoingEmail]) -> list[Delivery]: ...


class SmsSender(Protocol):
    """Sends text messages; answers one :class:`Delivery` per message, in order."""

    def send_many(self, messages: Sequence[OutgoingSms]) -> list[Delivery]: ...


# ---------------------------------------------------------------------------------------- Maildir


class MaildirEmailSender:
    """Delivers each email as a file into a Maildir (``new/``), as a local mail server would.

    For development and demos, where no SMTP server runs: ``RECOUP_EMAIL_BACKEND=maildir`` and
    ``RECOUP_MAILDIR``. A resend of the same notification replaces its file (the file is named by
    the notification), so the Maildir holds each message once.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def from_settings(cls, settings: Any) -> MaildirEmailSender:
        return cls(settings.maildir)

    def send_many(self, messages: Sequence[OutgoingEmail]) -> list[Delivery]:
        new = self.path / "new"
        for folder in (new, self.path / "cur", self.path / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        results = []
        for message in messages:
            name = f"recoup-{message.notification_id}.eml"
            temporary = self.path / "tmp" / name
            temporary.write_bytes(message.to_mime().as_bytes(policy=_SMTPUTF8))
            temporary.replace(new / name)
            results.append(Delivery.sent(name))
        return results


# ------------------------------------------------------------------------------------------- SMTP

# Headers are folded only past RFC 5322's hard limit: folding before an encoded word leaves a
# trailing space that readers unfold into two ("um  1.234,50 €"), a flaw of the email package.
_SMTP = policy.SMTP.clone(max_line_length=998)
_SMTPUTF8 = policy.SMTPUTF8.clone(max_line_length=998)
_QUEUE_ID = re.compile(r"(?:queued as|id=)\s*([^\s;]+)", re.IGNORECASE)


class SmtpEmailSender:
    """Email over SMTP: one connection per batch, STARTTLS and login when configured.

    Answers, per message: accepted (the server's queue id, when its reply names one, is the
    provider message id); refused for good (a 5xx answer to the recipient, or to the message
    once the server has read it); failed for now (4xx answers, a 5xx to the sender, which is
    usually the server's configuration, a dropped connection); unreachable (no connection at
    all: every message left in the batch gets that answer).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.local_hostname = local_hostname

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SmtpEmailSender:
        """From :class:`recoup.settings.Settings` (``RECOUP_SMTP_*``)."""
        values: dict[str, Any] = {
            "username": settings.smtp_username,
            "password": settings.smtp_password,
            "starttls": settings.smtp_starttls,
        }
        values.update(overrides)
        return cls(settings.smtp_host, settings.smtp_port, **values)

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password)
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def send_many(self, messages: Sequence[OutgoingEmail]) -> list[Delivery]:
        results: list[Delivery] = []
        smtp: smtplib.SMTP | None = None
        try:
            for index, message in enumerate(messages):
                if smtp is None:
                    try:
                        smtp = self._connect()
                    except (OSError, smtplib.SMTPException) as exc:
                        reason = f"cannot reach SMTP server {self.host}:{self.port}: {_describe(exc)}"
                        results.extend(Delivery.unreachable_provider(reason) for _ in messages[index:])
                        break
                delivery, connected = self._send(smtp, message)
                results.append(delivery)
                if not connected:
                    _close(smtp)
                    smtp = None
        finally:
            if smtp is not None:
                try:
                    smtp.quit()
                except (OSError, smtplib.SMTPException):
                    _close(smtp)
        return results

    def _send(self, smtp: smtplib.SMTP, message: OutgoingEmail) -> tuple[Delivery, bool]:
        """Send one message; returns the answer and whether the connection is still usable."""
        try:
            mime = message.to_mime()
            from_addr = parseaddr(message.sender)[1]
            international = not (from_addr.isascii() and message.recipient.isascii())
            options: list[str] = []
            if international:
                if not smtp.has_extn("smtputf8"):
                    return Delivery.failed(
                        "the server does not accept international addresses (no SMTPUTF8)", permanent=True
                    ), True
                options = ["SMTPUTF8", "BODY=8BITMIME"]
            data = mime.as_bytes(policy=_SMTPUTF8 if international else _SMTP)
        except (ValueError, HeaderParseError, MessageError) as exc:
            return Delivery.failed(f"cannot build the message: {exc}", permanent=True), True
        if smtp.has_extn("size"):
            options.append(f"SIZE={len(data)}")
        try:
            code, reply = smtp.mail(from_addr, options)
            if code != 250:
                return self._refused(smtp, code, reply, "MAIL FROM", permanent=False)
            code, reply = smtp.rcpt(message.recipient)
            if code not in (250, 251):
                return self._refused(smtp, code, reply, "RCPT TO", permanent=500 <= code < 600)
            code, reply = smtp.data(data)
            if code != 250:
                # refused after reading the message: a 5xx is about this message (content, size)
                return self._refused(smtp, code, reply, "the message", permanent=500 <= code < 600)
        except smtplib.SMTPDataError as exc:  # the server would not take DATA at all
            return self._refused(smtp, exc.smtp_code, exc.smtp_error, "DATA", permanent=False)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            return Delivery.failed(f"connection lost: {_describe(exc)}"), False
        except smtplib.SMTPException as exc:
            return Delivery.failed(f"SMTP error: {_describe(exc)}"), False
        found = _QUEUE_ID.search(_text(reply))
        return Delivery.sent(found.group(1) if found else None), True

    @staticmethod
    def _refused(
        smtp: smtplib.SMTP, code: int, reply: bytes | str, step: str, *, permanent: bool
    ) -> tuple[Delivery, bool]:
        delivery = Delivery.failed(f"{step} refused: {code} {_text(reply)}", permanent=permanent)
        if code == 421:  # the server is closing the connection
            return delivery, False
        try:
            smtp.rset()
        except (smtplib.SMTPException, OSError):
            return delivery, False
        return delivery, True


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        smtp.close()


# ------------------------------------------------------------------------------------------ fakes


class RecordingEmailSender:
    """Keeps every accepted email in ``sent``; answers from a script of :class:`Delivery` values.

    Each message takes the next scripted answer (``None`` accepts it); when the script is empty,
    every message is accepted. ``attempted`` holds every message offered, accepted or not.
    """

    def __init__(self, outcomes: Sequence[Delivery | None] = ()) -> None:
        self._queue = list(outcomes)
        self.sent: list[OutgoingEmail] = []
        self.attempted: list[OutgoingEmail] = []

    def push(self, *outcomes: Delivery | None) -> None:
        self._queue.extend(outcomes)

    def send_many(self, messages: Sequence[OutgoingEmail]) -> list[Delivery]:
        results = []
        for message in messages:
            self.attempted.append(message)
            outcome = self._queue.pop(0) if self._queue else None
            if outcome is None or outcome.ok:
                self.sent.append(message)
                outcome = outcome or Delivery.sent(f"recorded-{len(self.sent)}")
            results.append(outcome)
        return results


class RecordingSmsSender:
    """The SMS fake: keeps accepted texts in ``sent``, answers from a script like the email fake."""

    def __init__(self, outcomes: Sequence[Delivery | None] = ()) -> None:
        self._queue = list(outcomes)
        self.sent: list[OutgoingSms] = []
        self.attempted: list[OutgoingSms] = []

    def push(self, *outcomes: Delivery | None) -> None:
        self._queue.extend(outcomes)

    def send_many(self, messages: Sequence[OutgoingSms]) -> list[Delivery]:
        results = []
        for message in messages:
            self.attempted.append(message)
            outcome = self._queue.pop(0) if self._queue else None
            if outcome is None or outcome.ok:
                self.sent.append(message)
                outcome = outcome or Delivery.sent(f"sms-{len(self.sent)}")
            results.append(outcome)
        return results


class LoggingSmsSender:
    """Writes each text message to the log (logger ``billing_core.notifications.senders``).

    With ``echo`` (``print``, or a rich console's ``print``) each message is also shown there.
    It stands in for an SMS provider on machines that have none; every message is "sent".
    """

    def __init__(self, echo: Callable[[str], object] | None = None) -> None:
        self.echo = echo

    def send_many(self, messages: Sequence[OutgoingSms]) -> list[Delivery]:
        results = []
        for message in messages:
            line = f"SMS to {message.phone} [{message.language}]: {message.text}"
            log.info(line)
            if self.echo is not None:
                self.echo(line)
            results.append(Delivery.sent(f"log-{message.message_id.strip('<>')}"))
        return results
