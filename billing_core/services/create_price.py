"""Use case: add a price (flat, per unit, graduated, volume or package) to a product."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import insert

from billing_core.catalog import Price, Tier
from billing_core.catalog import validate_price as _validate_price
from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.db import schema as t
from billing_core.db.repository import inserted_id
from billing_core.errors import NotFound


def create_price(
    ctx: BillingContext,
    *,
    product_id: int,
    currency: str,
    model: str,
    interval: str,
    interval_count: int = 1,
    usage_type: str = "licensed",
    unit_amount_minor: object = 0,
    package_size: int | None = None,
    tiers: Sequence[object] = (),
    metric_code: str | None = None,
    trial_days: int = 0,
    nickname: str = "",
) -> Price:
    values = _validate_price(
        currency_code=currency,
        model=model,
        interval=interval,
        interval_count=interval_count,
        usage_type=usage_type,
        unit_amount_minor=unit_amount_minor,
        package_size=package_size,
        tiers=tiers,
        metric_code=metric_code,
        trial_days=trial_days,
    )
    with ctx.transaction() as tx:
        product_row = tx.conn.execute(t.products.select().where(t.products.c.id == product_id)).first()
        if product_row is None:
            raise NotFound("product_id", "product", product_id)
        if metric_code is not None:
            repository.get_metric(tx.conn, metric_code)
        price_id = inserted_id(
            tx.conn.execute(
                insert(t.prices).values(
                    product_id=product_id,
                    currency=str(values["currency"]),
                    model=str(values["model"]),
                    interval=str(values["interval"]),
                    interval_count=values["interval_count"],
                    usage_type=str(values["usage_type"]),
                    unit_amount_minor=values["unit_amount_minor"],
                    package_size=values["package_size"],
                    metric_code=metric_code,
                    trial_days=values["trial_days"],
                    nickname=nickname,
                    created_at=tx.now,
                )
            )
        )
        tiers_ = cast(tuple[Tier, ...], values["tiers"])
        for position, tier in enumerate(tiers_):
            tx.conn.execute(
                insert(t.price_tiers).values(
                    price_id=price_id,
                    position=position,
                    up_to=tier.up_to,
                    unit_amount_minor=tier.unit_amount_minor,
                    flat_amount_minor=tier.flat_amount_minor,
                )
            )
        tx.emit(
            "price.created",
            "price",
            price_id,
            price_id=price_id,
            product_id=product_id,
            currency=str(values["currency"]),
            model=str(values["model"]),
        )
        return repository.get_price(tx.conn, price_id)
