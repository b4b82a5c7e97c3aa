"""Use case: record usage events, one at a time or in batches; idempotent by event id.

A replayed event (same id, same payload) changes nothing and is reported as a duplicate; the same
id with a different payload is refused, naming the field. A batch is validated whole before
anything is written: one bad event and the batch is refused with the index of the culprit
(``events[41].customer_id``), so a client never has to guess what landed.

Usage events are not domain events: each batch appends one ``usage.recorded`` event with its
counts to the outbox, and the lake export reads ``usage_events`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from billing_core.context import BillingContext, Tx
from billing_core.db.types import parse_instant_column
from billing_core.errors import IdempotencyConflict, InvalidInput, NotFound
from billing_core.usage import UsageEvent, validate_usage_event

_COLUMNS = ["event_id", "customer_id", "metric_code", "occurred_at", "value", "unique_key", "received_at"]


@dataclass(frozen=True)
class UsageBatchResult:
    received: int
    accepted: int
    duplicates: int


def record_usage(
    ctx: BillingContext,
    *,
    event_id: str,
    customer_id: int,
    metric_code: str,
    occurred_at: Any,
    value: int = 1,
    unique_key: str | None = None,
) -> UsageBatchResult:
    return record_usage_batch(
        ctx,
        [
            {
                "event_id": event_id,
                "customer_id": customer_id,
                "metric_code": metric_code,
                "occurred_at": occurred_at,
                "value": value,
                "unique_key": unique_key,
            }
        ],
        field_prefix="",
    )


def record_usage_batch(
    ctx: BillingContext, events: Sequence[Mapping[str, Any] | UsageEvent], *, field_prefix: str = "events"
) -> UsageBatchResult:
    """Record many events in one transaction (all or nothing)."""
    if not isinstance(events, Sequence) or isinstance(events, (str, bytes)):
        raise InvalidInput(field_prefix or "events", "a list of usage events", events)
    parsed: list[UsageEvent] = []
    for index, raw in enumerate(events):
        prefix = f"{field_prefix}[{index}]." if field_prefix else ""
        if isinstance(raw, UsageEvent):
            parsed.append(raw)
            continue
        if not isinstance(raw, Mapping):
            raise InvalidInput(prefix.rstrip(".") or "event", "a usage event object", raw)
        parsed.append(
            validate_usage_event(
                event_id=raw.get("event_id"),
                customer_id=raw.get("customer_id"),
                metric_code=raw.get("metric_code"),
                occurred_at=raw.get("occurred_at"),
                value=raw.get("value", 1),
                unique_key=raw.get("unique_key"),
                field_prefix=prefix,
            )
        )
    # the same id twice inside the batch: identical is a duplicate, different is a conflict
    unique: dict[str, UsageEvent] = {}
    for index, event in enumerate(parsed):
        seen = unique.get(event.event_id)
        if seen is None:
            unique[event.event_id] = event
        elif not seen.same_payload(event):
            raise IdempotencyConflict(
                _field(field_prefix, index, "event_id"),
                "an event id not reused with another payload",
                event.event_id,
            )
    with ctx.transaction() as tx:
        _check_references(tx, parsed, field_prefix)
        fresh = _drop_known(tx, list(unique.values()), parsed, field_prefix)
        instant = tx.bulk.instant_formatter()
        received = instant(tx.now)
        tx.bulk.insert(
            "usage_events",
            _COLUMNS,
            [
                (
                    e.event_id,
                    e.customer_id,
                    e.metric_code,
                    instant(e.occurred_at),
                    e.value,
                    e.unique_key,
                    received,
                )
                for e in fresh
            ],
        )
        result = UsageBatchResult(len(parsed), len(fresh), len(parsed) - len(fresh))
        if fresh:
            tx.emit(
                "usage.recorded",
                "usage",
                fresh[0].event_id,
                accepted=result.accepted,
                duplicates=result.duplicates,
                first_event_id=fresh[0].event_id,
                last_event_id=fresh[-1].event_id,
            )
    return result


def _field(prefix: str, index: int, name: str) -> str:
    return f"{prefix}[{index}].{name}" if prefix else name


def _chunks(values: list[Any], size: int = 500) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _check_references(tx: Tx, events: Sequence[UsageEvent], prefix: str) -> None:
    customers = sorted({e.customer_id for e in events})
    known: set[int] = set()
    for chunk in _chunks(customers):
        marks = ", ".join("?" * len(chunk))
        known.update(
            row[0] for row in tx.bulk.query(f"SELECT id FROM customers WHERE id IN ({marks})", chunk)
        )
    metrics = {row[0] for row in tx.bulk.query("SELECT code FROM billable_metrics")}
    for index, event in enumerate(events):
        if event.customer_id not in known:
            raise NotFound(_field(prefix, index, "customer_id"), "customer", event.customer_id)
        if event.metric_code not in metrics:
            raise NotFound(_field(prefix, index, "metric_code"), "billable metric", event.metric_code)


def _drop_known(tx: Tx, unique: list[UsageEvent], parsed: list[UsageEvent], prefix: str) -> list[UsageEvent]:
    """Events whose id is not on file yet; a known id with another payload is a conflict."""
    known: dict[str, UsageEvent] = {}
    for chunk in _chunks([e.event_id for e in unique]):
        marks = ", ".join("?" * len(chunk))
        for event_id, customer_id, metric, occurred, value, unique_key in tx.bulk.query(
            "SELECT event_id, customer_id, metric_code, occurred_at, value, unique_key"
            f" FROM usage_events WHERE event_id IN ({marks})",
            chunk,
        ):
            known[event_id] = UsageEvent(
                event_id, customer_id, metric, parse_instant_column(occurred), value, unique_key
            )
    for index, event in enumerate(parsed):
        stored = known.get(event.event_id)
        if stored is not None and not stored.same_payload(event):
            raise IdempotencyConflict(
                _field(prefix, index, "event_id"),
                "an event id not already recorded with another payload",
                event.event_id,
            )
    return [e for e in unique if e.event_id not in known]
