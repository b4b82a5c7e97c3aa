"""Use case: ingest a batch of usage events fast; the semantics of ``record_usage_batch``.

The same contract as :func:`billing_core.services.record_usage.record_usage_batch`, built for
meters that send thousands of events per request:

* idempotent by event id: a replayed event (same id, same payload) is counted as a duplicate and
  changes nothing; the same id with another payload is refused (``events[i].event_id``), whether
  the first one is in the same batch or already on file;
* the whole batch is validated before anything is written, and the first culprit is named
  (``events[41].customer_id``); one bad event and nothing is written;
* one transaction, one ``usage.recorded`` event in the outbox with the batch's counts.

What makes it faster: events are checked in one tight loop (type checks, no intermediate
objects), ``occurred_at`` may arrive as the ISO 8601 text a JSON body carries (each distinct text
is parsed once), known ids are looked up in large sets (``= ANY`` on PostgreSQL), and fresh rows
are written in the order of the table's main index with ``executemany`` (``COPY`` on
PostgreSQL). Measured by ``benchmarks/usage_ingest.py``.

Checking (:func:`prepare_usage`) and writing (:func:`write_usage`) are apart, so that a server
can check each request's events on their own (and answer a culprit to its request alone), then
write several requests' events in one transaction (:func:`merge_prepared`).

Beyond ``record_usage_batch`` it also refuses unknown fields, and what a database would choke
on: ids and values outside the columns' integer range, text longer than its column, NUL
characters and unpaired surrogates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing_core.context import BillingContext
from billing_core.db.types import parse_instant_column, sqlite_instant
from billing_core.errors import IdempotencyConflict, InvalidInput, NotFound
from billing_core.services.record_usage import UsageBatchResult
from billing_core.usage import MAX_EVENT_ID_LENGTH

MAX_CUSTOMER_ID = 2**31 - 1  # customers.id is a 32-bit integer on PostgreSQL
MAX_VALUE = 2**63 - 1  # usage_events.value is a BIGINT
MAX_METRIC_CODE_LENGTH = 64
MAX_UNIQUE_KEY_LENGTH = 256
_LOOKUP_CHUNK = 10_000
_FIELDS = frozenset({"event_id", "customer_id", "metric_code", "occurred_at", "value", "unique_key"})
_COLUMNS = ["event_id", "customer_id", "metric_code", "occurred_at", "value", "unique_key", "received_at"]

#: (event_id, customer_id, metric_code, occurred_at as stored, value, unique_key, occurred_at)
_Row = tuple[str, int, str, Any, int, str | None, datetime]


def ingest_usage(
    ctx: BillingContext, events: Sequence[Mapping[str, Any]], *, field_prefix: str = "events"
) -> UsageBatchResult:
    """Record a batch of usage events in one transaction (all or nothing)."""
    result, _ = write_usage(ctx, prepare_usage(ctx, events, field_prefix=field_prefix))
    return result


@dataclass(frozen=True)
class PreparedUsage:
    """A batch checked field by field and against itself: what is left to check needs the database.

    Building one touches no database, so that a server can check the next batch while the
    previous one is being written. ``field_prefix`` names the batch's events in errors
    (``events`` for ``events[3].value``; empty for a single event).
    """

    rows: list[_Row]
    unique: dict[str, _Row]
    field_prefix: str

    def __len__(self) -> int:
        return len(self.rows)


def prepare_usage(
    ctx: BillingContext, events: Sequence[Mapping[str, Any]], *, field_prefix: str = "events"
) -> PreparedUsage:
    """Check every event's fields, and ids reused inside the batch; raises on the first culprit."""
    if not isinstance(events, Sequence) or isinstance(events, (str, bytes)):
        raise InvalidInput(field_prefix or "events", "a list of usage events", events)
    rows = _validate(events, field_prefix, ctx.engine.dialect.name == "sqlite")
    return PreparedUsage(rows, _unique(rows, field_prefix), field_prefix)


def merge_prepared(batches: Sequence[PreparedUsage]) -> PreparedUsage:
    """Several checked batches as one, in order (an id reused across them with another payload
    raises, as it would inside one batch; the caller then writes them one by one)."""
    if len(batches) == 1:
        return batches[0]
    rows = [row for batch in batches for row in batch.rows]
    return PreparedUsage(rows, _unique(rows, "events"), "events")


