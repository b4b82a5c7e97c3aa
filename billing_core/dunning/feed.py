"""What changed since the engine's last run: the outbox, read as a feed, and a watch list.

The engine is one of the outbox's consumers (position ``dunning`` in ``consumer_offsets``). Each
run reads the events appended since its position, up to the head it saw, and learns from them
which invoices to look at, so that its cost follows the day's activity rather than the size of
the book:

==================================  ==================================================
event                               the engine looks at
==================================  ==================================================
``invoice.finalized``               the invoice: in collections yet? (due, or declined)
``payment.failed``                  the invoice: a payment failed
``invoice.paid``, ``invoice.voided``,  the invoice's process: it ends
``invoice.marked_uncollectible``
``payment_method.attached``         the customer's processes: a new card to retry on
==================================  ==================================================

An open invoice that is not in collections yet (not due, or its payment still pending) goes on a
watch list (``dunning_watch``) and is looked at again on every run until it is paid, voided or
in collections. The outbox's ``seq`` is given under a lock in commit order, so a consumer never
sees a later event before an earlier one.

The first run (no position yet), or a run with ``full_scan``, looks at every open invoice and
every process instead, with two scans. Either way, a process's invoice and card are read again
before each of its actions, so a change the feed did not name is still noticed then.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

import orjson

from billing_core.db.bulk import Bulk
from billing_core.dunning.engine import LIVE_SQL, among

CONSUMER = "dunning"

_OPENING = ("invoice.finalized", "payment.failed")
_SETTLING = ("invoice.paid", "invoice.voided", "invoice.marked_uncollectible")
_CARDS = ("payment_method.attached",)
_TYPES = ", ".join(f"'{t}'" for t in (*_OPENING, *_SETTLING, *_CARDS))


class Feed(NamedTuple):
    """Events since the engine's position, up to ``head``; ``after`` is None on a first run."""

    after: int | None
    head: int
    examine: set[int]  # invoices that may have entered collections
    settled: set[int]  # invoices paid, voided or written off
    customers: set[int]  # customers who attached a card


def read_feed(bulk: Bulk) -> Feed:
    (head,) = bulk.query("SELECT last_seq FROM outbox_head WHERE id = 1")[0]
    found = bulk.query("SELECT last_seq FROM consumer_offsets WHERE consumer = ?", (CONSUMER,))
    if not found:
        return Feed(None, int(head), set(), set(), set())
    after = int(found[0][0])
    examine: set[int] = set()
    settled: set[int] = set()
    customers: set[int] = set()
    for event_type, aggregate_id, payload in bulk.query(
        # only a failed payment's payload is needed (its invoice); the others name it in aggregate_id
        "SELECT event_type, aggregate_id, CASE WHEN event_type = 'payment.failed' THEN payload END FROM outbox"
        f" WHERE seq > ? AND seq <= ? AND event_type IN ({_TYPES})",
        (after, head),
    ):
        if event_type == "invoice.finalized":
            examine.add(int(aggregate_id))
        elif event_type == "payment.failed":
            examine.add(int(orjson.loads(payload)["invoice_id"]))
        elif event_type in _SETTLING:
            settled.add(int(aggregate_id))
        else:
            customers.add(int(aggregate_id))
    return Feed(after, int(head), examine, settled, customers)


def watched_ids(bulk: Bulk) -> set[int]:
    return {row[0] for row in bulk.query("SELECT invoice_id FROM dunning_watch")}


def open_unmanaged_ids(bulk: Bulk) -> set[int]:
    """Every open invoice that owes something and has no dunning process (a full scan)."""
    return {
        row[0]
        for row in bulk.query(
            "SELECT i.id FROM invoices i WHERE i.status = 'open' AND i.amount_remaining_minor > 0"
            " AND NOT EXISTS (SELECT 1 FROM dunning_processes p WHERE p.invoice_id = i.id)"
        )
    }


def touched_process_ids(bulk: Bulk, settled: Iterable[int], customers: Iterable[int]) -> list[int]:
    """Live processes of ``settled`` invoices or of ``customers``."""
    ids: set[int] = set()
    for column, values in (("invoice_id", settled), ("customer_id", customers)):
        values = sorted(values)
        if not values:
            continue
        where, params = among(bulk, f"p.{column}", values)
        ids.update(
            row[0]
            for row in bulk.query(
                f"SELECT p.id FROM dunning_processes p WHERE {where}"
                f" AND p.status IN ({LIVE_SQL}) AND p.attempt_id IS NULL",
                params,
            )
        )
    return sorted(ids)


def finish(bulk: Bulk, feed: Feed, examined: Sequence[int], watched: set[int], now: datetime) -> None:
    """In one transaction after opening and syncing: the watch list, then the engine's new position.

    Of the invoices ``examined``, those still open, owing and out of collections are watched
    (``since`` is when they were first); the others leave the list.
    """
    waiting: set[int] = set()
    if examined:
        where, params = among(bulk, "i.id", examined)
        waiting = {
            row[0]
            for row in bulk.query(
                f"SELECT i.id FROM invoices i WHERE {where} AND i.status = 'open'"
                " AND i.amount_remaining_minor > 0"
                " AND NOT EXISTS (SELECT 1 FROM dunning_processes p WHERE p.invoice_id = i.id)",
                params,
            )
        }
    gone = (set(examined) - waiting) & watched
    bulk.executemany("DELETE FROM dunning_watch WHERE invoice_id = ?", [(i,) for i in sorted(gone)])
    since = bulk.instant(now)
    ignore = "INSERT OR IGNORE INTO" if bulk.sqlite else "INSERT INTO"
    conflict = "" if bulk.sqlite else " ON CONFLICT (invoice_id) DO NOTHING"
    bulk.executemany(
        f"{ignore} dunning_watch (invoice_id, since) VALUES (?, ?){conflict}",
        [(i, since) for i in sorted(waiting - watched)],
    )
    if bulk.sqlite:
        upsert = (
            "INSERT INTO consumer_offsets (consumer, last_seq, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (consumer) DO UPDATE SET last_seq = MAX(consumer_offsets.last_seq, excluded.last_seq),"
            " updated_at = excluded.updated_at"
        )
    else:
        upsert = (
            "INSERT INTO consumer_offsets (consumer, last_seq, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (consumer) DO UPDATE SET last_seq = GREATEST(consumer_offsets.last_seq,"
            " excluded.last_seq), updated_at = excluded.updated_at"
        )
    bulk.execute(upsert, (CONSUMER, feed.head, bulk.instant(now)))
