"""Use case: add a product to the catalog."""

from __future__ import annotations

from sqlalchemy import insert

from billing_core.catalog import Product
from billing_core.context import BillingContext
from billing_core.db import schema as t
from billing_core.db.repository import inserted_id
from billing_core.errors import InvalidInput


def create_product(ctx: BillingContext, *, name: str) -> Product:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name", "a non-empty product name", name)
    with ctx.transaction() as tx:
        product_id = inserted_id(
            tx.conn.execute(insert(t.products).values(name=name.strip(), created_at=tx.now))
        )
        tx.emit("product.created", "product", product_id, product_id=product_id, name=name.strip())
    return Product(product_id, name.strip())
