"""The FastAPI application: :func:`create_app` for a context, :func:`create_app_from_settings`.

Tests build the app around their own context (a frozen clock, a scripted gateway, a throwaway
database) and call it in process; ``recoup api`` builds it from the settings and serves it with
uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billing_core.api import errors
from billing_core.api.auth import KeyVerifier, public
from billing_core.api.idempotency import json_response
from billing_core.api.models import Health, UsageBatchIn
from billing_core.api.routes import (
    api_keys,
    catalog,
    customers,
    disputes,
    invoices,
    payments,
    subscriptions,
    usage,
)
from billing_core.api.usage_writer import UsageWriter
from billing_core.context import BillingContext

if TYPE_CHECKING:
    from recoup.settings import Settings

VERSION = "1"
MAX_BODY_BYTES = 16 * 1024 * 1024  # a full batch of 10,000 usage events with long keys fits

DESCRIPTION = """
Recoup's billing REST API: customers, the catalog, subscriptions, usage, invoices, payments,
refunds, credit notes, disputes and chargebacks, over the billing core's use cases.

* **Authentication**: `Authorization: Bearer rk_<id>_<secret>`. Each key has a role (`service`,
  `finance`, `analyst`, `admin`); each route lists the roles it admits.
* **Idempotency**: send `Idempotency-Key` with any POST; a retry with the same key and body
  within 24 hours gets the first response back and changes nothing.
* **Money**: integers of minor units (`amount_minor`) beside an ISO 4217 `currency`.
* **Time**: ISO 8601 instants with an offset.
* **Lists**: newest first; `limit` (1 to 100) and `starting_after` (the last id of a page).
* **Errors**: `{"error": {"code", "message", "field", "expected", "got"}}`.
"""

TAGS: list[dict[str, Any]] = [
    {"name": "customers", "description": "Customers and their cards."},
    {"name": "catalog", "description": "Products, billable metrics, prices, coupons, tax rates, FX rates."},
    {"name": "subscriptions", "description": "Subscriptions and their lifecycle."},
    {"name": "usage", "description": "Metered usage, idempotent by event id."},
    {"name": "invoices", "description": "Invoices, their payment, voiding and write-off; one-time charges."},
    {"name": "payments", "description": "Payments and refunds."},
    {"name": "credit notes", "description": "Corrections of finalized invoices."},
    {"name": "disputes", "description": "Customers' disputes, their review and resolution."},
    {"name": "chargebacks", "description": "Payments pulled back by card networks."},
    {"name": "api keys", "description": "Who may call the API (admin only)."},
    {"name": "health", "description": "Liveness."},
]


def create_app(ctx: BillingContext, *, key_cache_seconds: float = 1.0) -> FastAPI:
    """The API over ``ctx``'s database, clock and payment gateway."""
    app = FastAPI(
        title="Recoup billing API",
        version=VERSION,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.state.ctx = ctx
    app.state.keys = KeyVerifier(ctx, cache_seconds=key_cache_seconds)
    app.state.usage_writer = UsageWriter(ctx)
    errors.install(app)

    @app.get(
        "/healthz",
        response_model=Health,
        summary="Is the API up?",
        tags=["health"],
        dependencies=[Depends(public)],
    )
    async def health() -> Response:
        return json_response(Health(), 200)

    # The routes go straight into the app's own table, the busiest (usage ingestion) first:
    # requests are matched against the routes in order, and an included router would be
    # searched twice per request (once to match, once to dispatch).
    for module in (usage, customers, subscriptions, invoices, payments, disputes, catalog, api_keys):
        app.router.routes.extend(module.router.routes)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=TAGS,
            )
            # the batch route reads its body itself (for speed): its schema is declared by hand
            _, extra = models_json_schema(
                [(UsageBatchIn, "validation")], ref_template="#/components/schemas/{model}"
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in extra.get("$defs", {}).items():
                components.setdefault(name, definition)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with the API's JSON error (413 ``body_too_large``)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # answered by the API's handler of HTTP errors, as JSON
                    raise HTTPException(413, f"the body is over {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


def _too_large(max_bytes: int) -> Response:
    return errors.error_response(
        413,
        "body_too_large",
        f"the body is over {max_bytes} bytes",
        field="body",
        expected=f"at most {max_bytes} bytes (a usage batch takes up to 10,000 events)",
    )


def create_app_from_settings(settings: Settings | None = None, **overrides: Any) -> FastAPI:
    """The API over the database of ``settings`` (read from the environment when not given)."""
    from recoup.settings import Settings

    ctx = BillingContext.from_settings(settings or Settings(), **overrides)
    return create_app(ctx)


__all__ = ["create_app", "create_app_from_settings"]
