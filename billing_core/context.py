"""What every use case needs: the database, a clock, the payment gateway, and a transaction.

A use case is a function ``use_case(ctx, *, ...)`` that opens exactly one transaction with
:meth:`BillingContext.transaction`. Events emitted on the transaction are appended to the
outbox (the audit log) in that same transaction, just before it commits; if anything fails,
nothing is written, events included. Calls to the payment gateway happen after the commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from billing_core import audit
from billing_core.audit import Event
from billing_core.clock import Clock, SystemClock
from billing_core.db.bulk import Bulk
from billing_core.payments import PaymentGateway, SimulatedGateway


class Tx:
    """An open transaction: the connection, the moment it started, and its pending events."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self.events: list[Event] = []
        self._bulk: Bulk | None = None

    @property
    def bulk(self) -> Bulk:
        if self._bulk is None:
            self._bulk = Bulk(self.conn)
        return self._bulk

    def emit(self, event_type: str, aggregate_type: str, aggregate_id: object, **payload: Any) -> None:
        self.events.append(Event.of(self.now, event_type, aggregate_type, aggregate_id, **payload))

    def emit_event(self, event: Event) -> None:
        self.events.append(event)


@dataclass
class BillingContext:
    """The billing core's dependencies, injected."""

    engine: Engine
    clock: Clock = field(default_factory=SystemClock)
    gateway: PaymentGateway = field(default_factory=SimulatedGateway)
    invoice_prefix: str = "INV"
    credit_note_prefix: str = "CN"
    days_until_due: int = 0

    @contextmanager
    def transaction(self, *, checked_references: bool = True) -> Iterator[Tx]:
        """One transaction; its events go to the outbox just before it commits.

        ``checked_references=False`` is for the billing run's bulk writes: on SQLite it turns off
        foreign-key enforcement for this transaction (a third of the cost of an insert), because
        the run writes only ids it has just read or reserved under the same lock. PostgreSQL
        always enforces them. ``tests/data`` checks every foreign key after bulk runs.
        """
        with self.engine.connect() as conn:
            raw: Any = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
            relaxed = raw is not None and not checked_references
            if relaxed:
                raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    tx = Tx(conn, self.clock.now())
                    yield tx
                    audit.append(conn, tx.events)
            finally:
                if relaxed:
                    raw.execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (on SQLite it does not take the write lock)."""
        with self.engine.connect().execution_options(read_only=True) as conn, conn.begin():
            yield conn

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> BillingContext:
        from billing_core.db.engine import create_engine

        values: dict[str, Any] = {
            "engine": create_engine(settings.database_url),
            "gateway": SimulatedGateway(settings.gateway_seed),
            "invoice_prefix": settings.invoice_prefix,
            "credit_note_prefix": settings.credit_note_prefix,
            "days_until_due": settings.days_until_due,
        }
        values.update(overrides)
        return cls(**values)
