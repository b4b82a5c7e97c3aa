"""Where collections stand: open processes by status and next action, and how processes ended."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection

from billing_core.db.bulk import Bulk
from billing_core.dunning.engine import LIVE_SQL


class OpenRow(NamedTuple):
    status: str
    next_action: str | None
    currency: str
    processes: int
    due: int  # next action due by the report's instant
    owed_minor: int  # what their invoices still owe


class Summary(NamedTuple):
    at: datetime
    open: list[OpenRow]
    ended: dict[str, int]  # final status: processes


def summary(conn: Connection, *, at: datetime) -> Summary:
    """Open processes grouped by status, next action and currency; ended ones by final status."""
    bulk = Bulk(conn)
    rows = [
        OpenRow(status, action, code, int(count), int(due or 0), int(owed or 0))
        for status, action, code, count, due, owed in bulk.query(
            "SELECT p.status, p.next_action, i.currency, COUNT(*),"
            " SUM(CASE WHEN p.next_action_at <= ? THEN 1 ELSE 0 END), SUM(i.amount_remaining_minor)"
            " FROM dunning_processes p JOIN invoices i ON i.id = p.invoice_id"
            f" WHERE p.status IN ({LIVE_SQL}) GROUP BY p.status, p.next_action, i.currency",
            (bulk.instant(at),),
        )
    ]
    order = {"active": 0, "warned": 1, "suspended": 2}
    rows.sort(key=lambda r: (order.get(r.status, 9), r.next_action or "", r.currency))
    ended = {
        status: int(count)
        for status, count in bulk.query(
            f"SELECT status, COUNT(*) FROM dunning_processes WHERE status NOT IN ({LIVE_SQL})"
            " GROUP BY status ORDER BY status"
        )
    }
    return Summary(at, rows, ended)
