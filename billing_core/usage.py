"""Usage events: idempotent by event id, aggregated per billing period.

An event says that a customer consumed ``value`` units of a billable metric at ``occurred_at``.
Values are whole numbers, as card networks and most meters want them: measure in a smaller unit
(megabytes, not gigabytes) when you need fractions. The event id is the idempotency key: a replay
of the same event changes nothing, and the same id with a different payload is refused.

Aggregation over a period ``[start, end)``:

``sum``            total of the values (API calls, messages)
``max``            the peak value (concurrent seats, storage high-water mark)
``unique_count``   distinct ``unique_key`` values (monthly active users)
``last``           the value of the latest event (a gauge reported periodically)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from billing_core.catalog import Aggregation
from billing_core.clock import utc
from billing_core.errors import InvalidInput

MAX_EVENT_ID_LENGTH = 128


@dataclass(frozen=True, slots=True)
class UsageEvent:
    event_id: str
    customer_id: int
    metric_code: str
    occurred_at: datetime
    value: int = 1
    unique_key: str | None = None

    def same_payload(self, other: UsageEvent) -> bool:
        return (
            self.customer_id == other.customer_id
            and self.metric_code == other.metric_code
            and self.occurred_at == other.occurred_at
            and self.value == other.value
            and self.unique_key == other.unique_key
        )


def validate_usage_event(
    *,
    event_id: object,
    customer_id: object,
    metric_code: object,
    occurred_at: object,
    value: object = 1,
    unique_key: object = None,
    field_prefix: str = "",
) -> UsageEvent:
    p = field_prefix
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_LENGTH:
        raise InvalidInput(f"{p}event_id", f"a string of 1 to {MAX_EVENT_ID_LENGTH} characters", event_id)
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id <= 0:
        raise InvalidInput(f"{p}customer_id", "a customer id (an integer > 0)", customer_id)
    if not isinstance(metric_code, str) or not metric_code:
        raise InvalidInput(f"{p}metric_code", "a billable metric code", metric_code)
    at = utc(occurred_at, f"{p}occurred_at")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{p}value", "a whole number of units >= 0", value)
    if value < 0:
        raise InvalidInput(f"{p}value", "a whole number of units >= 0", value)
    if unique_key is not None and (not isinstance(unique_key, str) or not unique_key):
        raise InvalidInput(f"{p}unique_key", "a non-empty string or null", unique_key)
    return UsageEvent(event_id, customer_id, metric_code, at, value, unique_key)


def aggregate(events: Iterable[UsageEvent], aggregation: Aggregation) -> int:
    """Aggregate the events of one customer and metric over one period."""
    items = list(events)
    if not items:
        return 0
    if aggregation is Aggregation.SUM:
        return sum(e.value for e in items)
    if aggregation is Aggregation.MAX:
        return max(e.value for e in items)
    if aggregation is Aggregation.UNIQUE_COUNT:
        return len({e.unique_key for e in items if e.unique_key is not None})
    if aggregation is Aggregation.LAST:
        return max(items, key=lambda e: (e.occurred_at, e.event_id)).value
    raise InvalidInput("aggregation", "sum, max, unique_count or last", aggregation)
