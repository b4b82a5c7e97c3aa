"""The catalog: products, billable metrics, prices, coupons, tax rates and FX rates."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from billing_core import queries
from billing_core.api import models as m
from billing_core.api.auth import Caller, allow, allow_write
from billing_core.api.idempotency import run
from billing_core.api.routing import (
    CATALOG,
    READERS,
    Limit,
    PathId,
    QueryCurrency,
    QueryId,
    StartingAfter,
    answer,
    page,
    read,
    responses,
)
from billing_core.context import BillingContext
from billing_core.services.create_billable_metric import create_billable_metric
from billing_core.services.create_coupon import create_coupon
from billing_core.services.create_price import create_price
from billing_core.services.create_product import create_product
from billing_core.services.create_tax_rate import create_tax_rate
from billing_core.services.record_fx_rate import record_fx_rate

router = APIRouter(prefix="/v1", tags=["catalog"])

Reader = Annotated[Caller, Depends(allow(*READERS))]
Writer = Annotated[Caller, Depends(allow_write(*CATALOG))]
MetricCode = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.]+$")]

# ------------------------------------------------------------------------------------- products


@router.post(
    "/products",
    status_code=201,
    response_model=m.Product,
    summary="Create a product",
    responses=responses(write=True),
)
def create_product_(body: m.ProductCreate, caller: Writer) -> Response:
    def action(ctx: BillingContext) -> m.Product:
        product = create_product(ctx, name=body.name)
        with ctx.read() as conn:
            return m.Product.model_validate(queries.get_product(conn, product.id))

    return run(caller, action, status_code=201)


@router.get("/products", response_model=m.ProductList, summary="List products", responses=responses())
def list_products(caller: Reader, limit: Limit = 10, starting_after: StartingAfter = None) -> Response:
    rows = read(caller, lambda conn: queries.list_products(conn, limit=limit, starting_after=starting_after))
    return page(m.ProductList, m.Product, rows)


@router.get(
    "/products/{product_id}", response_model=m.Product, summary="Get a product", responses=responses()
)
def get_product(product_id: PathId, caller: Reader) -> Response:
    return answer(m.Product.model_validate(read(caller, lambda conn: queries.get_product(conn, product_id))))


# ---------------------------------------------------------------------------------------- metrics


@router.post(
    "/billable_metrics",
    status_code=201,
    response_model=m.BillableMetric,
    summary="Declare a billable metric",
    responses=responses(write=True),
)
def create_metric(body: m.BillableMetricCreate, caller: Writer) -> Response:
    """What usage events measure and how they aggregate over a period (`sum`, `max`,
    `unique_count`, `last`). Declaring the same code with the same aggregation again is a no-op."""

    def action(ctx: BillingContext) -> m.BillableMetric:
        metric = create_billable_metric(ctx, code=body.code, name=body.name, aggregation=body.aggregation)
        with ctx.read() as conn:
            return m.BillableMetric.model_validate(queries.get_metric(conn, metric.code))

    return run(caller, action, status_code=201)


@router.get(
    "/billable_metrics",
    response_model=m.BillableMetricList,
    summary="List billable metrics",
    responses=responses(),
)
def list_metrics(
    caller: Reader,
    limit: Limit = 10,
    starting_after: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            pattern=r"^[A-Za-z0-9_.]+$",
            description="The last code of the previous page.",
        ),
    ] = None,
) -> Response:
    """Ordered by code, descending."""
    rows = read(caller, lambda conn: queries.list_metrics(conn, limit=limit, starting_after=starting_after))
    return page(m.BillableMetricList, m.BillableMetric, rows)


@router.get(
    "/billable_metrics/{code}",
    response_model=m.BillableMetric,
    summary="Get a billable metric",
    responses=responses(),
)
def get_metric(code: MetricCode, caller: Reader) -> Response:
    return answer(m.BillableMetric.model_validate(read(caller, lambda conn: queries.get_metric(conn, code))))


# ----------------------------------------------------------------------------------------- prices


@router.post(
    "/prices",
    status_code=201,
    response_model=m.Price,
    summary="Create a price",
    responses=responses(write=True),
)
def create_price_(body: m.PriceCreate, caller: Writer) -> Response:
    """Flat, per unit, graduated or volume tiers, or package pricing; licensed (a quantity on the
    subscription) or metered (usage of a billable metric); monthly or yearly, every
    `interval_count` intervals; with trial days. Unit amounts are exact decimals of minor units and
    may carry fractions (`"0.15"`)."""

    def action(ctx: BillingContext) -> m.Price:
        values = body.model_dump(exclude={"tiers"})
        tiers = [tier.model_dump() for tier in body.tiers]
        price = create_price(ctx, tiers=tiers, **values)
        with ctx.read() as conn:
            return m.Price.model_validate(queries.get_price(conn, price.id))

    return run(caller, action, status_code=201)


@router.get("/prices", response_model=m.PriceList, summary="List prices", responses=responses())
def list_prices(
    caller: Reader,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    product_id: QueryId = None,
    currency: QueryCurrency = None,
) -> Response:
    rows = read(
        caller,
        lambda conn: queries.list_prices(
            conn, limit=limit, starting_after=starting_after, product_id=product_id, currency=currency
        ),
    )
    return page(m.PriceList, m.Price, rows)


@router.get("/prices/{price_id}", response_model=m.Price, summary="Get a price", responses=responses())
def get_price(price_id: PathId, caller: Reader) -> Response:
    return answer(m.Price.model_validate(read(caller, lambda conn: queries.get_price(conn, price_id))))


# ---------------------------------------------------------------------------------------- coupons


@router.post(
    "/coupons",
    status_code=201,
    response_model=m.Coupon,
    summary="Create a coupon",
    responses=responses(write=True),
)
def create_coupon_(body: m.CouponCreate, caller: Writer) -> Response:
    """A percentage (`percent_off`) or a fixed amount (`amount_off_minor` with `currency`) off,
    `once`, `repeating` for `duration_in_periods` invoices, or `forever`."""

    def action(ctx: BillingContext) -> m.Coupon:
        coupon = create_coupon(ctx, **body.model_dump())
        with ctx.read() as conn:
            return m.Coupon.model_validate(queries.get_coupon(conn, coupon.id))

    return run(caller, action, status_code=201)


@router.get("/coupons", response_model=m.CouponList, summary="List coupons", responses=responses())
def list_coupons(caller: Reader, limit: Limit = 10, starting_after: StartingAfter = None) -> Response:
    rows = read(caller, lambda conn: queries.list_coupons(conn, limit=limit, starting_after=starting_after))
    return page(m.CouponList, m.Coupon, rows)


@router.get("/coupons/{coupon_id}", response_model=m.Coupon, summary="Get a coupon", responses=responses())
def get_coupon(coupon_id: PathId, caller: Reader) -> Response:
    return answer(m.Coupon.model_validate(read(caller, lambda conn: queries.get_coupon(conn, coupon_id))))


# -------------------------------------------------------------------------------------- tax rates


@router.post(
    "/tax_rates",
    status_code=201,
    response_model=m.TaxRate,
    summary="Create a tax rate",
    responses=responses(write=True),
)
def create_tax_rate_(body: m.TaxRateCreate, caller: Writer) -> Response:
    """Exclusive (added on top) or inclusive (already in the price), for a jurisdiction."""

    def action(ctx: BillingContext) -> m.TaxRate:
        rate = create_tax_rate(ctx, **body.model_dump())
        with ctx.read() as conn:
            return m.TaxRate.model_validate(queries.get_tax_rate(conn, rate.id))

    return run(caller, action, status_code=201)


@router.get("/tax_rates", response_model=m.TaxRateList, summary="List tax rates", responses=responses())
def list_tax_rates(caller: Reader, limit: Limit = 10, starting_after: StartingAfter = None) -> Response:
    rows = read(caller, lambda conn: queries.list_tax_rates(conn, limit=limit, starting_after=starting_after))
    return page(m.TaxRateList, m.TaxRate, rows)


@router.get(
    "/tax_rates/{tax_rate_id}", response_model=m.TaxRate, summary="Get a tax rate", responses=responses()
)
def get_tax_rate(tax_rate_id: PathId, caller: Reader) -> Response:
    return answer(
        m.TaxRate.model_validate(read(caller, lambda conn: queries.get_tax_rate(conn, tax_rate_id)))
    )


# --------------------------------------------------------------------------------------- fx rates


@router.post(
    "/fx_rates",
    status_code=201,
    response_model=m.FxRate,
    summary="Record an exchange rate",
    responses=responses(write=True),
)
def record_fx_rate_(body: m.FxRateCreate, caller: Writer) -> Response:
    """One `base` unit buys `rate` `quote` units from `effective_at` on (used by reports in one
    currency). The same rate for the same instant again is a no-op; another rate is refused."""

    def action(ctx: BillingContext) -> m.FxRate:
        rate = record_fx_rate(ctx, **body.model_dump())
        return m.FxRate(
            base=rate.base, quote=rate.quote, rate=format(rate.rate, "f"), effective_at=rate.effective_at
        )

    return run(caller, action, status_code=201)
