"""Call tasks: the dunning engine asked for a phone call, and a person makes it.

The dispatcher opens one task per ``dunning.action`` event on the ``call`` channel (customer,
invoice, amount still owed). Whoever calls closes it with :func:`complete_call_task` and an
outcome (``reached``, ``no_answer``, ``promised_to_pay``, ...), which also goes to the outbox so
that the models can learn what calls achieve.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.db.types import parse_instant_column
from billing_core.errors import InvalidInput, InvalidTransition, NotFound


@dataclass(frozen=True, slots=True)
class CallTask:
    id: int
    event_seq: int
    customer_id: int
    invoice_id: int | None
    action: str
    amount_minor: int
    currency: str
    status: str
    outcome: str | None
    created_at: datetime
    done_at: datetime | None


_COLUMNS = (
    "id, event_seq, customer_id, invoice_id, action, amount_minor, currency, status, outcome, created_at,"
    " done_at"
)


def _task(row: tuple[Any, ...]) -> CallTask:
    (task_id, seq, customer_id, invoice_id, action, amount, code, status, outcome, created, done) = row
    return CallTask(
        id=int(task_id),
        event_seq=int(seq),
        customer_id=int(customer_id),
        invoice_id=None if invoice_id is None else int(invoice_id),
        action=str(action),
        amount_minor=int(amount),
        currency=str(code),
        status=str(status),
        outcome=None if outcome is None else str(outcome),
        created_at=parse_instant_column(created),
        done_at=None if done is None else parse_instant_column(done),
    )


def open_call_tasks(ctx: BillingContext, *, limit: int = 100) -> list[CallTask]:
    """The oldest open call tasks first."""
    with ctx.read() as conn:
        rows = Bulk(conn).query(
            f"SELECT {_COLUMNS} FROM call_tasks WHERE status = 'open' ORDER BY created_at, id LIMIT ?",
            (limit,),
        )
    return [_task(row) for row in rows]


def complete_call_task(ctx: BillingContext, *, task_id: int, outcome: str) -> CallTask:
    """Close an open call task with what came of the call."""
    if not isinstance(outcome, str) or not outcome.strip() or len(outcome.strip()) > 64:
        raise InvalidInput(
            "outcome", "a short description of what came of the call (1-64 characters)", outcome
        )
    with ctx.transaction() as tx:
        bulk = tx.bulk
        lock = "" if bulk.sqlite else " FOR UPDATE"
        rows = bulk.query(f"SELECT {_COLUMNS} FROM call_tasks WHERE id = ?{lock}", (task_id,))
        if not rows:
            raise NotFound("task_id", "call task", task_id)
        task = _task(rows[0])
        if task.status != "open":
            raise InvalidTransition(
                entity="call_task",
                entity_id=task_id,
                state=task.status,
                action="complete",
                allowed_from=["open"],
            )
        bulk.execute(
            "UPDATE call_tasks SET status = 'done', outcome = ?, done_at = ? WHERE id = ?",
            (outcome.strip(), bulk.instant(tx.now), task_id),
        )
        tx.emit(
            "call_task.completed",
            "invoice",
            task.invoice_id if task.invoice_id is not None else "",
            task_id=task_id,
            customer_id=task.customer_id,
            invoice_id=task.invoice_id,
            action=task.action,
            outcome=outcome.strip(),
        )
        rows = bulk.query(f"SELECT {_COLUMNS} FROM call_tasks WHERE id = ?", (task_id,))
    return _task(rows[0])
