"""Every resource's happy path over HTTP, against the real database: what the API answers is
what the billing core recorded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from billing_core.api.keys import Role
from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db import schema as t
from billing_core.payments import DeclineCode, ScriptedGateway
from tests.api.conftest import Api


@pytest.fixture
def catalog(api: Api) -> dict[str, Any]:
    product = api.ok("POST", "/v1/products", {"name": "Pro plan"})
    metric = api.ok(
        "POST", "/v1/billable_metrics", {"code": "api_calls", "name": "API calls", "aggregation": "sum"}
    )
    flat = api.ok(
        "POST",
        "/v1/prices",
        {
            "product_id": product["id"],
            "currency": "USD",
            "model": "flat",
            "interval": "month",
            "unit_amount_minor": 29_00,
        },
    )
    bigger = api.ok(
        "POST",
        "/v1/prices",
        {
            "product_id": product["id"],
            "currency": "USD",
            "model": "flat",
            "interval": "month",
            "unit_amount_minor": 99_00,
        },
    )
    metered = api.ok(
        "POST",
        "/v1/prices",
        {
            "product_id": product["id"],
            "currency": "USD",
            "model": "graduated",
            "interval": "month",
            "usage_type": "metered",
            "metric_code": "api_calls",
            "tiers": [
                {"up_to": 1000, "unit_amount_minor": "0.15"},
                {"up_to": None, "unit_amount_minor": "0.1"},
            ],
        },
    )
    return {"product": product, "metric": metric, "flat": flat, "bigger": bigger, "metered": metered}


@pytest.fixture
def customer(api: Api) -> dict[str, Any]:
    customer = api.ok("POST", "/v1/customers", {"email": "ada@example.com", "name": "Ada", "currency": "USD"})
    api.ok(
        "POST",
        f"/v1/customers/{customer['id']}/payment_methods",
        {"brand": "visa", "bin": "424242", "last4": "4242", "exp_month": 12, "exp_year": 2030},
    )
    return api.ok("GET", f"/v1/customers/{customer['id']}")


def subscribe(api: Api, customer: dict[str, Any], *prices: dict[str, Any]) -> dict[str, Any]:
    body = {"customer_id": customer["id"], "items": [{"price_id": p["id"]} for p in prices]}
    return api.ok("POST", "/v1/subscriptions", body)


def test_every_price_model_the_catalog_supports(api: Api, catalog: dict[str, Any]) -> None:
    product = catalog["product"]["id"]
    base = {"product_id": product, "currency": "EUR", "interval": "month"}
    bodies = [
        {**base, "model": "flat", "unit_amount_minor": 10_00, "trial_days": 14},
        {**base, "model": "per_unit", "unit_amount_minor": "12.5", "interval": "year"},
        {
            **base,
            "model": "volume",
            "tiers": [
                {"up_to": 10, "unit_amount_minor": 5_00},
                {"unit_amount_minor": 4_00, "flat_amount_minor": 1_00},
            ],
        },
        {
            **base,
            "model": "package",
            "unit_amount_minor": 20_00,
            "package_size": 1000,
            "usage_type": "metered",
            "metric_code": "api_calls",
        },
        {
            **base,
            "model": "per_unit",
            "unit_amount_minor": "0.15",
            "usage_type": "metered",
            "metric_code": "api_calls",
            "interval_count": 3,
        },
    ]
    created = [api.ok("POST", "/v1/prices", body) for body in bodies]
    assert [p["model"] for p in created] == ["flat", "per_unit", "volume", "package", "per_unit"]
    assert created[0]["trial_days"] == 14
    assert created[1]["unit_amount_minor"] == "12.5"
    assert created[2]["tiers"] == [
        {"up_to": 10, "unit_amount_minor": "500", "flat_amount_minor": 0},
        {"up_to": None, "unit_amount_minor": "400", "flat_amount_minor": 100},
    ]
    assert created[3]["package_size"] == 1000
    assert created[4]["interval_count"] == 3
    assert api.ok("GET", f"/v1/prices/{created[2]['id']}") == created[2]
    listed = api.ok("GET", "/v1/prices", currency="EUR", limit=100)
    assert [p["id"] for p in listed["data"]] == [p["id"] for p in reversed(created)]
    assert api.ok("GET", f"/v1/billable_metrics/{catalog['metric']['code']}")["aggregation"] == "sum"
    assert api.ok("GET", f"/v1/products/{product}")["name"] == "Pro plan"


def test_coupons_tax_rates_and_fx_rates(api: Api) -> None:
    percent = api.ok(
        "POST",
        "/v1/coupons",
        {"name": "Launch", "duration": "repeating", "percent_off": "12.5", "duration_in_periods": 3},
    )
    amount = api.ok(
        "POST",
        "/v1/coupons",
        {"name": "Ten off", "duration": "once", "amount_off_minor": 10_00, "currency": "USD"},
    )
    assert percent["percent_off"] == "12.5"
    assert (amount["amount_off_minor"], amount["currency"]) == (10_00, "USD")
    assert [c["id"] for c in api.ok("GET", "/v1/coupons")["data"]] == [amount["id"], percent["id"]]
    vat = api.ok(
        "POST",
        "/v1/tax_rates",
        {"jurisdiction": "DE", "percentage": "19", "inclusive": True, "display_name": "USt"},
    )
    assert (vat["percentage"], vat["inclusive"]) == ("19", True)
    assert api.ok("GET", f"/v1/tax_rates/{vat['id']}") == vat
    rate = api.ok(
        "POST",
        "/v1/fx_rates",
        {"base": "EUR", "quote": "USD", "rate": "1.0825", "effective_at": "2026-01-01T00:00:00+01:00"},
    )
    assert rate == {
        "object": "fx_rate",
        "base": "EUR",
        "quote": "USD",
        "rate": "1.0825",
        "effective_at": "2025-12-31T23:00:00Z",
    }


def test_customer_card_subscription_invoice_and_payment(
    api: Api, catalog: dict[str, Any], customer: dict[str, Any], ctx: BillingContext
) -> None:
    assert customer["default_payment_method_id"] is not None
    cards = api.ok("GET", f"/v1/customers/{customer['id']}/payment_methods")
    assert [c["last4"] for c in cards["data"]] == ["4242"]

    sub = subscribe(api, customer, catalog["flat"], catalog["metered"])
    assert sub["status"] == "active"
    assert [i["price_id"] for i in sub["items"]] == [catalog["flat"]["id"], catalog["metered"]["id"]]
    assert sub["current_period_start"] == "2026-01-01T00:00:00Z"

    invoices = api.ok("GET", "/v1/invoices", subscription_id=sub["id"])["data"]
    assert len(invoices) == 1
    assert invoices[0]["lines"] is None
    invoice = api.ok("GET", f"/v1/invoices/{invoices[0]['id']}")
    assert (invoice["status"], invoice["total_minor"], invoice["currency"]) == ("paid", 29_00, "USD")
    assert [(line["kind"], line["amount_minor"]) for line in invoice["lines"]] == [("subscription", 29_00)]

    payments = api.ok("GET", "/v1/payments", invoice_id=invoice["id"])["data"]
    assert [(p["amount_minor"], p["currency"]) for p in payments] == [(29_00, "USD")]
    assert api.ok("GET", f"/v1/payments/{payments[0]['id']}") == payments[0]
    attempts = api.ok("GET", f"/v1/invoices/{invoice['id']}/payment_attempts")
    assert [(a["attempt_number"], a["status"]) for a in attempts] == [(1, "succeeded")]
    with ctx.read() as conn:
        stored = conn.execute(
            select(t.invoices.c.total_minor).where(t.invoices.c.id == invoice["id"])
        ).scalar_one()
    assert stored == 29_00


def test_usage_is_billed_at_renewal(
    api: Api, catalog: dict[str, Any], customer: dict[str, Any], ctx: BillingContext, clock: FrozenClock
) -> None:
    sub = subscribe(api, customer, catalog["flat"], catalog["metered"])
    one = {
        "event_id": "evt-1",
        "customer_id": customer["id"],
        "metric_code": "api_calls",
        "occurred_at": "2026-01-05T10:00:00Z",
        "value": 600,
    }
    assert api.ok("POST", "/v1/usage_events", one) == {
        "object": "usage_batch",
        "received": 1,
        "accepted": 1,
        "duplicates": 0,
    }
    assert api.ok("POST", "/v1/usage_events", one)["duplicates"] == 1
    batch = [
        {**one, "event_id": f"evt-{i}", "occurred_at": f"2026-01-{10 + i}T12:00:00+02:00", "value": 100}
        for i in range(2, 8)
    ]
    assert api.ok("POST", "/v1/usage_events/batch", {"events": [*batch, one]}) == {
        "object": "usage_batch",
        "received": 7,
        "accepted": 6,
        "duplicates": 1,
    }
    listed = api.ok("GET", "/v1/usage_events", customer_id=customer["id"], limit=3)
    assert [e["event_id"] for e in listed["data"]] == ["evt-7", "evt-6", "evt-5"]
    assert listed["has_more"] is True
    assert listed["data"][0]["occurred_at"] == "2026-01-17T10:00:00Z"

    from billing_core.services.billing_run import run_billing

    clock.set(clock.now() + timedelta(days=31))
    run_billing(ctx, as_of=clock.now())
    invoices = api.ok("GET", "/v1/invoices", subscription_id=sub["id"])["data"]
    renewal = api.ok("GET", f"/v1/invoices/{invoices[0]['id']}")
    usage = [line for line in renewal["lines"] if line["kind"] == "usage"]
    # 1,200 calls: 1,000 at 0.15 and 200 at 0.10 minor units
    assert [(u["quantity"], u["amount_minor"]) for u in usage] == [(1200, 170)]


def test_plan_change_pause_resume_cancel(
    api: Api, catalog: dict[str, Any], customer: dict[str, Any], clock: FrozenClock
) -> None:
    sub = subscribe(api, customer, catalog["flat"])
    clock.advance(timedelta(days=10))
    change = api.ok(
        "POST",
        f"/v1/subscriptions/{sub['id']}/change_plan",
        {"items": [{"price_id": catalog["bigger"]["id"]}]},
    )
    assert change["effective"] == "immediately"
    assert change["invoice_id"] is not None
    assert change["amount_due_minor"] > 0
    assert [i["price_id"] for i in change["subscription"]["items"]] == [catalog["bigger"]["id"]]
    later = api.ok(
        "POST",
        f"/v1/subscriptions/{sub['id']}/change_plan",
        {"items": [{"price_id": catalog["flat"]["id"], "quantity": 2}], "effective": "period_end"},
    )
    assert later["invoice_id"] is None
    assert later["subscription"]["pending_change"]["items"] == [
        {"price_id": catalog["flat"]["id"], "quantity": 2}
    ]

    clock.advance(timedelta(days=2))
    paused = api.ok("POST", f"/v1/subscriptions/{sub['id']}/pause")
    assert paused["status"] == "paused"
    assert paused["paused_at"] == "2026-01-13T00:00:00Z"
    clock.advance(timedelta(days=5))
    resumed = api.ok("POST", f"/v1/subscriptions/{sub['id']}/resume")
    assert (resumed["status"], resumed["current_period_start"]) == ("active", "2026-01-18T00:00:00Z")
    ending = api.ok("POST", f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True})
    assert (ending["status"], ending["cancel_at_period_end"]) == ("active", True)
    clock.advance(timedelta(days=1))
    canceled = api.ok("POST", f"/v1/subscriptions/{sub['id']}/cancel", {"prorate": True})
    assert canceled["status"] == "canceled"
    assert canceled["ended_at"] == "2026-01-19T00:00:00Z"
    assert api.ok("GET", f"/v1/customers/{customer['id']}")["balance_minor"] > 0
    listed = api.ok("GET", "/v1/subscriptions", customer_id=customer["id"], status="canceled")
    assert [s["id"] for s in listed["data"]] == [sub["id"]]


def test_declined_payment_then_pay_void_and_write_off(
    api: Api, catalog: dict[str, Any], customer: dict[str, Any], gateway: ScriptedGateway
) -> None:
    gateway.push(DeclineCode.INSUFFICIENT_FUNDS)
    sub = subscribe(api, customer, catalog["flat"])
    assert sub["status"] == "past_due"
    (invoice,) = api.ok("GET", "/v1/invoices", subscription_id=sub["id"])["data"]
    assert invoice["status"] == "open"
    paid = api.ok("POST", f"/v1/invoices/{invoice['id']}/pay")
    assert paid["attempt"]["attempt_number"] == 2
    assert paid["attempt"]["status"] == "succeeded"
    assert (paid["invoice"]["status"], paid["invoice"]["amount_remaining_minor"]) == ("paid", 0)
    assert api.ok("GET", f"/v1/subscriptions/{sub['id']}")["status"] == "active"

    charge = api.ok(
        "POST",
        "/v1/one_time_charges",
        {
            "customer_id": customer["id"],
            "description": "Onboarding",
            "unit_amount_minor": 150_00,
            "currency": "USD",
        },
    )
    assert charge["invoice_id"] is not None
    gateway.push(DeclineCode.DO_NOT_HONOR)
    waiting = api.ok(
        "POST",
        "/v1/one_time_charges",
        {
            "customer_id": customer["id"],
            "description": "Extra seats",
            "unit_amount_minor": 5_00,
            "quantity": 3,
            "currency": "USD",
            "subscription_id": sub["id"],
        },
    )
    assert waiting["invoice_id"] is None
    assert waiting["quantity"] == 3

    gateway.push(DeclineCode.DO_NOT_HONOR, DeclineCode.DO_NOT_HONOR)
    other = api.ok("POST", "/v1/customers", {"email": "bo@example.com", "name": "Bo", "currency": "USD"})
    api.ok(
        "POST",
        f"/v1/customers/{other['id']}/payment_methods",
        {"brand": "mastercard", "bin": "555555", "last4": "4444", "exp_month": 1, "exp_year": 2031},
    )
    first = api.ok(
        "POST",
        "/v1/one_time_charges",
        {"customer_id": other["id"], "description": "A", "unit_amount_minor": 10_00, "currency": "USD"},
    )
    second = api.ok(
        "POST",
        "/v1/one_time_charges",
        {"customer_id": other["id"], "description": "B", "unit_amount_minor": 20_00, "currency": "USD"},
    )
    voided = api.ok("POST", f"/v1/invoices/{first['invoice_id']}/void")
    assert (voided["status"], voided["amount_remaining_minor"]) == ("void", 0)
    written_off = api.ok("POST", f"/v1/invoices/{second['invoice_id']}/mark_uncollectible")
    assert written_off["status"] == "uncollectible"
    attempts = api.ok("GET", f"/v1/invoices/{second['invoice_id']}/payment_attempts")
    assert [a["decline_code"] for a in attempts] == ["do_not_honor"]


def test_refunds_credit_notes_disputes_and_chargebacks(
    api: Api, catalog: dict[str, Any], customer: dict[str, Any], gateway: ScriptedGateway
) -> None:
    sub = subscribe(api, customer, catalog["flat"])
    (invoice,) = api.ok("GET", "/v1/invoices", subscription_id=sub["id"])["data"]
    (payment,) = api.ok("GET", "/v1/payments", customer_id=customer["id"])["data"]

    refund = api.ok(
        "POST", "/v1/refunds", {"payment_id": payment["id"], "amount_minor": 5_00, "reason": "duplicate"}
    )
    assert (refund["amount_minor"], refund["currency"], refund["reason"]) == (5_00, "USD", "duplicate")
    assert api.ok("GET", f"/v1/payments/{payment['id']}")["amount_refunded_minor"] == 5_00
    assert [r["id"] for r in api.ok("GET", "/v1/refunds", payment_id=payment["id"])["data"]] == [refund["id"]]

    balance = api.ok(
        "POST",
        "/v1/credit_notes",
        {
            "invoice_id": invoice["id"],
            "amount_minor": 3_00,
            "reason": "service_credit",
            "outcome": "customer_balance",
        },
    )
    assert balance["number"].startswith("CN-")
    assert balance["refund_id"] is None
    assert api.ok("GET", f"/v1/customers/{customer['id']}")["balance_minor"] == 3_00
    refunded = api.ok(
        "POST",
        "/v1/credit_notes",
        {
            "invoice_id": invoice["id"],
            "amount_minor": 2_00,
            "reason": "duplicate",
            "outcome": "refund",
            "memo": "sorry",
        },
    )
    assert refunded["refund_id"] is not None
    assert len(gateway.refund_requests) == 2
    notes = api.ok("GET", "/v1/credit_notes", invoice_id=invoice["id"])["data"]
    assert [n["amount_minor"] for n in notes] == [2_00, 3_00]
    assert api.ok("GET", f"/v1/credit_notes/{refunded['id']}")["memo"] == "sorry"

    dispute = api.ok(
        "POST",
        "/v1/disputes",
        {
            "customer_id": customer["id"],
            "message": "I never signed up for this",
            "amount_minor": 29_00,
            "payment_id": payment["id"],
        },
    )
    assert (dispute["status"], dispute["currency"]) == ("open", "USD")
    reviewed = api.ok("POST", f"/v1/disputes/{dispute['id']}/review")
    assert reviewed["status"] == "under_review"
    categorized = api.as_(Role.SERVICE).ok(
        "POST", f"/v1/disputes/{dispute['id']}/categorize", {"category": "unrecognised_or_fraudulent"}
    )
    assert categorized["category"] == "unrecognised_or_fraudulent"
    resolved = api.as_(Role.FINANCE).ok(
        "POST", f"/v1/disputes/{dispute['id']}/resolve", {"outcome": "upheld", "note": "signed up on 1 Jan"}
    )
    assert (resolved["status"], resolved["outcome"], resolved["resolution_note"]) == (
        "resolved",
        "upheld",
        "signed up on 1 Jan",
    )
    second = api.ok(
        "POST",
        "/v1/disputes",
        {
            "customer_id": customer["id"],
            "message": "wrong amount",
            "amount_minor": 1_00,
            "invoice_id": invoice["id"],
        },
    )
    assert (
        api.ok("POST", f"/v1/disputes/{second['id']}/withdraw", {"note": "my mistake"})["status"]
        == "withdrawn"
    )
    assert [d["id"] for d in api.ok("GET", "/v1/disputes", status="resolved")["data"]] == [dispute["id"]]

    chargeback = api.ok(
        "POST",
        "/v1/chargebacks",
        {
            "payment_id": payment["id"],
            "network_reference": "NET-1",
            "amount_minor": 20_00,
            "reason_code": "10.4",
            "fee_minor": 15_00,
        },
    )
    assert (chargeback["status"], chargeback["fee_minor"]) == ("open", 15_00)
    again = api.ok(
        "POST",
        "/v1/chargebacks",
        {
            "payment_id": payment["id"],
            "network_reference": "NET-1",
            "amount_minor": 20_00,
            "reason_code": "10.4",
        },
    )
    assert again["id"] == chargeback["id"]
    closed = api.ok("POST", f"/v1/chargebacks/{chargeback['id']}/close", {"won": False})
    assert (closed["status"], closed["closed_at"]) == ("lost", "2026-01-01T00:00:00Z")
    assert [c["id"] for c in api.ok("GET", "/v1/chargebacks", status="lost")["data"]] == [chargeback["id"]]


def test_lists_are_pages_newest_first(api: Api) -> None:
    ids = [
        api.ok("POST", "/v1/customers", {"email": f"c{i}@example.com", "name": f"C{i}", "currency": "EUR"})[
            "id"
        ]
        for i in range(7)
    ]
    seen: list[int] = []
    after = None
    while True:
        params = {"limit": 3} | ({"starting_after": after} if after else {})
        page = api.ok("GET", "/v1/customers", **params)
        seen += [c["id"] for c in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert seen == sorted(ids, reverse=True)
    only = api.ok("GET", "/v1/customers", email="c3@example.com")
    assert [c["id"] for c in only["data"]] == [ids[3]]


def test_external_id_returns_the_same_customer(api: Api) -> None:
    body = {
        "email": "ops@acme.example",
        "name": "Acme",
        "currency": "EUR",
        "external_id": "acme-42",
        "timezone": "Europe/Berlin",
        "country": "DE",
        "language": "de",
    }
    first = api.ok("POST", "/v1/customers", body)
    again = api.ok("POST", "/v1/customers", body)
    assert again["id"] == first["id"]
    assert (first["timezone"], first["country"], first["language"]) == ("Europe/Berlin", "DE", "de")


def test_api_keys_are_created_listed_and_revoked(api: Api, keys: dict[Role, str]) -> None:
    created = api.ok("POST", "/v1/api_keys", {"name": "meter eu-1", "role": "service"})
    assert created["key"].startswith(f"rk_{created['id']}_")
    assert "key" not in api.ok("GET", f"/v1/api_keys/{created['id']}")
    assert created["id"] in [k["id"] for k in api.ok("GET", "/v1/api_keys", limit=100)["data"]]
    meter = Api(api.client, {Role.SERVICE: created["key"]}, Role.SERVICE)
    assert meter.get("/v1/customers").status_code == 200
    revoked = api.ok("POST", f"/v1/api_keys/{created['id']}/revoke")
    assert revoked["revoked_at"] is not None
    assert meter.get("/v1/customers").status_code == 401
    assert api.ok("POST", f"/v1/api_keys/{created['id']}/revoke")["revoked_at"] == revoked["revoked_at"]


def test_health_needs_no_key(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_signup_context_is_kept_and_checked(api: Api) -> None:
    body = {
        "email": "new@shop.example",
        "name": "New",
        "currency": "USD",
        "signup_channel": "paid_search",
        "signup_ip": "2001:db8:0:0::7",
        "signup_ip_country": "US",
        "signup_device_id": "dev-9f2c",
    }
    created = api.ok("POST", "/v1/customers", body)
    assert (created["signup_channel"], created["signup_ip"], created["signup_ip_country"]) == (
        "paid_search",
        "2001:db8::7",  # stored in its canonical form
        "US",
    )
    assert api.ok("GET", f"/v1/customers/{created['id']}")["signup_device_id"] == "dev-9f2c"
    for field, value in (("signup_ip", "999.1.1.1"), ("signup_ip_country", "us"), ("signup_channel", "Ads!")):
        response = api.post("/v1/customers", body | {"email": "x@shop.example", field: value})
        assert response.status_code in (400, 422), response.text
        assert response.json()["error"]["field"] == field, response.text
