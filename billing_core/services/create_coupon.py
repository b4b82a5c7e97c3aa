"""Use case: create a coupon (percent or amount off; once, repeating or forever)."""

from __future__ import annotations

from sqlalchemy import insert

from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.db import schema as t
from billing_core.db.repository import inserted_id
from billing_core.discounts import Coupon
from billing_core.discounts import validate_coupon as _validate_coupon


def create_coupon(
    ctx: BillingContext,
    *,
    name: str,
    duration: str,
    percent_off: object = None,
    amount_off_minor: object = None,
    currency: object = None,
    duration_in_periods: object = None,
) -> Coupon:
    values = _validate_coupon(
        name=name,
        duration=duration,
        percent_off=percent_off,
        amount_off_minor=amount_off_minor,
        currency_code=currency,
        duration_in_periods=duration_in_periods,
    )
    row = dict(values)
    row["duration"] = str(values["duration"])
    row["currency"] = values["currency"].code if values["currency"] else None  # type: ignore[attr-defined]
    with ctx.transaction() as tx:
        coupon_id = inserted_id(tx.conn.execute(insert(t.coupons).values(**row, created_at=tx.now)))
        tx.emit("coupon.created", "coupon", coupon_id, coupon_id=coupon_id, **row)
        return repository.get_coupon(tx.conn, coupon_id)
