"""The fast ingestion use case keeps ``record_usage_batch``'s contract, event for event."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from billing_core import audit
from billing_core.context import BillingContext
from billing_core.db import schema as t
from billing_core.errors import InvalidInput
from billing_core.services.create_billable_metric import create_billable_metric
from billing_core.services.create_customer import create_customer
from billing_core.services.ingest_usage import ingest_usage
from billing_core.services.record_usage import record_usage_batch
from tests.api.conftest import snapshot

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def customers(ctx: BillingContext) -> list[int]:
    create_billable_metric(ctx, code="api_calls", name="API calls", aggregation="sum")
    create_billable_metric(ctx, code="seats", name="Seats", aggregation="unique_count")
    return [create_customer(ctx, email=f"u{i}@example.com", name="U", currency="USD").id for i in range(3)]


def stored(ctx: BillingContext, prefix: str) -> list[tuple[Any, ...]]:
    with ctx.read() as conn:
        rows = conn.execute(
            select(
                t.usage_events.c.event_id,
                t.usage_events.c.customer_id,
                t.usage_events.c.metric_code,
                t.usage_events.c.occurred_at,
                t.usage_events.c.value,
                t.usage_events.c.unique_key,
            ).order_by(t.usage_events.c.event_id)
        ).all()
    return [(r[0][len(prefix) :], *r[1:]) for r in rows if r[0].startswith(prefix)]


def outcome(call: Any) -> Any:
    try:
        result = call()
    except InvalidInput as error:
        return type(error).__name__, error.field, error.code
    return result


def scenario(customers: list[int], prefix: str) -> list[list[dict[str, Any]]]:
    c1, c2, _ = customers

    def e(n: int, **extra: Any) -> dict[str, Any]:
        base = {
            "event_id": f"{prefix}{n}",
            "customer_id": c1,
            "metric_code": "api_calls",
            "occurred_at": T0 + timedelta(minutes=n),
        }
        return {**base, **extra}

    return [
        [e(1), e(2, value=5), e(3, customer_id=c2, metric_code="seats", unique_key="u-1")],
        [e(2, value=5), e(4), e(4)],  # one on file, one twice in the batch
        [e(5), e(1, value=9)],  # an id on file with another payload: refused whole
        [e(6), e(6, value=2)],  # twice in the batch with two payloads: refused
        [e(7), e(8, customer_id=999_999)],  # unknown customer
        [e(9, metric_code="nope")],
        [e(10, value=-1)],
        [e(11, occurred_at=datetime(2026, 1, 1))],  # noqa: DTZ001 - naive on purpose
        [e(12, occurred_at=T0.astimezone(timezone(timedelta(hours=9))))],
        [e(13, unique_key="")],
        [{**e(14), "event_id": ""}],
        ["not an event"],  # type: ignore[list-item]
        [e(15), e(16), e(17), e(3, customer_id=c2, metric_code="seats", unique_key="u-1")],
    ]


def test_same_answers_and_rows_as_record_usage_batch(ctx: BillingContext, customers: list[int]) -> None:
    for old, new in zip(scenario(customers, "a-"), scenario(customers, "b-"), strict=True):
        expected = outcome(lambda batch=old: record_usage_batch(ctx, batch))
        got = outcome(lambda batch=new: ingest_usage(ctx, batch))
        assert got == expected, (old, got, expected)
    assert stored(ctx, "b-") == stored(ctx, "a-")
    assert len(stored(ctx, "b-")) == 8


def test_iso_text_and_datetimes_are_the_same_instant(ctx: BillingContext, customers: list[int]) -> None:
    base = {"customer_id": customers[0], "metric_code": "api_calls"}
    texts = [
        "2026-01-01T09:30:00+09:00",
        "2026-01-01T00:30:00Z",
        "2026-01-01T00:30:00.000000+00:00",
        "2025-12-31T19:30:00-05:00",
    ]
    result = ingest_usage(
        ctx, [{**base, "event_id": f"t-{i}", "occurred_at": text} for i, text in enumerate(texts)]
    )
    assert result.accepted == 4
    result = ingest_usage(
        ctx, [{**base, "event_id": f"t-{i}", "occurred_at": T0 + timedelta(minutes=30)} for i in range(4)]
    )
    assert (result.accepted, result.duplicates) == (0, 4)
    assert {row[3] for row in stored(ctx, "t-")} == {T0 + timedelta(minutes=30)}
    # ISO week dates are instants too, and never mistaken for calendar dates
    week = ingest_usage(ctx, [{**base, "event_id": "w-1", "occurred_at": "2026-W01-1T00:00:00Z"}])
    assert week.accepted == 1
    assert stored(ctx, "w-")[0][3] == datetime(2025, 12, 29, tzinfo=UTC)
    micro = ingest_usage(ctx, [{**base, "event_id": "m-1", "occurred_at": "2026-01-01T00:00:00.123456Z"}])
    assert micro.accepted == 1
    assert stored(ctx, "m-")[0][3] == T0 + timedelta(microseconds=123456)


def test_a_refused_batch_writes_nothing(ctx: BillingContext, customers: list[int]) -> None:
    good = [
        {
            "event_id": f"g-{i}",
            "customer_id": customers[0],
            "metric_code": "api_calls",
            "occurred_at": "2026-01-01T00:00:00Z",
        }
        for i in range(20)
    ]
    before = snapshot(ctx.engine)
    for bad, field in (
        ({"customer_id": 2**31}, "events[7].customer_id"),
        ({"value": 2**63}, "events[7].value"),
        ({"event_id": "nul\x00"}, "events[7].event_id"),
        ({"metric_code": "\ud800"}, "events[7].metric_code"),
        ({"unique_key": "k" * 257}, "events[7].unique_key"),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "events[7].occurred_at"),
        ({"occurred_at": ["2026"]}, "events[7].occurred_at"),
        ({"occurred_at": True}, "events[7].occurred_at"),
    ):
        batch = [*good[:7], {**good[7], **bad}, *good[8:]]
        with pytest.raises(InvalidInput) as caught:
            ingest_usage(ctx, batch)
        assert caught.value.field == field
        assert snapshot(ctx.engine) == before


def test_one_outbox_event_per_batch(ctx: BillingContext, customers: list[int]) -> None:
    batch = [
        {"event_id": f"o-{i}", "customer_id": customers[i % 3], "metric_code": "api_calls", "occurred_at": T0}
        for i in range(10)
    ]
    ingest_usage(ctx, batch)
    ingest_usage(ctx, batch)  # all duplicates: nothing recorded, no event
    with ctx.read() as conn:
        events = [e for e in audit.read_events(conn, 0, 1000) if e["event_type"] == "usage.recorded"]
    assert len(events) == 1
    payload = events[0]["payload"]
    assert (payload["accepted"], payload["duplicates"], payload["first_event_id"]) == (10, 0, "o-0")
    assert json.dumps(payload)
