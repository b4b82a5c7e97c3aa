"""``Idempotency-Key``: retries answer the first response and change nothing; the response is
stored with the effect, so a crash in between leaves neither."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from billing_core.api import models as m
from billing_core.api.keys import Role
from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db import schema as t
from billing_core.db.schema_api import idempotency_keys
from billing_core.payments import ScriptedGateway
from tests.api.conftest import Api, snapshot

CUSTOMER = {"email": "ada@example.com", "name": "Ada", "currency": "USD"}


def count(ctx: BillingContext, table: Any) -> int:
    with ctx.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_retry_answers_the_first_response_and_changes_nothing(api: Api, ctx: BillingContext) -> None:
    first = api.post("/v1/customers", CUSTOMER, key="create-ada")
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    before = snapshot(ctx.engine)
    again = api.post("/v1/customers", CUSTOMER, key="create-ada")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert snapshot(ctx.engine) == before
    # the same body with its keys in another order is the same request
    reordered = api.post("/v1/customers", dict(reversed(list(CUSTOMER.items()))), key="create-ada")
    assert reordered.json() == first.json()


def test_without_a_key_a_repeated_post_acts_twice(api: Api, ctx: BillingContext) -> None:
    api.ok("POST", "/v1/customers", CUSTOMER)
    api.ok("POST", "/v1/customers", CUSTOMER)
    assert count(ctx, t.customers) == 2


def test_the_same_key_for_another_request_is_refused(api: Api, ctx: BillingContext) -> None:
    api.ok("POST", "/v1/customers", CUSTOMER)
    api.post("/v1/customers", CUSTOMER, key="k-1")
    before = snapshot(ctx.engine)
    other_body = api.post("/v1/customers", {**CUSTOMER, "name": "Ada L."}, key="k-1")
    assert other_body.status_code == 409
    error = other_body.json()["error"]
    assert (error["code"], error["field"], error["got"]) == ("idempotency_conflict", "Idempotency-Key", "k-1")
    assert "/v1/customers" in error["expected"]
    card = {"brand": "visa", "bin": "424242", "last4": "4242", "exp_month": 12, "exp_year": 2030}
    other_path = api.post("/v1/customers/1/payment_methods", card, key="k-1")
    assert other_path.status_code == 409
    assert snapshot(ctx.engine) == before


def test_keys_belong_to_their_api_key(api: Api, ctx: BillingContext) -> None:
    api.post("/v1/customers", CUSTOMER, key="shared")
    service = api.as_(Role.SERVICE).post("/v1/customers", CUSTOMER, key="shared")
    assert service.status_code == 201
    assert "idempotent-replayed" not in service.headers
    assert count(ctx, t.customers) == 2


def test_keys_expire_after_24_hours(api: Api, ctx: BillingContext, clock: FrozenClock) -> None:
    api.post("/v1/customers", CUSTOMER, key="daily")
    clock.advance(timedelta(hours=23, minutes=59))
    assert api.post("/v1/customers", CUSTOMER, key="daily").headers.get("idempotent-replayed") == "true"
    assert count(ctx, t.customers) == 1
    clock.advance(timedelta(minutes=1))
    fresh = api.post("/v1/customers", CUSTOMER, key="daily")
    assert fresh.status_code == 201
    assert "idempotent-replayed" not in fresh.headers
    assert count(ctx, t.customers) == 2
    # expired keys are swept as new ones are claimed
    api.post("/v1/customers", CUSTOMER, key="one")
    clock.advance(timedelta(days=2))
    api.post("/v1/customers", CUSTOMER, key="two")
    with ctx.read() as conn:
        keys = conn.execute(select(idempotency_keys.c.key)).scalars().all()
    assert keys == ["two"]


def test_a_refused_request_is_not_stored(api: Api, ctx: BillingContext) -> None:
    event = {
        "event_id": "e-1",
        "customer_id": 1,
        "metric_code": "api_calls",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    before = snapshot(ctx.engine)
    refused = api.post("/v1/usage_events", event, key="usage-1")
    assert refused.status_code == 404
    assert refused.json()["error"]["field"] == "customer_id"
    assert snapshot(ctx.engine) == before
    api.ok("POST", "/v1/customers", CUSTOMER)
    api.ok("POST", "/v1/billable_metrics", {"code": "api_calls", "name": "API calls", "aggregation": "sum"})
    accepted = api.post("/v1/usage_events", event, key="usage-1")
    assert accepted.status_code == 200
    assert accepted.json()["accepted"] == 1


def test_a_crash_before_the_commit_leaves_neither_effect_nor_response(
    api: Api, ctx: BillingContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(ctx.engine)

    def crash(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("the process died here")

    with monkeypatch.context() as patch:
        patch.setattr(m.Customer, "model_dump_json", crash)
        with pytest.raises(RuntimeError, match="died"):
            api.post("/v1/customers", CUSTOMER, key="crash-1")
    assert snapshot(ctx.engine) == before
    retried = api.post("/v1/customers", CUSTOMER, key="crash-1")
    assert retried.status_code == 201
    assert count(ctx, t.customers) == 1


def test_a_charge_interrupted_after_its_effect_is_never_run_twice(
    api: Api, ctx: BillingContext, gateway: ScriptedGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = api.ok("POST", "/v1/customers", CUSTOMER)
    api.ok(
        "POST",
        f"/v1/customers/{customer['id']}/payment_methods",
        {"brand": "visa", "bin": "424242", "last4": "4242", "exp_month": 12, "exp_year": 2030},
    )
    body = {
        "customer_id": customer["id"],
        "description": "Setup",
        "unit_amount_minor": 99_00,
        "currency": "USD",
    }

    def crash(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("the process died here")

    with monkeypatch.context() as patch:
        patch.setattr(m.OneTimeCharge, "model_dump_json", crash)
        with pytest.raises(RuntimeError):
            api.post("/v1/one_time_charges", body, key="charge-1")
    # the charge went through and was recorded (the use case commits around the gateway call)...
    assert len(gateway.requests) == 1
    assert [p["amount_minor"] for p in api.ok("GET", "/v1/payments")["data"]] == [99_00]
    # ...so the retry is not run again: the key says a request is under way or was interrupted
    retried = api.post("/v1/one_time_charges", body, key="charge-1")
    assert retried.status_code == 409
    assert retried.json()["error"]["code"] == "idempotency_key_in_use"
    assert retried.json()["error"]["field"] == "Idempotency-Key"
    assert len(gateway.requests) == 1
    assert count(ctx, t.payments) == 1


def test_a_gateway_request_interrupted_before_its_first_commit_runs_again(
    api: Api, ctx: BillingContext, gateway: ScriptedGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    import billing_core.services.refund_payment as refunds

    customer = api.ok("POST", "/v1/customers", CUSTOMER)
    api.ok(
        "POST",
        f"/v1/customers/{customer['id']}/payment_methods",
        {"brand": "visa", "bin": "424242", "last4": "4242", "exp_month": 12, "exp_year": 2030},
    )
    api.ok(
        "POST",
        "/v1/one_time_charges",
        {
            "customer_id": customer["id"],
            "description": "Setup",
            "unit_amount_minor": 50_00,
            "currency": "USD",
        },
    )
    (payment,) = api.ok("GET", "/v1/payments")["data"]
    before = snapshot(ctx.engine)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the process died between the gateway's answer and the commit")

    with monkeypatch.context() as patch:
        patch.setattr(refunds, "record_refund", crash)
        with pytest.raises(RuntimeError):
            api.post("/v1/refunds", {"payment_id": payment["id"]}, key="refund-9")
    assert snapshot(ctx.engine) == before  # no refund recorded, and the key was not claimed
    retried = api.post("/v1/refunds", {"payment_id": payment["id"]}, key="refund-9")
    assert retried.status_code == 201
    assert retried.json()["amount_minor"] == 50_00
    # both attempts asked the gateway with the same refund key: it refunds once and answers twice
    first, second = gateway.refund_requests
    assert first.idempotency_key == second.idempotency_key
    assert count(ctx, t.refunds) == 1


def test_a_retried_refund_refunds_once(api: Api, ctx: BillingContext, gateway: ScriptedGateway) -> None:
    customer = api.ok("POST", "/v1/customers", CUSTOMER)
    api.ok(
        "POST",
        f"/v1/customers/{customer['id']}/payment_methods",
        {"brand": "visa", "bin": "424242", "last4": "4242", "exp_month": 12, "exp_year": 2030},
    )
    charge = {
        "customer_id": customer["id"],
        "description": "Setup",
        "unit_amount_minor": 50_00,
        "currency": "USD",
    }
    api.ok("POST", "/v1/one_time_charges", charge)
    (payment,) = api.ok("GET", "/v1/payments")["data"]
    refund = {"payment_id": payment["id"], "amount_minor": 10_00}
    first = api.post("/v1/refunds", refund, key="refund-1")
    second = api.post("/v1/refunds", refund, key="refund-1")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert len(gateway.refund_requests) == 1
    assert api.ok("GET", f"/v1/payments/{payment['id']}")["amount_refunded_minor"] == 10_00
    # a refund's own key, given in the body, also makes it idempotent across requests
    keyed = {**refund, "idempotency_key": "ticket-77"}
    a = api.ok("POST", "/v1/refunds", keyed)
    b = api.ok("POST", "/v1/refunds", keyed)
    assert a["id"] == b["id"]
    assert api.ok("GET", f"/v1/payments/{payment['id']}")["amount_refunded_minor"] == 20_00


def race(send: Any, threads: int = 4) -> list[httpx.Response]:
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(threads)

    def go() -> None:
        barrier.wait()
        answers.append(send())

    workers = [threading.Thread(target=go) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return answers


def test_concurrent_retries_act_once(api: Api, ctx: BillingContext) -> None:
    answers = race(lambda: api.post("/v1/customers", CUSTOMER, key="racing"))

    assert {a.status_code for a in answers} == {201}
    assert len({a.text for a in answers}) == 1
    assert sum(1 for a in answers if "idempotent-replayed" not in a.headers) == 1
    assert count(ctx, t.customers) == 1


def test_concurrent_charges_with_one_key_charge_once(
    api: Api, ctx: BillingContext, gateway: ScriptedGateway
) -> None:
    customer = api.ok("POST", "/v1/customers", CUSTOMER)
    api.ok(
        "POST",
        f"/v1/customers/{customer['id']}/payment_methods",
        {"brand": "visa", "bin": "424242", "last4": "4242", "exp_month": 12, "exp_year": 2030},
    )
    body = {
        "customer_id": customer["id"],
        "description": "Setup",
        "unit_amount_minor": 10_00,
        "currency": "USD",
    }
    answers = race(lambda: api.post("/v1/one_time_charges", body, key="charge-race"))
    created = [a for a in answers if a.status_code == 201]
    assert created
    assert len({a.text for a in created}) == 1
    for other in answers:
        if other.status_code != 201:
            assert other.json()["error"]["code"] == "idempotency_key_in_use"
    assert count(ctx, t.one_time_charges) == 1
    assert len(gateway.requests) == 1


def test_a_batch_of_usage_is_replayed_whole(api: Api, ctx: BillingContext) -> None:
    customer = api.ok("POST", "/v1/customers", CUSTOMER)
    api.ok("POST", "/v1/billable_metrics", {"code": "api_calls", "name": "API calls", "aggregation": "sum"})
    events = [
        {
            "event_id": f"e-{i}",
            "customer_id": customer["id"],
            "metric_code": "api_calls",
            "occurred_at": "2026-01-01T00:00:00Z",
        }
        for i in range(5)
    ]
    first = api.post("/v1/usage_events/batch", {"events": events}, key="batch-1")
    assert first.json()["accepted"] == 5
    again = api.post("/v1/usage_events/batch", {"events": events}, key="batch-1")
    assert again.json() == first.json()  # the first answer, not "5 duplicates"
    assert count(ctx, t.usage_events) == 5


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
def test_a_malformed_key_is_refused(api: Api, key: str, ctx: BillingContext) -> None:
    headers = api.headers()
    before = snapshot(ctx.engine)
    response = api.client.post(
        "/v1/customers",
        json=CUSTOMER,
        headers={**headers, "Idempotency-Key": key.encode()},
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "Idempotency-Key"
    assert snapshot(ctx.engine) == before