def write_usage(ctx: BillingContext, prepared: PreparedUsage) -> tuple[UsageBatchResult, set[str]]:
    """Write a checked batch in one transaction: the result, and the ids recorded now."""
    rows, unique, prefix = prepared.rows, prepared.unique, prepared.field_prefix
    sqlite = ctx.engine.dialect.name == "sqlite"
    with ctx.transaction() as tx:
        bulk = tx.bulk
        customers = sorted({r[1] for r in rows})
        known_customers = _existing(bulk.query, "SELECT id FROM customers WHERE id", customers, sqlite)
        metrics = {code for (code,) in bulk.query("SELECT code FROM billable_metrics")}
        if len(known_customers) < len(customers) or any(r[2] not in metrics for r in rows):
            for index, row in enumerate(rows):
                if row[1] not in known_customers:
                    raise NotFound(_field(prefix, index, "customer_id"), "customer", row[1])
                if row[2] not in metrics:
                    raise NotFound(_field(prefix, index, "metric_code"), "billable metric", row[2])
        stored = _stored(bulk.query, list(unique), sqlite)
        if stored:
            for index, row in enumerate(rows):
                on_file = stored.get(row[0])
                if on_file is not None and on_file != (row[1], row[2], row[6], row[4], row[5]):
                    raise IdempotencyConflict(
                        _field(prefix, index, "event_id"),
                        "an event id not already recorded with another payload",
                        row[0],
                    )
        received = bulk.instant(tx.now)
        fresh = [(*r[:6], received) for r in unique.values() if r[0] not in stored]
        result = UsageBatchResult(len(rows), len(fresh), len(rows) - len(fresh))
        if fresh:
            tx.emit(
                "usage.recorded",
                "usage",
                fresh[0][0],
                accepted=result.accepted,
                duplicates=result.duplicates,
                first_event_id=fresh[0][0],
                last_event_id=fresh[-1][0],
            )
            fresh.sort(key=_index_order)
            bulk.insert("usage_events", _COLUMNS, fresh)
    return result, {r[0] for r in fresh}


def _unique(rows: list[_Row], prefix: str) -> dict[str, _Row]:
    """The first row of each id; the same id with another payload is a conflict."""
    unique: dict[str, _Row] = {}
    for index, row in enumerate(rows):
        seen = unique.get(row[0])
        if seen is None:
            unique[row[0]] = row
        elif seen[1:3] != row[1:3] or seen[4:] != row[4:]:
            raise IdempotencyConflict(
                _field(prefix, index, "event_id"), "an event id not reused with another payload", row[0]
            )
    return unique


def _bad_text(value: str) -> bool:
    """NUL characters and unpaired surrogates: no database stores them as text."""
    if "\x00" in value:
        return True
    if value.isascii():
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return True
    return False


def _field(prefix: str, index: int, name: str = "") -> str:
    """``events[3].customer_id``; just ``customer_id`` for a single event (no prefix)."""
    if not prefix:
        return name or "event"
    return f"{prefix}[{index}].{name}" if name else f"{prefix}[{index}]"


def _validate(events: Sequence[Mapping[str, Any]], prefix: str, sqlite: bool) -> list[_Row]:
    """Every event checked field by field, as rows; raises on the first culprit.

    One loop with the common case first: a batch of ten thousand events spends more time here
    than anywhere but the database. Metric codes and instants repeat, so each distinct one is
    checked (and an instant converted) once.
    """
    rows: list[_Row] = []
    append = rows.append
    codes: set[str] = set()
    instants: dict[Any, tuple[Any, datetime]] = {}  # what arrived -> (as stored, as UTC datetime)
    for index, raw in enumerate(events):
        if type(raw) is not dict and not isinstance(raw, Mapping):
            raise InvalidInput(_field(prefix, index), "a usage event object", raw)
        if not raw.keys() <= _FIELDS:
            unknown = sorted(set(raw) - _FIELDS, key=str)[0]
            raise InvalidInput(
                _field(prefix, index, str(unknown)),
                "no such field (" + ", ".join(sorted(_FIELDS)) + ")",
                raw[unknown],
            )
        get = raw.get
        event_id = get("event_id")
        if not (
            type(event_id) is str
            and 0 < len(event_id) <= MAX_EVENT_ID_LENGTH
            and "\x00" not in event_id
            and (event_id.isascii() or not _bad_text(event_id))
        ):
            raise InvalidInput(
                _field(prefix, index, "event_id"),
                f"a string of 1 to {MAX_EVENT_ID_LENGTH} characters",
                event_id,
            )
        customer_id = get("customer_id")
        if type(customer_id) is not int or not 0 < customer_id <= MAX_CUSTOMER_ID:
            raise InvalidInput(
                _field(prefix, index, "customer_id"),
                f"a customer id (an integer between 1 and {MAX_CUSTOMER_ID})",
                customer_id,
            )
        code = get("metric_code")
        if code not in codes:
            if (
                type(code) is not str
                or not 0 < len(code) <= MAX_METRIC_CODE_LENGTH
                or "\x00" in code
                or (not code.isascii() and _bad_text(code))
            ):
                raise InvalidInput(_field(prefix, index, "metric_code"), "a billable metric code", code)
            codes.add(code)
        occurred = get("occurred_at")
        try:
            instant = instants.get(occurred)
        except TypeError:  # unhashable: certainly not an instant
            raise InvalidInput(
                _field(prefix, index, "occurred_at"), "an ISO 8601 instant with a UTC offset", occurred
            ) from None
        if instant is None:
            if sqlite and type(occurred) is str:
                instant = _sqlite_utc_text(occurred)
            if instant is None:
                instant = _instant(occurred, prefix, index, sqlite)
            instants[occurred] = instant
        value = get("value", 1)
        if type(value) is not int or not 0 <= value <= MAX_VALUE:
            raise InvalidInput(_field(prefix, index, "value"), "a whole number of units >= 0", value)
        unique_key = get("unique_key")
        if unique_key is not None and (
            type(unique_key) is not str
            or not 0 < len(unique_key) <= MAX_UNIQUE_KEY_LENGTH
            or _bad_text(unique_key)
        ):
            raise InvalidInput(_field(prefix, index, "unique_key"), "a non-empty string or null", unique_key)
        append((event_id, customer_id, code, instant[0], value, unique_key, instant[1]))
    return rows


