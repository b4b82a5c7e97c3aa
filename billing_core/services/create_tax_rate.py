"""Use case: add a tax rate for a jurisdiction, exclusive or inclusive."""

from __future__ import annotations

from sqlalchemy import insert

from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.db import schema as t
from billing_core.db.repository import inserted_id
from billing_core.tax import TaxRate
from billing_core.tax import validate_tax_rate as _validate_tax_rate


def create_tax_rate(
    ctx: BillingContext, *, jurisdiction: str, percentage: object, inclusive: bool, display_name: str = "Tax"
) -> TaxRate:
    values = _validate_tax_rate(
        jurisdiction=jurisdiction, percentage=percentage, inclusive=inclusive, display_name=display_name
    )
    with ctx.transaction() as tx:
        rate_id = inserted_id(tx.conn.execute(insert(t.tax_rates).values(**values, created_at=tx.now)))
        tx.emit("tax_rate.created", "tax_rate", rate_id, tax_rate_id=rate_id, **values)
        return repository.get_tax_rate(tx.conn, rate_id)
