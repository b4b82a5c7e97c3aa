"""Use case: declare a billable metric (what usage events measure, and how they aggregate)."""

from __future__ import annotations

from sqlalchemy import insert

from billing_core.catalog import Aggregation, BillableMetric
from billing_core.context import BillingContext
from billing_core.db import schema as t
from billing_core.errors import IdempotencyConflict, InvalidInput


def create_billable_metric(ctx: BillingContext, *, code: str, name: str, aggregation: str) -> BillableMetric:
    if not isinstance(code, str) or not code or not code.replace("_", "").replace(".", "").isalnum():
        raise InvalidInput("code", "a code of letters, digits, '_' and '.' such as 'api_calls'", code)
    if not isinstance(name, str) or not name:
        raise InvalidInput("name", "a non-empty name", name)
    try:
        kind = Aggregation(aggregation)
    except ValueError as exc:
        raise InvalidInput("aggregation", "one of " + ", ".join(Aggregation), aggregation) from exc
    with ctx.transaction() as tx:
        existing = (
            tx.conn.execute(t.billable_metrics.select().where(t.billable_metrics.c.code == code))
            .mappings()
            .first()
        )
        if existing is not None:
            if existing["aggregation"] != kind.value:
                raise IdempotencyConflict(
                    "code", f"a new code or aggregation {existing['aggregation']}", code
                )
            return BillableMetric(code, existing["name"], kind)
        tx.conn.execute(
            insert(t.billable_metrics).values(code=code, name=name, aggregation=kind.value, created_at=tx.now)
        )
        tx.emit("billable_metric.created", "billable_metric", code, code=code, aggregation=kind.value)
    return BillableMetric(code, name, kind)