def _sqlite_utc_text(text: str) -> tuple[str, datetime] | None:
    """``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` as SQLite stores it, rearranged rather than formatted
    (formatting a datetime costs ten times more than parsing one); None for any other text."""
    size = len(text)
    if not ((size == 20 and text[19] == "Z") or (size == 27 and text[26] == "Z" and text[19] == ".")):
        return None
    if not (text[4] == text[7] == "-" and text[10] == "T" and text[13] == text[16] == ":"):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    fraction = text[19:26] if size == 27 else ".000000"
    return f"{text[:10]} {text[11:19]}{fraction}", parsed


def _instant(value: object, prefix: str, index: int, sqlite: bool) -> tuple[Any, datetime]:
    """An instant as the driver stores it, and as a UTC datetime; from a datetime or ISO text."""
    expected = "an ISO 8601 instant with a UTC offset, such as 2026-03-01T12:00:00Z"
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(_field(prefix, index, "occurred_at"), expected, value) from None
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise InvalidInput(_field(prefix, index, "occurred_at"), expected, value)
    offset = parsed.utcoffset()
    if offset is None:
        raise InvalidInput(
            _field(prefix, index, "occurred_at"), expected + " (naive instants are ambiguous)", str(value)
        )
    if sqlite and not offset and isinstance(value, str) and _utc_extended_form(value):
        # already UTC in the usual layout: the stored text is a rearrangement of the one received
        # (formatting a datetime costs ten times more than parsing it)
        fraction = value[19:26] if len(value) in (27, 32) else ".000000"
        return f"{value[:10]} {value[11:19]}{fraction}", parsed
    try:
        at = parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(_field(prefix, index, "occurred_at"), expected, str(value)) from None
    return (sqlite_instant(at) if sqlite else at), at


def _utc_extended_form(text: str) -> bool:
    """``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+00:00)``, already parsed successfully by ``fromisoformat``."""
    size = len(text)
    if size in (20, 27):
        tail = text[-1] == "Z"
    elif size in (25, 32):
        tail = text.endswith("+00:00")
    else:
        return False
    return (
        tail
        and text[4] == "-"
        and text[7] == "-"
        and text[13] == ":"
        and text[16] == ":"
        and (size in (20, 25) or text[19] == ".")
    )


def _existing(query: Any, select: str, values: list[Any], sqlite: bool) -> set[Any]:
    """The values among ``values`` that ``select`` (``SELECT col FROM t WHERE col``) finds."""
    found: set[Any] = set()
    for start in range(0, len(values), _LOOKUP_CHUNK):
        chunk = values[start : start + _LOOKUP_CHUNK]
        if sqlite:
            found.update(row[0] for row in query(f"{select} IN ({', '.join('?' * len(chunk))})", chunk))
        else:
            found.update(row[0] for row in query(f"{select} = ANY(?)", (chunk,)))
    return found


def _stored(
    query: Any, event_ids: list[str], sqlite: bool
) -> dict[str, tuple[int, str, datetime, int, str | None]]:
    """Events already on file among ``event_ids``: id -> (customer, metric, occurred_at, value, key)."""
    stored: dict[str, tuple[int, str, datetime, int, str | None]] = {}
    select = "SELECT event_id, customer_id, metric_code, occurred_at, value, unique_key FROM usage_events"
    for start in range(0, len(event_ids), _LOOKUP_CHUNK):
        chunk = event_ids[start : start + _LOOKUP_CHUNK]
        if sqlite:
            found = query(f"{select} WHERE event_id IN ({', '.join('?' * len(chunk))})", chunk)
        else:
            found = query(f"{select} WHERE event_id = ANY(?)", (chunk,))
        for event_id, customer_id, code, occurred, value, unique_key in found:
            stored[event_id] = (customer_id, code, parse_instant_column(occurred), value, unique_key)
    return stored


def _index_order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """(customer, metric, occurred_at): rows written in the order of the table's main index.

    A batch from many customers otherwise lands on as many scattered index pages, in no order;
    sorted, each page is visited once, and the rows that share a page are written together.
    """
    return row[1], row[2], row[3]
