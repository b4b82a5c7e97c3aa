"""Bad input: a JSON error naming the field, what was expected and what arrived; nothing written."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from billing_core.api.keys import Role
from billing_core.context import BillingContext
from billing_core.payments import ScriptedGateway
from tests.api.conftest import Api, snapshot

CARD = {"brand": "visa", "bin": "424242", "last4": "4242", "exp_month": 12, "exp_year": 2030}


@pytest.fixture
def world(api: Api) -> dict[str, int]:
    product = api.ok("POST", "/v1/products", {"name": "Plan"})["id"]
    api.ok("POST", "/v1/billable_metrics", {"code": "api_calls", "name": "API calls", "aggregation": "sum"})
    usd = api.ok(
        "POST",
        "/v1/prices",
        {
            "product_id": product,
            "currency": "USD",
            "model": "flat",
            "interval": "month",
            "unit_amount_minor": 10_00,
        },
    )["id"]
    eur = api.ok(
        "POST",
        "/v1/prices",
        {
            "product_id": product,
            "currency": "EUR",
            "model": "flat",
            "interval": "month",
            "unit_amount_minor": 9_00,
        },
    )["id"]
    customer = api.ok("POST", "/v1/customers", {"email": "a@example.com", "name": "A", "currency": "USD"})[
        "id"
    ]
    api.ok("POST", f"/v1/customers/{customer}/payment_methods", CARD)
    sub = api.ok("POST", "/v1/subscriptions", {"customer_id": customer, "items": [{"price_id": usd}]})["id"]
    (invoice,) = api.ok("GET", "/v1/invoices", subscription_id=sub)["data"]
    (payment,) = api.ok("GET", "/v1/payments")["data"]
    return {
        "product": product,
        "usd": usd,
        "eur": eur,
        "customer": customer,
        "sub": sub,
        "invoice": invoice["id"],
        "payment": payment["id"],
    }


def refused(
    api: Api, ctx: BillingContext, path: str, body: Any, status: int, field: str, code: str = "invalid_input"
) -> dict[str, Any]:
    """POST ``body``; insist on the error and that nothing was written. Returns the error."""
    before = snapshot(ctx.engine)
    response = api.post(path, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field", "expected", "got"}
    assert (error["field"], error["code"]) == (field, code), error
    assert error["expected"]
    assert snapshot(ctx.engine) == before
    return dict(error)


# ----------------------------------------------------------------------- the schema refuses (422)


def test_a_wrong_type_is_named_by_its_path(api: Api, ctx: BillingContext, world: dict[str, int]) -> None:
    error = refused(
        api,
        ctx,
        "/v1/subscriptions",
        {"customer_id": world["customer"], "items": [{"price_id": "one"}]},
        422,
        "items[0].price_id",
    )
    assert error["got"] == "one"
    assert "integer" in error["expected"]


def test_a_missing_field(api: Api, ctx: BillingContext) -> None:
    error = refused(api, ctx, "/v1/customers", {"name": "A", "currency": "USD"}, 422, "email")
    assert error["got"] is None
    assert "required" in error["expected"]


def test_an_unknown_field(api: Api, ctx: BillingContext) -> None:
    error = refused(
        api,
        ctx,
        "/v1/customers",
        {"email": "a@example.com", "name": "A", "currency": "USD", "vip": True},
        422,
        "vip",
    )
    assert error["got"] is True


def test_floats_are_refused_for_money_and_decimals(
    api: Api, ctx: BillingContext, world: dict[str, int]
) -> None:
    refused(
        api, ctx, "/v1/refunds", {"payment_id": world["payment"], "amount_minor": 1.5}, 422, "amount_minor"
    )
    body = {
        "product_id": world["product"],
        "currency": "USD",
        "model": "graduated",
        "interval": "month",
        "tiers": [{"up_to": 10, "unit_amount_minor": 0.1}, {}],
    }
    error = refused(api, ctx, "/v1/prices", body, 422, "tiers[0].unit_amount_minor")
    assert "floats are inexact" in error["expected"]


def test_instants_need_an_offset(api: Api, ctx: BillingContext, world: dict[str, int]) -> None:
    rate = {"base": "EUR", "quote": "USD", "rate": "1.1"}
    refused(api, ctx, "/v1/fx_rates", {**rate, "effective_at": "2026-01-01T00:00:00"}, 422, "effective_at")
    refused(api, ctx, "/v1/fx_rates", {**rate, "effective_at": 1767225600}, 422, "effective_at")
    refused(
        api, ctx, "/v1/fx_rates", {**rate, "effective_at": "0001-01-01T00:00:00+05:00"}, 422, "effective_at"
    )
    # usage events are checked by the ingestion use case itself: 400, same shape
    event = {"event_id": "e", "customer_id": world["customer"], "metric_code": "api_calls"}
    for bad in ("2026-01-01T00:00:00", 1767225600, "0001-01-01T00:00:00+05:00", "soon"):
        refused(api, ctx, "/v1/usage_events", {**event, "occurred_at": bad}, 400, "occurred_at")
    refused(
        api,
        ctx,
        "/v1/usage_events",
        {**event, "occurred_at": "2026-01-01T00:00:00Z", "vaule": 2},
        400,
        "vaule",
    )


def test_text_the_database_cannot_hold(api: Api, ctx: BillingContext) -> None:
    base = {"email": "a@example.com", "currency": "USD"}
    refused(api, ctx, "/v1/customers", {**base, "name": "x" * 257}, 422, "name")
    refused(api, ctx, "/v1/customers", {**base, "name": "nul\x00byte"}, 422, "name")
    before = snapshot(ctx.engine)
    surrogate = api.client.post(
        "/v1/customers",
        content=b'{"email": "a@example.com", "currency": "USD", "name": "\\ud800"}',
        headers={**api.headers(), "Content-Type": "application/json"},
    )
    assert surrogate.status_code == 422
    assert surrogate.json()["error"]["field"] == "name"
    assert snapshot(ctx.engine) == before


def test_ids_beyond_the_columns(api: Api, ctx: BillingContext) -> None:
    refused(
        api,
        ctx,
        "/v1/usage_events",
        {"event_id": "e", "customer_id": 2**40, "metric_code": "m", "occurred_at": "2026-01-01T00:00:00Z"},
        400,
        "customer_id",
    )
    refused(
        api, ctx, "/v1/subscriptions", {"customer_id": 2**40, "items": [{"price_id": 1}]}, 422, "customer_id"
    )
    response = api.get(f"/v1/customers/{2**70}")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "customer_id"


def test_malformed_json(api: Api, ctx: BillingContext) -> None:
    before = snapshot(ctx.engine)
    for path in ("/v1/customers", "/v1/usage_events", "/v1/usage_events/batch"):
        response = api.client.post(
            path, content=b'{"email": ', headers={**api.headers(), "Content-Type": "application/json"}
        )
        assert response.status_code == 422, path
        assert response.json()["error"]["field"] == "body"
    assert snapshot(ctx.engine) == before


def test_query_parameters(api: Api) -> None:
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"starting_after": "x"}, "starting_after"),
        ({"status": "lost"}, "status"),
    ):
        response = api.get("/v1/subscriptions", **params)
        assert response.status_code == 422, params
        assert response.json()["error"]["field"] == field


def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    missing = api.get("/v1/nothing-here")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    wrong = api.client.delete("/v1/customers", headers=api.headers())
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")


# ------------------------------------------------------------------ the use cases refuse (4xx)


def test_use_case_refusals(api: Api, ctx: BillingContext, world: dict[str, int]) -> None:
    error = refused(
        api, ctx, "/v1/customers", {"email": "not-an-email", "name": "A", "currency": "USD"}, 400, "email"
    )
    assert error["got"] == "not-an-email"
    refused(
        api,
        ctx,
        "/v1/customers",
        {"email": "a@example.com", "name": "A", "currency": "XXX"},
        400,
        "currency",
        "unknown_currency",
    )
    refused(
        api,
        ctx,
        "/v1/customers",
        {"email": "a@example.com", "name": "A", "currency": "USD", "timezone": "Mars/Base"},
        400,
        "timezone",
    )
    refused(
        api,
        ctx,
        "/v1/subscriptions",
        {"customer_id": world["customer"], "items": [{"price_id": world["eur"]}]},
        400,
        "items[0].price_id",
        "currency_mismatch",
    )
    refused(
        api,
        ctx,
        "/v1/subscriptions",
        {"customer_id": 999, "items": [{"price_id": world["usd"]}]},
        404,
        "customer_id",
        "not_found",
    )
    refused(
        api,
        ctx,
        "/v1/one_time_charges",
        {"customer_id": world["customer"], "description": "x", "unit_amount_minor": 1, "currency": "EUR"},
        400,
        "currency",
        "currency_mismatch",
    )
    refused(
        api, ctx, "/v1/refunds", {"payment_id": world["payment"], "amount_minor": 10_01}, 400, "amount_minor"
    )
    refused(
        api,
        ctx,
        "/v1/credit_notes",
        {
            "invoice_id": world["invoice"],
            "amount_minor": 1_00,
            "reason": "duplicate",
            "outcome": "reduce_amount_due",
        },
        400,
        "outcome",
    )
    refused(
        api,
        ctx,
        "/v1/disputes",
        {
            "customer_id": world["customer"],
            "message": "x",
            "amount_minor": 1,
            "invoice_id": world["invoice"],
            "payment_id": world["payment"],
        },
        400,
        "invoice_id",
    )
    refused(
        api,
        ctx,
        "/v1/prices",
        {
            "product_id": world["product"],
            "currency": "USD",
            "model": "flat",
            "interval": "month",
            "usage_type": "metered",
            "metric_code": "api_calls",
        },
        400,
        "model",
    )
    refused(api, ctx, "/v1/coupons", {"name": "x", "duration": "once"}, 400, "percent_off")
    refused(
        api,
        ctx,
        "/v1/tax_rates",
        {"jurisdiction": "Germany", "percentage": "19", "inclusive": False},
        400,
        "jurisdiction",
    )
    refused(
        api,
        ctx,
        "/v1/fx_rates",
        {"base": "EUR", "quote": "EUR", "rate": "1", "effective_at": "2026-01-01T00:00:00Z"},
        400,
        "quote",
    )


def test_states_that_do_not_allow_the_action_are_409(
    api: Api, ctx: BillingContext, world: dict[str, int]
) -> None:
    error = refused(
        api, ctx, f"/v1/invoices/{world['invoice']}/void", None, 409, "invoice.status", "invalid_transition"
    )
    assert error["got"] == "paid"
    refused(
        api,
        ctx,
        f"/v1/subscriptions/{world['sub']}/resume",
        None,
        409,
        "subscription.status",
        "invalid_transition",
    )
    api.ok("POST", f"/v1/subscriptions/{world['sub']}/cancel")
    refused(
        api,
        ctx,
        f"/v1/subscriptions/{world['sub']}/pause",
        None,
        409,
        "subscription.status",
        "invalid_transition",
    )


def test_an_event_id_reused_with_another_payload(
    api: Api, ctx: BillingContext, world: dict[str, int]
) -> None:
    event = {
        "event_id": "e-1",
        "customer_id": world["customer"],
        "metric_code": "api_calls",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    api.ok("POST", "/v1/usage_events", event)
    refused(api, ctx, "/v1/usage_events", {**event, "value": 2}, 409, "event_id", "idempotency_conflict")
    batch = [{**event, "event_id": f"e-{i}"} for i in range(2, 6)] + [{**event, "value": 3}]
    refused(
        api,
        ctx,
        "/v1/usage_events/batch",
        {"events": batch},
        409,
        "events[4].event_id",
        "idempotency_conflict",
    )


def test_one_bad_event_refuses_the_whole_batch(api: Api, ctx: BillingContext, world: dict[str, int]) -> None:
    good = {
        "customer_id": world["customer"],
        "metric_code": "api_calls",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    events: list[dict[str, Any]] = [{**good, "event_id": f"b-{i}"} for i in range(50)]
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"customer_id": 424242}, 404, "customer_id"),
        ({"metric_code": "seats"}, 404, "metric_code"),
        ({"customer_id": "7"}, 400, "customer_id"),
        ({"value": -1}, 400, "value"),
        ({"value": 1.5}, 400, "value"),
        ({"occurred_at": "yesterday"}, 400, "occurred_at"),
        ({"occurred_at": "2026-01-01T00:00:00"}, 400, "occurred_at"),
        ({"event_id": ""}, 400, "event_id"),
        ({"event_id": "x" * 129}, 400, "event_id"),
        ({"unique_key": ""}, 400, "unique_key"),
        ({"colour": "red"}, 400, "colour"),
    ]
    for change, status, field in cases:
        bad = [*events[:41], {**events[41], **change}, *events[42:]]
        error = refused(
            api,
            ctx,
            "/v1/usage_events/batch",
            {"events": bad},
            status,
            f"events[41].{field}",
            "not_found" if status == 404 else "invalid_input",
        )
        assert error["got"] == change.get(field, error["got"])
    refused(api, ctx, "/v1/usage_events/batch", {"events": [*events[:3], "event"]}, 400, "events[3]")
    refused(api, ctx, "/v1/usage_events/batch", {"events": []}, 400, "events")
    refused(api, ctx, "/v1/usage_events/batch", {"events": events, "extra": 1}, 400, "extra")
    refused(api, ctx, "/v1/usage_events/batch", [events], 400, "body")
    too_many = [{**good, "event_id": f"m-{i}"} for i in range(10_001)]
    refused(api, ctx, "/v1/usage_events/batch", {"events": too_many}, 400, "events")


def test_a_body_too_large(api: Api) -> None:
    response = api.client.post(
        "/v1/usage_events/batch",
        content=json.dumps({"events": ["x" * 1024] * (17 * 1024)}).encode(),
        headers={**api.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_the_error_names_a_declined_card_nowhere(
    api: Api, world: dict[str, int], gateway: ScriptedGateway
) -> None:
    """A decline is an answer, not an error: 200 with the decline code on the attempt."""
    from billing_core.payments import DeclineCode

    gateway.push(DeclineCode.INSUFFICIENT_FUNDS)
    charge = api.ok(
        "POST",
        "/v1/one_time_charges",
        {"customer_id": world["customer"], "description": "x", "unit_amount_minor": 5_00, "currency": "USD"},
    )
    gateway.push(DeclineCode.EXPIRED_CARD)
    paid = api.ok("POST", f"/v1/invoices/{charge['invoice_id']}/pay")
    assert paid["attempt"]["decline_code"] == "expired_card"
    assert paid["invoice"]["status"] == "open"


def test_forbidden_and_unauthenticated_write_nothing(
    api: Api, ctx: BillingContext, client: httpx.Client
) -> None:
    before = snapshot(ctx.engine)
    body = {"email": "a@example.com", "name": "A", "currency": "USD"}
    assert api.as_(Role.ANALYST).post("/v1/customers", body).status_code == 403
    assert client.post("/v1/customers", json=body).status_code == 401
    assert snapshot(ctx.engine) == before


def test_a_streamed_body_too_large(app: Any, keys: dict[Role, str]) -> None:
    """Without a Content-Length the body is counted as it arrives, and refused past the limit."""
    import anyio

    from billing_core.api.app import MAX_BODY_BYTES

    chunk = b" " * (1024 * 1024)
    chunks = MAX_BODY_BYTES // len(chunk) + 2
    sent: list[dict[str, Any]] = []

    async def call() -> None:
        remaining = chunks

        async def receive() -> dict[str, Any]:
            nonlocal remaining
            remaining -= 1
            return {"type": "http.request", "body": chunk, "more_body": remaining > 0}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/usage_events/batch",
            "raw_path": b"/v1/usage_events/batch",
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"testserver"),
                (b"authorization", f"Bearer {keys[Role.SERVICE]}".encode()),
                (b"content-type", b"application/json"),
                (b"transfer-encoding", b"chunked"),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
        }
        await app(scope, receive, send)

    anyio.run(call)
    assert sent[0]["status"] == 413
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["error"]["code"] == "body_too_large"
