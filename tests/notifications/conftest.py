"""A real SMTP server on loopback, and a small shop whose customers get notified."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from itertools import count
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from billing_core.context import BillingContext
from billing_core.db import schema as t
from billing_core.db.schema_notifications import call_tasks, notifications
from billing_core.notifications import (
    DispatchOptions,
    DispatchResult,
    RecordingSmsSender,
    SmtpEmailSender,
    dispatch,
)
from billing_core.payments import DeclineCode, ScriptedGateway
from billing_core.services.add_payment_method import add_payment_method
from billing_core.services.create_customer import create_customer
from billing_core.services.create_price import create_price
from billing_core.services.create_product import create_product
from billing_core.services.create_subscription import create_subscription

#: what the dunning engine records for each action it executed
OUTCOMES = {
    "retry": "declined",
    "remind": "queued",
    "final_notice": "queued",
    "suspend": "suspended",
    "write_off": "written_off",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it accepts, and can be told to refuse."""

    messages: list[Received] = field(default_factory=list)
    refuse_recipients: set[str] = field(default_factory=set)
    data_reply: str | None = None  # answer DATA with this instead of accepting

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse_recipients:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply is not None:
            return self.data_reply
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return f"250 2.0.0 Ok: queued as Q{len(self.messages)}"

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox

    def sender(self) -> SmtpEmailSender:
        return SmtpEmailSender(self.host, self.port, timeout=5)


def start_smtp(port: int, inbox: Inbox) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    inbox = Inbox()
    port = free_port()
    controller = start_smtp(port, inbox)
    try:
        yield SmtpServer("127.0.0.1", port, inbox)
    finally:
        controller.stop()


@dataclass
class Shop:
    """Customers with cards, invoices with scripted payment outcomes, and dunning events."""

    ctx: BillingContext
    gateway: ScriptedGateway
    product_id: int
    numbers: Any = field(default_factory=count)

    def customer(
        self,
        *,
        language: str = "en",
        currency: str = "USD",
        timezone: str = "UTC",
        country: str = "US",
        name: str = "Ada Lovelace",
        card: bool = True,
    ) -> tuple[int, str]:
        email = f"customer{next(self.numbers)}@example.com"
        customer = create_customer(
            self.ctx,
            email=email,
            name=name,
            currency=currency,
            timezone=timezone,
            country=country,
            language=language,
        )
        if card:
            add_payment_method(
                self.ctx,
                customer_id=customer.id,
                brand="visa",
                bin="424242",
                last4="4242",
                exp_month=12,
                exp_year=2030,
            )
        return customer.id, email

    def invoice(
        self, customer_id: int, amount_minor: int, currency: str, *, decline: DeclineCode | None = None
    ) -> dict[str, Any]:
        """A subscription's first invoice; its payment succeeds, or fails with ``decline``."""
        price = create_price(
            self.ctx,
            product_id=self.product_id,
            currency=currency,
            model="flat",
            interval="month",
            unit_amount_minor=amount_minor,
        )
        self.gateway.push(decline)
        sub = create_subscription(
            self.ctx, customer_id=customer_id, items=[{"price_id": price.id, "quantity": 1}]
        )
        with self.ctx.read() as conn:
            return dict(
                conn.execute(select(t.invoices).where(t.invoices.c.subscription_id == sub.id))
                .mappings()
                .one()
            )

    def dunning_action(self, invoice: dict[str, Any], action: str, channel: str | None, **extra: Any) -> None:
        """Emit a ``dunning.action`` event as the dunning engine does (its payload contract)."""
        payload = {
            "process_id": 1,
            "action_id": next(self.numbers),
            "step": 1,
            "invoice_id": invoice["id"],
            "invoice_number": invoice["number"],
            "customer_id": invoice["customer_id"],
            "subscription_id": invoice["subscription_id"],
            "action": action,
            "channel": channel,
            "day": 3,
            "amount_remaining_minor": invoice["amount_remaining_minor"],
            "currency": invoice["currency"],
            "outcome": OUTCOMES[action],
            "decline_code": None,
            "policy": "static_schedule",
            **extra,
        }
        with self.ctx.transaction() as tx:
            tx.emit("dunning.action", "invoice", invoice["id"], **payload)

    def notifications(self) -> list[dict[str, Any]]:
        with self.ctx.read() as conn:
            rows = conn.execute(select(notifications).order_by(notifications.c.id)).mappings().all()
            return [dict(row) for row in rows]

    def call_tasks(self) -> list[dict[str, Any]]:
        with self.ctx.read() as conn:
            return [dict(r) for r in conn.execute(select(call_tasks).order_by(call_tasks.c.id)).mappings()]

    def offset(self) -> int | None:
        with self.ctx.read() as conn:
            return conn.execute(
                select(t.consumer_offsets.c.last_seq).where(t.consumer_offsets.c.consumer == "notifications")
            ).scalar_one_or_none()

    def head(self) -> int:
        with self.ctx.read() as conn:
            return int(conn.execute(select(t.outbox_head.c.last_seq)).scalar_one())


@pytest.fixture
def shop(ctx: BillingContext, gateway: ScriptedGateway) -> Shop:
    return Shop(ctx, gateway, create_product(ctx, name="Recoup Cloud").id)


@pytest.fixture
def sms() -> RecordingSmsSender:
    return RecordingSmsSender()


def run(
    ctx: BillingContext, smtp: SmtpServer, sms: RecordingSmsSender | None = None, **options: Any
) -> DispatchResult:
    """One dispatcher run against the loopback SMTP server."""
    return dispatch(
        ctx,
        email=smtp.sender(),
        sms=sms if sms is not None else RecordingSmsSender(),
        options=DispatchOptions(**options),
    )
