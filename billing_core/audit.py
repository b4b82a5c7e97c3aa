"""The outbox, which is also the audit log: append-only and hash-chained.

Every use case appends its domain events to the ``outbox`` table in its own transaction: money
movements (invoice finalized, payment succeeded, refund, chargeback, credit note, balance
applied) and state changes (subscription paused, invoice voided, dispute resolved...). Consumers
(the lake export, notifications) read it in ``seq`` order and keep their own position.

Each row's hash is ``sha256(previous row's hash | seq | occurred_at | event_type |
aggregate_type | aggregate_id | payload)``, starting from 64 zeros. Changing, inserting or deleting any row breaks
every later hash, and :func:`verify` finds the first broken row. Keep the head hash that
``recoup audit verify`` prints somewhere else (a ticket, a printed report): a chain recomputed by
someone who can rewrite the whole table still ends in a different head.

Appends are serialized: SQLite transactions already hold the write lock (``BEGIN IMMEDIATE``),
and PostgreSQL transactions lock the single ``outbox_head`` row, so ``seq`` is gapless and the
chain has one order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection

from billing_core.db.bulk import Bulk
from billing_core.db.types import parse_instant_column
from billing_core.errors import AuditChainBroken

GENESIS = "0" * 64


def canonical_json(payload: dict[str, Any]) -> str:
    """Compact JSON with sorted keys: the text that is hashed and stored.

    Instants are written as ``datetime.isoformat()`` writes them (``2026-03-01T00:00:00+00:00``).
    """
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str).decode()


def event_hash(
    prev_hash: str,
    seq: int,
    occurred_at: str,
    event_type: str,
    aggregate_type: str,
    aggregate_id: str,
    payload: str,
) -> str:
    text = f"{prev_hash}|{seq}|{occurred_at}|{event_type}|{aggregate_type}|{aggregate_id}|{payload}"
    return hashlib.sha256(text.encode()).hexdigest()


class Event(NamedTuple):
    """A domain event waiting to be appended: ``payload`` is already canonical JSON."""

    occurred_at: datetime
    event_type: str
    aggregate_type: str
    aggregate_id: str
    payload: str

    @classmethod
    def of(
        cls, occurred_at: datetime, event_type: str, aggregate_type: str, aggregate_id: object, **payload: Any
    ) -> Event:
        return cls(occurred_at, event_type, aggregate_type, str(aggregate_id), canonical_json(payload))


def append(conn: Connection, events: Sequence[Event]) -> int:
    """Append events to the outbox inside the caller's transaction; returns the last seq."""
    bulk = Bulk(conn)
    if bulk.sqlite:
        last_seq, last_hash = bulk.query("SELECT last_seq, last_hash FROM outbox_head WHERE id = 1")[0]
    else:
        last_seq, last_hash = bulk.query(
            "SELECT last_seq, last_hash FROM outbox_head WHERE id = 1 FOR UPDATE"
        )[0]
    if not events:
        return int(last_seq)
    rows = []
    instant = bulk.instant_formatter()
    sha256 = hashlib.sha256
    # events of one transaction share a handful of instants: format each once
    formatted: dict[datetime, tuple[str, Any]] = {}
    seq, prev = int(last_seq), str(last_hash)
    for occurred_at, event_type, aggregate_type, aggregate_id, payload in events:
        seq += 1
        cached = formatted.get(occurred_at)
        if cached is None:
            cached = formatted[occurred_at] = (occurred_at.isoformat(), instant(occurred_at))
        iso, stored = cached
        # inline event_hash: this loop runs for every event of a million-invoice run
        prev = sha256(
            f"{prev}|{seq}|{iso}|{event_type}|{aggregate_type}|{aggregate_id}|{payload}".encode()
        ).hexdigest()
        rows.append((seq, stored, event_type, aggregate_type, aggregate_id, payload, prev))
    bulk.insert(
        "outbox",
        [
            "seq",
            "occurred_at",
            "event_type",
            "aggregate_type",
            "aggregate_id",
            "payload",
            "hash",
        ],
        rows,
    )
    bulk.execute("UPDATE outbox_head SET last_seq = ?, last_hash = ? WHERE id = 1", (seq, prev))
    return seq


@dataclass(frozen=True, slots=True)
class VerifyReport:
    events: int
    head_seq: int
    head_hash: str


def verify(
    conn: Connection,
    *,
    batch_size: int = 100_000,
    progress: Callable[[int, int], None] | None = None,
    expect_head: str | None = None,
) -> VerifyReport:
    """Recompute the chain from the first row; raise :class:`AuditChainBroken` where it breaks."""
    bulk = Bulk(conn)
    head_seq, head_hash = bulk.query("SELECT last_seq, last_hash FROM outbox_head WHERE id = 1")[0]
    total = int(head_seq)
    prev, expected_seq, checked = GENESIS, 1, 0
    after = 0
    while True:
        rows = bulk.query(
            "SELECT seq, occurred_at, event_type, aggregate_type, aggregate_id, payload, hash"
            " FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, batch_size),
        )
        if not rows:
            break
        for seq, occurred, event_type, agg_type, agg_id, payload, digest in rows:
            if seq != expected_seq:
                raise AuditChainBroken(expected_seq, f"row {expected_seq} is missing (next is {seq})")
            iso = parse_instant_column(occurred).isoformat()
            if event_hash(prev, seq, iso, event_type, agg_type, agg_id, payload) != digest:
                raise AuditChainBroken(seq, "the row's content does not match its hash")
            prev, expected_seq = digest, seq + 1
        checked += len(rows)
        after = rows[-1][0]
        if progress:
            progress(checked, total)
    if checked != total:
        raise AuditChainBroken(checked + 1, f"the head says {total} rows, the table has {checked}")
    if prev != head_hash:
        raise AuditChainBroken(total, "the head hash does not match the last row")
    if expect_head is not None and expect_head != prev:
        raise AuditChainBroken(total, f"head hash {prev} differs from the expected {expect_head}")
    return VerifyReport(events=checked, head_seq=total, head_hash=prev)


def read_events(conn: Connection, after_seq: int, limit: int) -> list[dict[str, Any]]:
    """Events after ``after_seq`` in order (for consumers)."""
    rows = Bulk(conn).query(
        "SELECT seq, occurred_at, event_type, aggregate_type, aggregate_id, payload FROM outbox"
        " WHERE seq > ? ORDER BY seq LIMIT ?",
        (after_seq, limit),
    )
    return [
        {
            "seq": seq,
            "occurred_at": parse_instant_column(occurred),
            "event_type": event_type,
            "aggregate_type": agg_type,
            "aggregate_id": agg_id,
            "payload": json.loads(payload),
        }
        for seq, occurred, event_type, agg_type, agg_id, payload in rows
    ]


def events_of(events: Iterable[Event], event_type: str) -> list[Event]:
    return [e for e in events if e.event_type == event_type]
