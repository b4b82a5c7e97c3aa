"""Usage events: one at a time, or thousands per request."""

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from billing_core import queries
from billing_core.api import models as m
from billing_core.api.auth import Caller, allow, allow_write
from billing_core.api.errors import ApiError
from billing_core.api.idempotency import json_response, run
from billing_core.api.routing import BILLING, READERS, Limit, QueryId, StartingAfter, page, read, responses
from billing_core.api.usage_writer import UsageWriter
from billing_core.context import BillingContext
from billing_core.errors import InvalidInput
from billing_core.services.ingest_usage import ingest_usage
from billing_core.services.record_usage import UsageBatchResult

router = APIRouter(prefix="/v1", tags=["usage"])

MetricFilter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.]+$")]


def _recorded(ctx: BillingContext, events: Any, prefix: str) -> m.UsageRecorded:
    return _answer(ingest_usage(ctx, events, field_prefix=prefix))


def _answer(result: UsageBatchResult) -> m.UsageRecorded:
    return m.UsageRecorded(received=result.received, accepted=result.accepted, duplicates=result.duplicates)


async def _through_writer(caller: Caller, events: Any, prefix: str) -> Response:
    writer: UsageWriter = caller.request.app.state.usage_writer
    result = await asyncio.wrap_future(writer.submit(events, field_prefix=prefix))
    return json_response(_answer(result), 200)


_EVENT_SCHEMA = {"$ref": "#/components/schemas/UsageEventIn"}


def _json_object(body: bytes, expected: str) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(422, "invalid_input", f"body: {error}", field="body", expected=expected) from None
    if not isinstance(data, dict):
        raise InvalidInput("body", expected, data)
    return data


def _single_event(body: bytes) -> list[Any]:
    return [_json_object(body, "a usage event object")]


@router.post(
    "/usage_events",
    response_model=m.UsageRecorded,
    summary="Record a usage event",
    responses=responses(write=True),
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _EVENT_SCHEMA}}}
    },
)
async def record(request: Request, caller: Annotated[Caller, Depends(allow_write(*BILLING))]) -> Response:
    """Idempotent by `event_id`: the same event again is counted as a duplicate and changes
    nothing; the same id with another payload is refused (409). Events that arrive together
    from many clients share one transaction; each is answered once it is committed.

    The body is checked by the ingestion use case itself (400 naming the field), as on the
    batch route."""
    body = caller.body or await request.body()
    if caller.idempotency_key is not None:
        return await run_in_threadpool(run, caller, lambda ctx: _recorded(ctx, _single_event(body), ""))
    return await _through_writer(caller, lambda: _single_event(body), "")


_BATCH_SCHEMA = {"$ref": "#/components/schemas/UsageBatchIn"}


def _batch_events(body: bytes) -> list[Any]:
    data = _json_object(body, 'a JSON object {"events": [...]}')
    extra = sorted(set(data) - {"events"})
    if extra:
        raise InvalidInput(extra[0], "no such field (the body has one field, events)", data[extra[0]])
    events = data.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= m.MAX_BATCH:
        got = f"{len(events)} events" if isinstance(events, list) else events
        raise InvalidInput("events", f"a list of 1 to {m.MAX_BATCH} usage events", got)
    return events


@router.post(
    "/usage_events/batch",
    response_model=m.UsageRecorded,
    summary="Record a batch of usage events",
    responses=responses(write=True),
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BATCH_SCHEMA}}}
    },
)
async def record_batch(
    request: Request, caller: Annotated[Caller, Depends(allow_write(*BILLING))]
) -> Response:
    """Up to 10,000 events in one transaction, all or nothing: the whole batch is validated
    first, and the first bad event is named (`events[41].customer_id`). Events already on file
    (or twice in the batch) count as duplicates; an id reused with another payload is refused.

    The body is checked by the ingestion use case itself rather than by the schema layer, which
    is what makes this route fast; errors have the same shape."""
    body = caller.body or await request.body()
    if caller.idempotency_key is not None:
        return await run_in_threadpool(run, caller, lambda ctx: _recorded(ctx, _batch_events(body), "events"))
    return await _through_writer(caller, lambda: _batch_events(body), "events")


@router.get(
    "/usage_events", response_model=m.UsageEventList, summary="List usage events", responses=responses()
)
def list_(
    caller: Annotated[Caller, Depends(allow(*READERS))],
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    customer_id: QueryId = None,
    metric_code: MetricFilter = None,
) -> Response:
    """Newest first by the order they were received."""
    rows = read(
        caller,
        lambda conn: queries.list_usage_events(
            conn, limit=limit, starting_after=starting_after, customer_id=customer_id, metric_code=metric_code
        ),
    )
    return page(m.UsageEventList, m.UsageEvent, rows)
