"""The usage writer: requests that wait together share a transaction, and each gets its own answer."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from billing_core.api.usage_writer import UsageWriter
from billing_core.context import BillingContext
from billing_core.db import schema as t
from billing_core.errors import IdempotencyConflict, InvalidInput, NotFound
from billing_core.services.create_billable_metric import create_billable_metric
from billing_core.services.create_customer import create_customer
from tests.api.conftest import Api, snapshot


@pytest.fixture
def customer(ctx: BillingContext) -> int:
    create_billable_metric(ctx, code="api_calls", name="API calls", aggregation="sum")
    return create_customer(ctx, email="w@example.com", name="W", currency="USD").id


def event(customer: int, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": customer,
        "metric_code": "api_calls",
        "occurred_at": "2026-01-01T00:00:00Z",
        **extra,
    }


def held(writer: UsageWriter, first: list[dict[str, Any]], prefix: str) -> tuple[Any, threading.Event]:
    """Submit ``first`` so that the writer waits on it until released: what is queued meanwhile
    is written in the same transaction."""
    release = threading.Event()

    def load() -> list[dict[str, Any]]:
        release.wait(10)
        return first

    return writer.submit(load, field_prefix=prefix), release


def rows(ctx: BillingContext) -> int:
    with ctx.read() as conn:
        return len(conn.execute(t.usage_events.select()).all())


def outbox_usage_events(ctx: BillingContext) -> int:
    from billing_core import audit

    with ctx.read() as conn:
        return sum(1 for e in audit.read_events(conn, 0, 10_000) if e["event_type"] == "usage.recorded")


def test_jobs_waiting_together_share_one_transaction(ctx: BillingContext, customer: int) -> None:
    writer = UsageWriter(ctx)
    a, release = held(writer, [event(customer, "a")], "")
    b = writer.submit(
        [event(customer, "b1"), event(customer, "a"), event(customer, "b2")], field_prefix="events"
    )
    c = writer.submit([event(customer, "b1")], field_prefix="")
    release.set()
    assert (a.result(10).received, a.result().accepted) == (1, 1)
    assert (b.result(10).accepted, b.result().duplicates) == (2, 1)
    assert (c.result(10).accepted, c.result().duplicates) == (0, 1)
    assert rows(ctx) == 3
    assert outbox_usage_events(ctx) == 1  # one transaction


def test_a_bad_job_spoils_nobody_else(ctx: BillingContext, customer: int) -> None:
    writer = UsageWriter(ctx)
    a, release = held(writer, [event(customer, "a")], "")
    unknown = writer.submit([event(customer, "x1"), event(424242, "x2")], field_prefix="events")
    malformed = writer.submit([event(customer, "y", value=-1)], field_prefix="")
    reused = writer.submit([event(customer, "a", value=7)], field_prefix="")
    fine = writer.submit([event(customer, "z")], field_prefix="")
    release.set()
    assert a.result(10).accepted == 1
    with pytest.raises(NotFound) as not_found:
        unknown.result(10)
    assert not_found.value.field == "events[1].customer_id"
    with pytest.raises(InvalidInput) as bad_value:
        malformed.result(10)
    assert bad_value.value.field == "value"
    with pytest.raises(IdempotencyConflict) as conflict:
        reused.result(10)
    assert conflict.value.field == "event_id"
    assert fine.result(10).accepted == 1
    assert rows(ctx) == 2  # a and z; nothing of the refused jobs


def test_many_clients_at_once(api: Api, ctx: BillingContext, customer: int) -> None:
    answers: list[tuple[str, int, dict[str, Any]]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(15):
            event_id = f"e-{(n * 15 + i) % 60}"  # two clients send every id
            response = api.post("/v1/usage_events", event(customer, event_id, value=3))
            with lock:
                answers.append((event_id, response.status_code, response.json()))

    before = snapshot(ctx.engine)["usage_events"]
    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for _, status, _ in answers} == {200}
    accepted = [event_id for event_id, _, body in answers if body["accepted"] == 1]
    assert sorted(accepted) == sorted({event_id for event_id, _, _ in answers})  # each id accepted once
    assert sum(body["duplicates"] for _, _, body in answers) == 120 - 60
    assert snapshot(ctx.engine)["usage_events"] - before == 60
