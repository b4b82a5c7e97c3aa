"""The billing run's queue: which subscriptions renew by a given instant.

Every query that looks for due subscriptions goes through :func:`due_condition`, so that it
reaches the queue's index on each database: on SQLite the index is keyed by the UTC day of
``next_invoice_at`` (``ix_subscriptions_due_day``, an expression index that a query uses only
when it repeats the expression), on PostgreSQL by the instant itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from billing_core.db.bulk import Bulk

DUE_DAY_INDEX = "ix_subscriptions_due_day"


def due_condition(
    bulk: Bulk, as_of: datetime, column: str = "next_invoice_at"
) -> tuple[str, tuple[Any, ...]]:
    """A SQL condition true for a next renewal at or before ``as_of``, and its parameters."""
    instant = bulk.instant(as_of)
    if bulk.sqlite:
        day = as_of.astimezone(UTC).date().isoformat()
        return f"substr({column}, 1, 10) <= ? AND {column} <= ?", (day, instant)
    return f"{column} <= ?", (instant,)
