"""The dunning engine's set-based pieces: read processes in bulk, plan steps, write rows.

Nothing here opens a transaction: :mod:`billing_core.services.run_dunning` does, and calls these
in order. Every read takes a chunk of processes (or invoices) in one or two queries, the chunk's
ids passed as one parameter (a JSON array on SQLite, an array on PostgreSQL); planning is pure
Python over plain tuples (the policy is asked once per chunk); writes are ``executemany``
(``COPY`` on PostgreSQL for inserts) of ready rows.

A step is written only if the process and its invoice are still as they were read
(:func:`verify`, under the write lock): the step number, the status, the retry in flight, the
invoice's status and remaining amount, and for a retry the invoice's last attempt number and
whether one is pending. A process that moved meanwhile is left for the next pass, which reads
it again. The unique key ``(process_id, step)`` of ``dunning_actions`` refuses a second action
for the same step if two runs ever collided.

Lock order (PostgreSQL; SQLite has one write lock per database). Two runs at once write the same
processes, so every write transaction of a run takes its row locks in one order: the chunk's
``dunning_processes`` rows first, by id (:func:`lock_processes`, :func:`verify`), then their
``invoices`` by id, then ``payment_attempts`` by id, then ``subscriptions`` by id (then the
customers a payment credits, and the outbox head at commit). A transaction that locked an
invoice before its process (recording a retry's answer while the other run checks a plan that
includes the same process) waited on the other in the opposite direction: a deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from billing_core.audit import Event, canonical_json
from billing_core.context import Tx
from billing_core.customers import CardBrand, PaymentMethod
from billing_core.db.bulk import Bulk
from billing_core.db.types import InstantTexts, ParsedInstants
from billing_core.dunning.lifecycle import (
    ACTION_EVENTS,
    DUNNING_LIFECYCLE,
    INVOICE_ENDINGS,
    LIVE_STATUSES,
    Action,
    Channel,
    DunningEvent,
    DunningStatus,
    Outcome,
)
from billing_core.dunning.policy import DAY, Decision, DunningPolicy, DunningState, check_decisions
from billing_core.invoice_writer import ATTEMPT_COLUMNS, Attempt, attempt_key
from billing_core.payments import DeclineCode
from billing_core.services.collect_payments import open_invoice_counts
from billing_core.subscriptions import SUBSCRIPTION_LIFECYCLE, SubscriptionEvent, SubscriptionStatus

LIVE_SQL = ", ".join(f"'{status.value}'" for status in LIVE_STATUSES)
_STATUSES = {status.value: status for status in DunningStatus}
_DECLINES = {code.value: code for code in DeclineCode}


def among(bulk: Bulk, column: str, ids: Iterable[int]) -> tuple[str, tuple[Any, ...]]:
    """``(predicate, params)``: ``column`` is one of ``ids`` (one parameter, no temporary table)."""
    values = list(ids)
    if bulk.sqlite:
        return f"{column} IN (SELECT value FROM json_each(?))", (orjson.dumps(values).decode(),)
    return f"{column} = ANY(?)", (values,)


def id_table(bulk: Bulk, ids: Iterable[int]) -> tuple[str, tuple[Any, ...]]:
    """``(from_item, params)``: a table ``t`` of ``ids`` in column ``t.value``, to drive a join."""
    values = list(ids)
    if bulk.sqlite:
        return "json_each(?) AS t", (orjson.dumps(values).decode(),)
    return "unnest(CAST(? AS bigint[])) AS t(value)", (values,)


#: the columns of ``dunning_processes`` the engine reads and writes, in :class:`Process` order
PROCESS_FIELDS = (
    "id", "invoice_id", "customer_id", "subscription_id", "reason", "status", "started_at", "step",
    "retries", "attempts", "reminders_email", "reminders_sms", "reminders_call", "last_decline_code",
    "last_retry_at", "last_reminder_at", "final_notice_at", "payment_method_id", "attempt_id",
    "next_action", "next_channel", "next_action_at", "decided_by", "ended_at",
)  # fmt: skip
_INSTANT_FIELDS = frozenset(
    {"started_at", "last_retry_at", "last_reminder_at", "final_notice_at", "next_action_at", "ended_at"}
)
ACTION_COLUMNS = (
    "id", "process_id", "step", "invoice_id", "customer_id", "subscription_id", "action", "channel",
    "scheduled_at", "executed_at", "outcome", "attempt_id", "amount_minor", "currency", "policy",
    "decline_code", "day",
)  # fmt: skip


class Process(NamedTuple):
    """A dunning process as stored (immutable; a step makes a new one with ``_replace``)."""

    id: int
    invoice_id: int
    customer_id: int
    subscription_id: int | None
    reason: str
    status: str
    started_at: datetime
    step: int
    retries: int
    attempts: int
    reminders_email: int
    reminders_sms: int
    reminders_call: int
    last_decline_code: str | None
    last_retry_at: datetime | None
    last_reminder_at: datetime | None
    final_notice_at: datetime | None
    payment_method_id: int | None
    attempt_id: int | None
    next_action: str | None
    next_channel: str | None
    next_action_at: datetime | None
    decided_by: str | None
    ended_at: datetime | None


class Card(NamedTuple):
    """The customer's default card, as read (a :class:`PaymentMethod` is made only to charge it)."""

    id: int
    customer_id: int
    brand: str
    bin: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str

    def payment_method(self) -> PaymentMethod:
        return PaymentMethod(self.id, self.customer_id, CardBrand(self.brand), self.bin, self.last4,
                             self.exp_month, self.exp_year, self.fingerprint)  # fmt: skip


class World(NamedTuple):
    """What surrounds a process when it is read: its invoice, customer, card and subscription."""

    invoice_number: str | None
    invoice_status: str
    amount_remaining_minor: int
    currency: str
    timezone: str
    card: Card | None  # the customer's default card
    subscription_status: str | None
    last_attempt_number: int
    pending_attempts: int  # -1: the invoice's attempts were not read (no retry was due)
    amount_paid_minor: int = 0


class Snapshot(NamedTuple):
    process: Process
    world: World

    def key(self) -> tuple[Any, ...]:
        """What must still hold when a step planned from this snapshot is written."""
        p, w = self
        return (p.step, p.status, p.attempt_id, w.invoice_status, w.amount_remaining_minor)


# --------------------------------------------------------------------------------------- reading

_SNAPSHOT_QUERY = """
SELECT {process},
       i.number, i.status, i.amount_remaining_minor, i.currency,
       c.timezone, m.id, m.brand, m.bin, m.last4, m.exp_month, m.exp_year, m.fingerprint, s.status,
       i.amount_paid_minor
FROM dunning_processes p
JOIN invoices i ON i.id = p.invoice_id
JOIN customers c ON c.id = p.customer_id
LEFT JOIN payment_methods m ON m.id = c.default_payment_method_id
LEFT JOIN subscriptions s ON s.id = p.subscription_id
WHERE {among}
ORDER BY p.id
"""
_PROCESS_SELECT = ", ".join(f"p.{name}" for name in PROCESS_FIELDS)
_INSTANT_POSITIONS = [i for i, name in enumerate(PROCESS_FIELDS) if name in _INSTANT_FIELDS]


def read_snapshots(
    bulk: Bulk, process_ids: Sequence[int], parsed: ParsedInstants, *, retries_due_by: datetime | None = None
) -> list[Snapshot]:
    """The processes ``process_ids`` with their worlds, in id order.

    The invoice's attempts (the last number, whether one is pending) are read only for the
    processes whose next action is a retry due by ``retries_due_by``; the others carry the
    process's own count and ``pending_attempts = -1`` (not read).
    """
    if not process_ids:
        return []
    where, params = among(bulk, "p.id", process_ids)
    rows = bulk.query(_SNAPSHOT_QUERY.format(process=_PROCESS_SELECT, among=where), params)
    width = len(PROCESS_FIELDS)
    snapshots = []
    for row in rows:
        values = list(row[:width])
        for position in _INSTANT_POSITIONS:
            values[position] = parsed[values[position]]
        (number, invoice_status, remaining, code, tz_name, pm_id, brand, bin_, last4, exp_month, exp_year,
         fingerprint, sub_status, paid) = row[width:]  # fmt: skip
        card = None
        if pm_id is not None:
            card = Card(pm_id, values[2], brand, bin_, last4, exp_month, exp_year, fingerprint)
        process = tuple.__new__(Process, values)
        world = World(
            number, invoice_status, remaining, code, tz_name, card, sub_status, process.attempts, -1, paid
        )
        snapshots.append(Snapshot(process, world))
    if retries_due_by is None:
        return snapshots
    due = {
        s.process.invoice_id
        for s in snapshots
        if s.process.next_action == _RETRY
        and s.process.next_action_at is not None
        and s.process.next_action_at <= retries_due_by
    }
    if not due:
        return snapshots
    counts = attempt_counts(bulk, due)
    return [
        Snapshot(s.process, s.world._replace(
            last_attempt_number=counts.get(s.process.invoice_id, (0, 0))[0],
            pending_attempts=counts.get(s.process.invoice_id, (0, 0))[1],
        )) if s.process.invoice_id in due else s
        for s in snapshots
    ]  # fmt: skip


def attempt_counts(bulk: Bulk, invoice_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """``{invoice: (last attempt number, 1 if that attempt is pending else 0)}``.

    A pending attempt is always an invoice's last: nothing queues an attempt while one is pending.
    """
    table, params = id_table(bulk, sorted(invoice_ids))
    return {
        int(invoice_id): (int(last or 0), 1 if status == "pending" else 0)
        for invoice_id, last, status in bulk.query(
            "SELECT t.value, (SELECT MAX(a.attempt_number) FROM payment_attempts a WHERE a.invoice_id = t.value),"
            " (SELECT a.status FROM payment_attempts a WHERE a.invoice_id = t.value"
            f" ORDER BY a.attempt_number DESC LIMIT 1) FROM {table}",
            params,
        )
    }


def verify(bulk: Bulk, snapshots: Sequence[Snapshot], claims: Sequence[Snapshot] = ()) -> set[int]:
    """Under the write lock: the ids of the processes that are still as ``snapshots`` saw them.

    For ``claims`` (retries about to be queued), the invoice's attempts must not have moved either.
    """
    if not snapshots:
        return set()
    # the processes, then their invoices, each in id order (the lock order in the module's doc);
    # one statement locking both would lock them row by row, an invoice before the next process
    processes = lock_processes(
        bulk, [s.process.id for s in snapshots], "id, step, status, attempt_id, invoice_id"
    )
    invoices = lock_invoices(bulk, {row[4] for row in processes})
    current = {
        process_id: (step, status, attempt_id, *invoices[invoice_id])
        for process_id, step, status, attempt_id, invoice_id in processes
        if invoice_id in invoices
    }
    kept = {s.process.id for s in snapshots if current.get(s.process.id) == s.key()}
    if claims:
        counts = attempt_counts(bulk, {s.process.invoice_id for s in claims})
        for s in claims:
            if counts.get(s.process.invoice_id, (0, 0)) != (
                s.world.last_attempt_number,
                s.world.pending_attempts,
            ):
                kept.discard(s.process.id)
    return kept


def lock_processes(bulk: Bulk, process_ids: Iterable[int], columns: str = "id") -> list[tuple[Any, ...]]:
    """Lock these processes, in id order (first in the lock order); returns ``columns`` of each.

    ``ORDER BY`` with ``FOR UPDATE``: PostgreSQL locks the rows as they come out of the sort, so
    two transactions that lock overlapping sets this way queue behind each other instead of each
    holding a row the other waits for. On SQLite the transaction holds the database's write lock.
    """
    where, params = among(bulk, "id", sorted(set(process_ids)))
    lock = "" if bulk.sqlite else " FOR UPDATE"
    return bulk.query(f"SELECT {columns} FROM dunning_processes WHERE {where} ORDER BY id{lock}", params)


def lock_invoices(bulk: Bulk, invoice_ids: Iterable[int]) -> dict[int, tuple[str, int]]:
    """Lock these invoices, in id order (after their processes); ``{id: (status, amount remaining)}``."""
    ids = sorted(set(invoice_ids))
    if not ids:
        return {}
    where, params = among(bulk, "id", ids)
    lock = "" if bulk.sqlite else " FOR UPDATE"
    return {
        row[0]: (row[1], row[2])
        for row in bulk.query(
            f"SELECT id, status, amount_remaining_minor FROM invoices WHERE {where} ORDER BY id{lock}", params
        )
    }


def due_ids(bulk: Bulk, as_of: datetime) -> list[int]:
    """Live processes whose next action is due by ``as_of`` and that have no retry in flight."""
    return [
        row[0]
        for row in bulk.query(
            f"SELECT id FROM dunning_processes WHERE status IN ({LIVE_SQL}) AND next_action_at <= ?"
            " AND attempt_id IS NULL ORDER BY id",
            (bulk.instant(as_of),),
        )
    ]


def in_flight_ids(bulk: Bulk) -> list[int]:
    """Processes with a retry whose answer is not recorded yet (an interrupted run)."""
    return [
        row[0]
        for row in bulk.query(
            f"SELECT id FROM dunning_processes WHERE attempt_id IS NOT NULL AND status IN ({LIVE_SQL}) ORDER BY id"
        )
    ]


def out_of_step_ids(bulk: Bulk) -> list[int]:
    """Live processes whose invoice is no longer open, or whose customer has a new default card."""
    distinct = "IS NOT" if bulk.sqlite else "IS DISTINCT FROM"
    return [
        row[0]
        for row in bulk.query(
            "SELECT p.id FROM dunning_processes p JOIN invoices i ON i.id = p.invoice_id"
            " JOIN customers c ON c.id = p.customer_id"
            f" WHERE p.status IN ({LIVE_SQL}) AND p.attempt_id IS NULL"
            f" AND (i.status <> 'open' OR c.default_payment_method_id {distinct} p.payment_method_id)"
            " ORDER BY p.id"
        )
    ]


# --------------------------------------------------------------------------------------- states


def state_of(p: Process, w: World, now: datetime, *, subscription_status: str | None = None) -> DunningState:
    card = w.card
    # positional, in DunningState's field order (this runs for every decision of a run)
    return DunningState(
        p.id, p.invoice_id, p.customer_id, p.subscription_id, _STATUSES[p.status], p.reason, p.started_at,
        now, w.amount_remaining_minor, w.currency,
        _DECLINES.get(p.last_decline_code) if p.last_decline_code else None, p.attempts, p.retries,
        p.reminders_email, p.reminders_sms, p.reminders_call, p.last_retry_at, p.last_reminder_at,
        p.final_notice_at, w.timezone, card is not None, card is not None and card.id != p.payment_method_id,
        card.exp_month if card else None, card.exp_year if card else None,
        subscription_status if subscription_status is not None else w.subscription_status,
    )  # fmt: skip


def decide(
    policy: DunningPolicy, items: Sequence[tuple[Process, World, str | None]], now: datetime
) -> list[Process]:
    """Ask the policy about ``(process, world, subscription status)`` items; the processes with their next step."""
    if not items:
        return []
    states = [state_of(p, w, now, subscription_status=sub) for p, w, sub in items]
    decisions = policy.decide(states)
    check_decisions(states, decisions, policy.name)
    name = policy.name
    return [with_decision(p, decision, name) for (p, _w, _s), decision in zip(items, decisions, strict=True)]


def with_decision(p: Process, decision: Decision, policy: str) -> Process:
    action, channel, at = decision
    values = list(p)
    values[_NEXT_ACTION] = _VALUES[action] if action is not None else None
    values[_NEXT_CHANNEL] = _VALUES[channel] if channel is not None else None
    values[_NEXT_AT] = at
    values[_DECIDED_BY] = policy
    return tuple.__new__(Process, values)


_NEXT_ACTION, _NEXT_CHANNEL, _NEXT_AT, _DECIDED_BY = (
    PROCESS_FIELDS.index(name) for name in ("next_action", "next_channel", "next_action_at", "decided_by")
)
#: plain strings of the enums' members (``member.value`` is a slow property)
_VALUES: dict[Any, str] = {
    member: member.value
    for enum in (Action, Channel, Outcome, DunningStatus, DunningEvent)
    for member in enum
}


def day_of(p: Process, now: datetime) -> int:
    return max(0, (now - p.started_at) // DAY)


# ------------------------------------------------------------------------------------- planning


class End(NamedTuple):
    """A process whose invoice was paid, voided or written off by other means."""

    snapshot: Snapshot
    event: DunningEvent


class Act(NamedTuple):
    """A reminder, final notice, suspension or write-off, and the process after it."""

    snapshot: Snapshot
    action: Action
    channel: Channel | None
    after: Process


class Claim(NamedTuple):
    """A retry: a pending attempt to commit before the gateway is asked."""

    snapshot: Snapshot
    attempt_number: int
    card: PaymentMethod
    redecided: bool = False  # the decision to retry now is not the one stored


@dataclass
class Plan:
    ends: list[End] = field(default_factory=list)
    acts: list[Act] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    redecided: list[tuple[Snapshot, Process]] = field(default_factory=list)  # a new decision, no step
    postponed: list[int] = field(default_factory=list)
    texts: InstantTexts | None = None  # the instants read for this plan, formatted once (SQLite)

    def snapshots(self) -> list[Snapshot]:
        return (
            [e.snapshot for e in self.ends]
            + [a.snapshot for a in self.acts]
            + [c.snapshot for c in self.claims]
            + [s for s, _p in self.redecided]
        )

    def keep(self, ids: set[int]) -> None:
        """Drop the steps of processes not in ``ids`` (they moved since they were read)."""
        self.ends = [e for e in self.ends if e.snapshot.process.id in ids]
        self.acts = [a for a in self.acts if a.snapshot.process.id in ids]
        self.claims = [c for c in self.claims if c.snapshot.process.id in ids]
        self.redecided = [(s, p) for s, p in self.redecided if s.process.id in ids]

    def __len__(self) -> int:
        return len(self.ends) + len(self.acts) + len(self.claims) + len(self.redecided)

    # A plan crosses from the helper process to the writer as plain tuples: pickling named
    # tuples, dataclasses and enum members costs several times as much.
    def pack(self) -> tuple[Any, ...]:
        return (
            [(_pack(e.snapshot), _VALUES[e.event]) for e in self.ends],
            [(_pack(a.snapshot), _VALUES[a.action], _VALUES[a.channel] if a.channel else None, tuple(a.after))
             for a in self.acts],
            [(_pack(c.snapshot), c.attempt_number, c.redecided) for c in self.claims],
            [(_pack(snapshot), tuple(after)) for snapshot, after in self.redecided],
            self.postponed,
            dict(self.texts) if self.texts is not None else None,
        )  # fmt: skip

    @classmethod
    def unpack(cls, packed: tuple[Any, ...]) -> Plan:
        ends, acts, claims, redecided, postponed, texts = packed
        new = tuple.__new__
        plan = cls(
            [End(_unpack(s), _EVENTS[event]) for s, event in ends],
            [Act(_unpack(s), _ACTIONS[action], _CHANNELS[channel] if channel else None, new(Process, after))
             for s, action, channel, after in acts],
            [],
            [(_unpack(s), new(Process, after)) for s, after in redecided],
            postponed,
            InstantTexts(texts) if texts is not None else None,
        )  # fmt: skip
        for packed_snapshot, number, redecided_now in claims:
            snapshot = _unpack(packed_snapshot)
            card = snapshot.world.card
            if card is None:  # pragma: no cover - plan_due claims only with a card
                raise ValueError(f"dunning process {snapshot.process.id}: a retry without a card")
            plan.claims.append(Claim(snapshot, number, card.payment_method(), redecided_now))
        return plan


def _pack(snapshot: Snapshot) -> tuple[Any, ...]:
    p, w = snapshot
    return (tuple(p), *w[:5], tuple(w.card) if w.card is not None else None, *w[6:])


def _unpack(packed: tuple[Any, ...]) -> Snapshot:
    new = tuple.__new__
    p, number, status, remaining, code, tz_name, card, sub_status, last_number, pending, paid = packed
    world = new(World, (number, status, remaining, code, tz_name, new(Card, card) if card is not None else None,
                        sub_status, last_number, pending, paid))  # fmt: skip
    return new(Snapshot, (new(Process, p), world))


def _ending(snapshot: Snapshot) -> DunningEvent | None:
    status = snapshot.world.invoice_status
    return None if status == "open" else INVOICE_ENDINGS.get(status, DunningEvent.VOIDED)


def plan_due(snapshots: Sequence[Snapshot], *, now: datetime, as_of: datetime, policy: DunningPolicy) -> Plan:
    """The steps due by ``as_of``, and the policy's decision after each.

    A process's stored decision says when to look at it again; what to do then is asked of the
    policy afresh, on the process as it is now (a late run, a new card, a smaller amount owed).
    If the policy now wants to wait, its new decision is stored and nothing is executed.
    """
    plan = Plan()
    woken: list[Snapshot] = []
    for snapshot in snapshots:
        p, _w = snapshot
        if p.status not in _LIVE_VALUES or p.attempt_id is not None:
            continue
        ending = _ending(snapshot)
        if ending is not None:
            plan.ends.append(End(snapshot, ending))
        elif p.next_action_at is not None and p.next_action_at <= as_of:
            woken.append(snapshot)
    fresh = decide(policy, [(s.process, s.world, None) for s in woken], now)
    due: list[tuple[Snapshot, Action]] = []
    for snapshot, decided in zip(woken, fresh, strict=True):
        w = snapshot.world
        stored = snapshot.process
        if decided.next_action is None or decided.next_action_at is None or decided.next_action_at > as_of:
            plan.redecided.append((snapshot, decided))  # not yet: look again when the policy says
            continue
        snapshot = Snapshot(decided, w)
        action = _ACTIONS[decided.next_action]
        if action is not Action.RETRY:
            due.append((snapshot, action))
        elif w.pending_attempts < 0:
            # a retry the stored decision did not foresee (a new card, say): store it, due now; the
            # next pass reads the invoice's attempts and queues it
            plan.redecided.append((snapshot, decided))
        elif w.card is None or w.pending_attempts:
            plan.postponed.append(decided.id)  # a payment is already on its way
        else:
            same = decided[_NEXT_ACTION : _DECIDED_BY + 1] == stored[_NEXT_ACTION : _DECIDED_BY + 1]
            plan.claims.append(Claim(snapshot, w.last_attempt_number + 1, w.card.payment_method(), not same))

    live: list[tuple[Snapshot, Action, Channel | None, Process, str | None]] = []
    for snapshot, action in due:
        p, w = snapshot
        channel = _CHANNELS[p.next_channel] if p.next_channel else None
        status = DUNNING_LIFECYCLE.next(_STATUSES[p.status], ACTION_EVENTS[action], entity_id=p.id)
        changes: dict[str, Any] = {"status": _VALUES[status], "step": p.step + 1}
        sub_status = w.subscription_status
        if action is Action.REMIND:
            counter = _REMINDER_COUNTERS[channel or Channel.EMAIL]
            changes[counter] = getattr(p, counter) + 1
            changes["last_reminder_at"] = now
        elif action is Action.FINAL_NOTICE:
            changes["last_reminder_at"] = changes["final_notice_at"] = now
        elif (
            action is Action.SUSPEND
            and sub_status is not None
            and SUBSCRIPTION_LIFECYCLE.can(
                SubscriptionStatus(sub_status), SubscriptionEvent.DUNNING_EXHAUSTED
            )
        ):
            sub_status = SubscriptionStatus.UNPAID.value
        if status.live:
            live.append((snapshot, action, channel, changed(p, changes), sub_status))
        else:
            changes.update(next_action=None, next_channel=None, next_action_at=None, ended_at=now)
            plan.acts.append(Act(snapshot, action, channel, changed(p, changes)))
    nexts = decide(policy, [(after, s.world, sub) for s, _a, _c, after, sub in live], now)
    for (snapshot, action, channel, _after, _sub), after in zip(live, nexts, strict=True):
        plan.acts.append(Act(snapshot, action, channel, after))
    return plan


_FIELD_INDEX = {name: index for index, name in enumerate(PROCESS_FIELDS)}


def changed(p: Process, changes: dict[str, Any]) -> Process:
    """``p._replace(**changes)``, faster (it runs several times for every action of a run)."""
    values = list(p)
    for name, value in changes.items():
        values[_FIELD_INDEX[name]] = value
    return tuple.__new__(Process, values)


def plan_sync(snapshots: Sequence[Snapshot], *, now: datetime, policy: DunningPolicy) -> Plan:
    """Processes out of step: end those whose invoice is settled; decide again for a new card."""
    plan = Plan()
    again: list[Snapshot] = []
    for snapshot in snapshots:
        p, w = snapshot
        if p.status not in _LIVE_VALUES or p.attempt_id is not None:
            continue
        ending = _ending(snapshot)
        if ending is not None:
            plan.ends.append(End(snapshot, ending))
        elif (w.card.id if w.card else None) != p.payment_method_id:
            again.append(snapshot)
    decided = decide(policy, [(s.process, s.world, None) for s in again], now)
    plan.redecided = list(zip(again, decided, strict=True))
    return plan


_REMINDER_COUNTERS = {
    Channel.EMAIL: "reminders_email",
    Channel.SMS: "reminders_sms",
    Channel.CALL: "reminders_call",
}
_CHANNELS = {channel.value: channel for channel in Channel}
_EVENTS = {event.value: event for event in DunningEvent}
_ACTIONS = {action.value: action for action in Action}
_LIVE_VALUES = frozenset(status.value for status in LIVE_STATUSES)
_RETRY = Action.RETRY.value


# -------------------------------------------------------------------------------------- writing


@dataclass
class Tally:
    """What a batch of writes did, for the run's summary."""

    opened: int = 0
    actions: dict[str, int] = field(default_factory=dict)  # "action/outcome": count
    ended: dict[str, int] = field(default_factory=dict)  # final status: count
    recovered_minor: dict[str, int] = field(default_factory=dict)
    subscriptions_suspended: int = 0
    subscriptions_canceled: int = 0
    subscriptions_restored: int = 0

    def add(self, other: Tally) -> None:
        self.opened += other.opened
        for mine, theirs in ((self.actions, other.actions), (self.ended, other.ended),
                             (self.recovered_minor, other.recovered_minor)):  # fmt: skip
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value
        self.subscriptions_suspended += other.subscriptions_suspended
        self.subscriptions_canceled += other.subscriptions_canceled
        self.subscriptions_restored += other.subscriptions_restored

    @property
    def executed(self) -> int:
        return sum(self.actions.values())


_UPDATE_PROCESS = (
    "UPDATE dunning_processes SET status = ?, step = ?, retries = ?, attempts = ?, reminders = ?,"
    " reminders_email = ?, reminders_sms = ?, reminders_call = ?, last_decline_code = ?, last_retry_at = ?,"
    " last_reminder_at = ?, final_notice_at = ?, payment_method_id = ?, attempt_id = ?, next_action = ?,"
    " next_channel = ?, next_action_at = ?, decided_by = ?, ended_at = ?, updated_at = ? WHERE id = ?"
)


class Writer:
    """Collects the rows of one transaction, then writes them set-based.

    ``now`` is the instant the steps were planned at: every row and event of the batch carries it.
    """

    def __init__(self, tx: Tx, now: datetime, texts: InstantTexts | None = None) -> None:
        self.tx = tx
        self.bulk = tx.bulk
        self.now = now
        self.instant = self.bulk.instant_formatter(texts)
        self.now_s = self.instant(self.now)
        self.tally = Tally()
        self.process_updates: list[tuple[Any, ...]] = []
        self.in_flight: list[tuple[Any, ...]] = []
        self.in_flight_redecided: list[tuple[Any, ...]] = []
        self.actions: list[tuple[Any, ...]] = []
        self.attempts: list[tuple[Any, ...]] = []
        self.subscription_status: list[tuple[Any, ...]] = []
        self.subscription_cancels: list[tuple[Any, ...]] = []
        self.write_offs: list[tuple[Any, ...]] = []
        self.events: list[Event] = []

    # -- rows --------------------------------------------------------------------------------
    def process(self, p: Process) -> None:
        i = self.instant
        self.process_updates.append((
            p.status, p.step, p.retries, p.attempts, p.reminders_email + p.reminders_sms + p.reminders_call,
            p.reminders_email, p.reminders_sms, p.reminders_call, p.last_decline_code, i(p.last_retry_at),
            i(p.last_reminder_at), i(p.final_notice_at), p.payment_method_id, p.attempt_id, p.next_action,
            p.next_channel, i(p.next_action_at), p.decided_by, i(p.ended_at), self.now_s, p.id,
        ))  # fmt: skip

    def action(
        self,
        action_id: int,
        before: Process,
        w: World,
        action: Action,
        channel: Channel | None,
        outcome: Outcome,
        *,
        attempt_id: int | None = None,
        decline_code: str | None = None,
        amount_minor: int | None = None,
    ) -> None:
        """An executed action: its row and its ``dunning.action`` event (the notifications' contract)."""
        now = self.now
        step = before.step + 1
        day = day_of(before, now)
        policy = before.decided_by or "unknown"
        amount = w.amount_remaining_minor if amount_minor is None else amount_minor
        scheduled = before.next_action_at or now
        channel_value = _VALUES[channel] if channel is not None else None
        action_value, outcome_value = _VALUES[action], _VALUES[outcome]
        self.actions.append((
            action_id, before.id, step, before.invoice_id, before.customer_id, before.subscription_id,
            action_value, channel_value, self.instant(scheduled), self.now_s, outcome_value, attempt_id, amount,
            w.currency, policy, decline_code, day,
        ))  # fmt: skip
        self.events.append(Event(now, "dunning.action", "invoice", str(before.invoice_id), canonical_json({
            "process_id": before.id, "action_id": action_id, "step": step, "invoice_id": before.invoice_id,
            "invoice_number": w.invoice_number, "customer_id": before.customer_id,
            "subscription_id": before.subscription_id, "action": action_value, "channel": channel_value,
            "day": day, "amount_remaining_minor": amount, "currency": w.currency, "outcome": outcome_value,
            "decline_code": decline_code if action is Action.RETRY else before.last_decline_code,
            "policy": policy,
        })))  # fmt: skip
        key = f"{action_value}/{outcome_value}"
        self.tally.actions[key] = self.tally.actions.get(key, 0) + 1

    def ended(self, p: Process, w: World, event: DunningEvent) -> None:
        """The ``dunning.ended`` event of a process that reached a terminal status."""
        self.events.append(Event(self.now, "dunning.ended", "invoice", str(p.invoice_id), canonical_json({
            "process_id": p.id, "invoice_id": p.invoice_id, "invoice_number": w.invoice_number,
            "customer_id": p.customer_id, "subscription_id": p.subscription_id, "status": p.status,
            "reason": event.value, "day": day_of(p, self.now), "steps": p.step, "retries": p.retries,
            "currency": w.currency,
        })))  # fmt: skip
        self.tally.ended[p.status] = self.tally.ended.get(p.status, 0) + 1

    def subscription_changed(
        self, sub_id: int, before: str, after: str, reason: str, invoice_id: int
    ) -> None:
        self.events.append(Event(self.now, "subscription.status_changed", "subscription", str(sub_id), canonical_json({
            "subscription_id": sub_id, "from": before, "to": after, "reason": reason, "invoice_id": invoice_id,
        })))  # fmt: skip

    # -- flush -------------------------------------------------------------------------------
    def flush(self) -> Tally:
        bulk = self.bulk
        bulk.insert("payment_attempts", ATTEMPT_COLUMNS, self.attempts)
        bulk.executemany(_UPDATE_PROCESS, self.process_updates)
        bulk.executemany(
            "UPDATE dunning_processes SET attempt_id = ?, updated_at = ? WHERE id = ?", self.in_flight
        )
        bulk.executemany(
            "UPDATE dunning_processes SET attempt_id = ?, next_action = ?, next_channel = ?, next_action_at = ?,"
            " decided_by = ?, updated_at = ? WHERE id = ?",
            self.in_flight_redecided,
        )
        bulk.insert("dunning_actions", ACTION_COLUMNS, self.actions)
        bulk.executemany(
            "UPDATE invoices SET status = 'uncollectible', marked_uncollectible_at = ? WHERE id = ? AND status = 'open'",
            self.write_offs,
        )
        bulk.executemany(
            "UPDATE subscriptions SET status = ?, updated_at = ? WHERE id = ?", self.subscription_status
        )
        for sub_id in [row[-1] for row in self.subscription_cancels]:
            bulk.execute("DELETE FROM subscription_pending_changes WHERE subscription_id = ?", (sub_id,))
        bulk.executemany(
            "UPDATE subscriptions SET status = 'canceled', canceled_at = ?, ended_at = ?, next_invoice_at = NULL,"
            " updated_at = ? WHERE id = ?",
            self.subscription_cancels,
        )
        self.tx.events.extend(self.events)
        return self.tally


def _subscription_statuses(bulk: Bulk, sub_ids: Iterable[int]) -> dict[int, str]:
    """Lock these subscriptions, in id order (after the processes and their invoices); their statuses."""
    ids = sorted(set(sub_ids))
    found: dict[int, str] = {}
    lock = "" if bulk.sqlite else " FOR UPDATE"
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ", ".join("?" * len(part))
        found.update(
            bulk.query(f"SELECT id, status FROM subscriptions WHERE id IN ({marks}) ORDER BY id{lock}", part)
        )
    return found


def write_plan(w: Writer, plan: Plan, *, write_off_cancels: bool) -> list[Claim]:
    """Write a verified plan: ends, actions, claims (pending attempts), new decisions.

    Returns the claims, with their attempts now committed as pending once the transaction ends.
    Subscription changes (suspension, cancellation at write-off, return to active once an invoice
    settled elsewhere) are decided here, on statuses read under the lock.
    """
    bulk = w.bulk
    now, now_s = w.now, w.now_s
    subs_needed = [e.snapshot.process.subscription_id for e in plan.ends if e.event is DunningEvent.PAID]
    subs_needed += [a.snapshot.process.subscription_id for a in plan.acts
                    if a.action in (Action.SUSPEND, Action.WRITE_OFF)]  # fmt: skip
    subs = _subscription_statuses(bulk, [s for s in subs_needed if s is not None])

    for snapshot, event in plan.ends:
        p, world = snapshot
        status = DUNNING_LIFECYCLE.next(_STATUSES[p.status], event, entity_id=p.id)
        after = p._replace(status=status.value, next_action=None, next_channel=None, next_action_at=None,
                           ended_at=now)  # fmt: skip
        w.process(after)
        w.ended(after, world, event)
    _restore_subscriptions(w, [e.snapshot for e in plan.ends if e.event is DunningEvent.PAID], subs)

    action_ids = iter(bulk.reserve_ids("dunning_actions", len(plan.acts)))
    for snapshot, action, channel, after in plan.acts:
        p, world = snapshot
        outcome = Outcome.QUEUED
        if action is Action.SUSPEND:
            outcome = _suspend(w, p, subs)
        elif action is Action.WRITE_OFF:
            outcome = Outcome.WRITTEN_OFF
            w.write_offs.append((now_s, p.invoice_id))
            w.events.append(Event(now, "invoice.marked_uncollectible", "invoice", str(p.invoice_id), canonical_json({
                "invoice_id": p.invoice_id, "customer_id": p.customer_id, "subscription_id": p.subscription_id,
                "currency": world.currency, "amount_written_off_minor": world.amount_remaining_minor,
                "reason": "dunning",
            })))  # fmt: skip
            if write_off_cancels:
                _cancel(w, p, subs)
        w.action(next(action_ids), p, world, action, channel, outcome)
        w.process(after)
        if not _STATUSES[after.status].live:
            w.ended(after, world, ACTION_EVENTS[action])

    attempt_ids = iter(bulk.reserve_ids("payment_attempts", len(plan.claims)))
    claimed = []
    for claim in plan.claims:
        p, world = claim.snapshot
        attempt_id = next(attempt_ids)
        number = claim.attempt_number
        w.attempts.append((
            attempt_id, p.invoice_id, p.customer_id, claim.card.id, number, world.amount_remaining_minor,
            world.currency, "pending", attempt_key(p.invoice_id, number), "dunning", now_s,
        ))  # fmt: skip
        if claim.redecided:  # the process waits on the attempt, and keeps the decision that made it
            w.in_flight_redecided.append((attempt_id, p.next_action, p.next_channel, w.instant(p.next_action_at),
                                          p.decided_by, now_s, p.id))  # fmt: skip
        else:
            w.in_flight.append((attempt_id, now_s, p.id))
        claimed.append(claim._replace(snapshot=Snapshot(p._replace(attempt_id=attempt_id), world)))

    for _snapshot, after in plan.redecided:
        w.process(after)
    return claimed


def _suspend(w: Writer, p: Process, subs: dict[int, str]) -> Outcome:
    sub_id = p.subscription_id
    status = subs.get(sub_id) if sub_id is not None else None
    if sub_id is None or status is None:
        return Outcome.NOT_SUSPENDED
    if status == SubscriptionStatus.UNPAID.value:
        return Outcome.ALREADY_SUSPENDED
    current = SubscriptionStatus(status)
    if not SUBSCRIPTION_LIFECYCLE.can(current, SubscriptionEvent.DUNNING_EXHAUSTED):
        return Outcome.NOT_SUSPENDED
    target = SUBSCRIPTION_LIFECYCLE.next(current, SubscriptionEvent.DUNNING_EXHAUSTED, entity_id=sub_id)
    subs[sub_id] = target.value
    w.subscription_status.append((target.value, w.now_s, sub_id))
    w.subscription_changed(
        sub_id, status, target.value, SubscriptionEvent.DUNNING_EXHAUSTED.value, p.invoice_id
    )
    w.tally.subscriptions_suspended += 1
    return Outcome.SUSPENDED


#: subscriptions a write-off cancels: those in collections
_CANCELABLE = frozenset({SubscriptionStatus.PAST_DUE.value, SubscriptionStatus.UNPAID.value})


def _cancel(w: Writer, p: Process, subs: dict[int, str]) -> None:
    sub_id = p.subscription_id
    if sub_id is None or subs.get(sub_id) not in _CANCELABLE:
        return
    before = subs[sub_id]
    subs[sub_id] = SubscriptionStatus.CANCELED.value
    w.subscription_cancels.append((w.now_s, w.now_s, w.now_s, sub_id))
    w.subscription_changed(sub_id, before, SubscriptionStatus.CANCELED.value, "written_off", p.invoice_id)
    w.tally.subscriptions_canceled += 1


def _restore_subscriptions(w: Writer, paid: Sequence[Snapshot], subs: dict[int, str]) -> None:
    """An invoice settled outside the engine: its subscription returns to active once nothing is open."""
    candidates = {
        s.process.subscription_id
        for s in paid
        if s.process.subscription_id is not None
        and subs.get(s.process.subscription_id) in _CANCELABLE  # past_due or unpaid
    }
    if not candidates:
        return
    still_open = open_invoice_counts(w.bulk, candidates)
    for snapshot in paid:
        sub_id = snapshot.process.subscription_id
        if sub_id not in candidates or still_open.get(sub_id, 0):
            continue
        before = subs[sub_id]
        target = SUBSCRIPTION_LIFECYCLE.next(
            SubscriptionStatus(before), SubscriptionEvent.PAYMENT_SUCCEEDED, entity_id=sub_id
        )
        subs[sub_id] = target.value
        candidates.discard(sub_id)
        w.subscription_status.append((target.value, w.now_s, sub_id))
        w.subscription_changed(sub_id, before, target.value, "invoice_settled", snapshot.process.invoice_id)
        w.tally.subscriptions_restored += 1


# ------------------------------------------------------------------------------------ retries


class Retry(NamedTuple):
    """A retry in flight: the process (with its attempt id), its world, and the attempt as queued."""

    snapshot: Snapshot
    attempt: Attempt
    card: PaymentMethod


class Answer(NamedTuple):
    """What became of a retry: ``status`` of its attempt and the decline code."""

    status: str  # succeeded, failed, canceled
    decline_code: str | None


def plan_settlement(
    retries: Sequence[tuple[Retry, Answer]], *, now: datetime, policy: DunningPolicy
) -> list[tuple[Retry, Answer, Process]]:
    """Each retry's process after its answer (in the order given), with the policy's next decision
    where the process goes on."""
    settled: list[tuple[Retry, Answer, Process]] = []
    going_on: list[int] = []  # positions in ``settled`` of the processes that go on
    for retry, answer in retries:
        p, _w = retry.snapshot
        changes: dict[str, Any] = {
            "step": p.step + 1, "retries": p.retries + 1, "attempts": max(p.attempts, retry.attempt.attempt_number),
            "last_retry_at": now, "payment_method_id": retry.card.id, "attempt_id": None,
        }  # fmt: skip
        if answer.status == "succeeded":
            status = DUNNING_LIFECYCLE.next(_STATUSES[p.status], DunningEvent.PAID, entity_id=p.id)
            changes.update(status=_VALUES[status], next_action=None, next_channel=None, next_action_at=None,
                           ended_at=now)  # fmt: skip
        else:
            if answer.status == "failed" and answer.decline_code:
                changes["last_decline_code"] = answer.decline_code
            going_on.append(len(settled))
        settled.append((retry, answer, changed(p, changes)))
    decided = decide(policy, [(settled[i][2], settled[i][0].snapshot.world, None) for i in going_on], now)
    for position, after in zip(going_on, decided, strict=True):
        retry, answer, _before = settled[position]
        settled[position] = (retry, answer, after)
    return settled


def verify_retries(bulk: Bulk, retries: Sequence[tuple[Retry, Answer, Process]]) -> dict[int, str]:
    """Under the lock: the retries whose process still waits on that attempt, answered as planned.

    The caller locks the processes (:func:`lock_processes`) before it records the answers, which
    locks their invoices and attempts: processes first. Returns ``{process id: invoice status}``
    for them.
    """
    if not retries:
        return {}
    ids = sorted({r.snapshot.process.id for r, _a, _p in retries})
    lock_processes(bulk, ids)  # a no-op if the caller locked them first, as it should (see the module's doc)
    where, params = among(bulk, "p.id", ids)
    current = {
        row[0]: row[1:]
        for row in bulk.query(
            "SELECT p.id, p.step, p.attempt_id, a.status, a.decline_code, i.status FROM dunning_processes p"
            " JOIN payment_attempts a ON a.id = p.attempt_id JOIN invoices i ON i.id = p.invoice_id"
            f" WHERE {where}",
            params,
        )
    }
    kept = {}
    for retry, answer, _after in retries:
        p = retry.snapshot.process
        row = current.get(p.id)
        if row is None:
            continue
        step, attempt_id, status, decline_code, invoice_status = row
        if (step, attempt_id, status) == (p.step, p.attempt_id, answer.status) and (
            status != "failed" or decline_code == answer.decline_code
        ):
            kept[p.id] = invoice_status
    return kept


def write_settlement(
    w: Writer, retries: Sequence[tuple[Retry, Answer, Process]], kept: dict[int, str]
) -> None:
    """Action rows, process updates and events for answered retries (the payments are recorded apart)."""
    todo = [item for item in retries if item[0].snapshot.process.id in kept]
    action_ids = iter(w.bulk.reserve_ids("dunning_actions", len(todo)))
    for retry, answer, after in todo:
        p, world = retry.snapshot
        attempt = retry.attempt
        if answer.status == "succeeded":
            outcome = Outcome.SUCCEEDED
            w.tally.recovered_minor[world.currency] = (
                w.tally.recovered_minor.get(world.currency, 0) + attempt.amount_minor
            )
        elif answer.status == "failed":
            outcome = Outcome.DECLINED
        else:
            outcome = Outcome.CANCELED
            ending = INVOICE_ENDINGS.get(kept[p.id])
            if ending is not None:  # the invoice was voided (or settled) meanwhile
                status = DUNNING_LIFECYCLE.next(_STATUSES[after.status], ending, entity_id=p.id)
                after = after._replace(status=status.value, next_action=None, next_channel=None,
                                       next_action_at=None, ended_at=w.now)  # fmt: skip
        w.action(next(action_ids), p, world, Action.RETRY, None, outcome, attempt_id=attempt.attempt_id,
                 decline_code=answer.decline_code, amount_minor=attempt.amount_minor)  # fmt: skip
        w.process(after)
        if not _STATUSES[after.status].live:
            ending = DunningEvent.PAID if outcome is Outcome.SUCCEEDED else INVOICE_ENDINGS[kept[p.id]]
            w.ended(after, world, ending)


# ------------------------------------------------------------------------------------- opening

_CANDIDATES = """
SELECT i.id FROM invoices i
WHERE i.status = 'open' AND i.amount_remaining_minor > 0{only}
  AND NOT EXISTS (SELECT 1 FROM dunning_processes p WHERE p.invoice_id = i.id)
  AND NOT EXISTS (SELECT 1 FROM payment_attempts a WHERE a.invoice_id = i.id AND a.status = 'pending')
  AND (i.due_at <= ? OR EXISTS (SELECT 1 FROM payment_attempts a WHERE a.invoice_id = i.id AND a.status = 'failed'))
ORDER BY i.id{lock}
"""


def candidate_ids(
    bulk: Bulk, as_of: datetime, *, only: Sequence[int] | None = None, lock: bool = False
) -> list[int]:
    """Open invoices not in dunning yet: a payment failed and none is pending, or past due by ``as_of``.

    ``lock``: lock them, in id order, and answer for them as they are once locked. On PostgreSQL
    the locking statement may wait for another run that is opening the same invoices; when it
    gets the locks, the processes that run committed meanwhile are not in the statement's
    snapshot (read committed: the snapshot is taken when the statement starts, and the invoice
    rows were locked, not updated, so nothing is checked again). A second statement, whose
    snapshot is taken after the wait, sees them; opening an invoice takes its lock, so the answer
    holds until this transaction ends.
    """
    restrict, params = "", ()
    if only is not None:
        where, params = among(bulk, "i.id", only)
        restrict = f" AND {where}"
    locking = lock and not bulk.sqlite
    found = [
        row[0]
        for row in bulk.query(
            _CANDIDATES.format(only=restrict, lock=" FOR UPDATE OF i" if locking else ""),
            (*params, bulk.instant(as_of)),
        )
    ]
    if locking and found:
        return candidate_ids(bulk, as_of, only=found)
    return found


class Opening(NamedTuple):
    process: Process
    world: World


def read_openings(
    bulk: Bulk, invoice_ids: Sequence[int], process_ids: Iterator[int], parsed: ParsedInstants
) -> list[Opening]:
    """New processes for ``invoice_ids`` (as they would start), with their worlds; no decision yet."""
    where, params = among(bulk, "i.id", invoice_ids)
    rows = bulk.query(
        "SELECT i.id, i.number, i.customer_id, i.subscription_id, i.currency, i.amount_remaining_minor, i.due_at,"
        " i.status, c.timezone, m.id, m.brand, m.bin, m.last4, m.exp_month, m.exp_year, m.fingerprint, s.status"
        " FROM invoices i JOIN customers c ON c.id = i.customer_id"
        " LEFT JOIN payment_methods m ON m.id = c.default_payment_method_id"
        " LEFT JOIN subscriptions s ON s.id = i.subscription_id"
        f" WHERE {where} ORDER BY i.id",
        params,
    )
    attempts: dict[int, list[tuple[Any, ...]]] = {}
    where, params = among(bulk, "invoice_id", invoice_ids)
    for row in bulk.query(
        "SELECT invoice_id, attempt_number, status, decline_code, payment_method_id, processed_at, scheduled_at"
        f" FROM payment_attempts WHERE {where} ORDER BY invoice_id, attempt_number",
        params,
    ):
        attempts.setdefault(row[0], []).append(row)
    openings = []
    for (invoice_id, number, customer_id, sub_id, code, remaining, due_at, status, tz_name, pm_id, brand,
         bin_, last4, exp_month, exp_year, fingerprint, sub_status) in rows:  # fmt: skip
        tried = attempts.get(invoice_id, [])
        failed = [a for a in tried if a[2] == "failed"]
        card = None
        if pm_id is not None:
            card = Card(pm_id, customer_id, brand, bin_, last4, exp_month, exp_year, fingerprint)
        if failed:
            last = failed[-1]
            reason, started = "payment_failed", parsed[last[5] if last[5] is not None else last[6]]
            decline, declined_card = last[3], last[4]
        else:
            reason, started, decline = "overdue", parsed[due_at], None
            declined_card = tried[-1][4] if tried else pm_id
        if started is None:  # pragma: no cover - finalized invoices have a due date
            continue
        process = Process(
            next(process_ids), invoice_id, customer_id, sub_id, reason, DunningStatus.ACTIVE.value, started, 0,
            0, len(tried), 0, 0, 0, decline, None, None, None, declined_card, None, None, None, None, None, None,
        )  # fmt: skip
        last_number = tried[-1][1] if tried else 0
        openings.append(
            Opening(
                process, World(number, status, remaining, code, tz_name, card, sub_status, last_number, 0)
            )
        )
    return openings


def write_openings(w: Writer, openings: Sequence[Opening]) -> None:
    i = w.instant
    rows = []
    for p, world in openings:
        rows.append((
            p.id, p.invoice_id, p.customer_id, p.subscription_id, p.reason, p.status, i(p.started_at), p.step,
            p.retries, p.attempts, 0, 0, 0, 0, p.last_decline_code, p.payment_method_id, p.next_action,
            p.next_channel, i(p.next_action_at), p.decided_by, w.now_s,
        ))  # fmt: skip
        w.events.append(Event(w.now, "dunning.started", "invoice", str(p.invoice_id), canonical_json({
            "process_id": p.id, "invoice_id": p.invoice_id, "invoice_number": world.invoice_number,
            "customer_id": p.customer_id, "subscription_id": p.subscription_id, "reason": p.reason,
            "started_at": p.started_at, "decline_code": p.last_decline_code, "attempts": p.attempts,
            "amount_remaining_minor": world.amount_remaining_minor, "currency": world.currency,
            "next_action": p.next_action, "next_channel": p.next_channel, "next_action_at": p.next_action_at,
            "policy": p.decided_by,
        })))  # fmt: skip
    w.bulk.insert(
        "dunning_processes",
        ["id", "invoice_id", "customer_id", "subscription_id", "reason", "status", "started_at", "step",
         "retries", "attempts", "reminders", "reminders_email", "reminders_sms", "reminders_call",
         "last_decline_code", "payment_method_id", "next_action", "next_channel", "next_action_at",
         "decided_by", "updated_at"],
        rows,
    )  # fmt: skip
    w.tally.opened += len(rows)


def read_retries(bulk: Bulk, snapshots: Sequence[Snapshot]) -> tuple[list[Retry], dict[int, Answer]]:
    """The retries in flight of ``snapshots``, and the answers already recorded for some of them."""
    by_attempt = {s.process.attempt_id: s for s in snapshots if s.process.attempt_id is not None}
    if not by_attempt:
        return [], {}
    where, params = among(bulk, "a.id", list(by_attempt))
    rows = bulk.query(
        "SELECT a.id, a.invoice_id, a.customer_id, a.payment_method_id, a.attempt_number, a.amount_minor,"
        " a.currency, a.idempotency_key, a.status, a.decline_code, m.brand, m.bin, m.last4, m.exp_month,"
        " m.exp_year, m.fingerprint FROM payment_attempts a JOIN payment_methods m ON m.id = a.payment_method_id"
        f" WHERE {where} ORDER BY a.id",
        params,
    )
    retries, recorded = [], {}
    for (attempt_id, invoice_id, customer_id, pm_id, number, amount, code, key, status, decline, brand, bin_,
         last4, exp_month, exp_year, fingerprint) in rows:  # fmt: skip
        snapshot = by_attempt[attempt_id]
        card = PaymentMethod(
            pm_id, customer_id, CardBrand(brand), bin_, last4, exp_month, exp_year, fingerprint
        )
        attempt = Attempt(attempt_id, invoice_id, customer_id, pm_id, number, amount, code, key,
                          snapshot.process.subscription_id)  # fmt: skip
        retries.append(Retry(snapshot, attempt, card))
        if status != "pending":
            recorded[attempt_id] = Answer(status, decline)
    return retries, recorded


def retry_of(claim: Claim) -> Retry:
    """The retry a written claim sent: its attempt as queued."""
    p, world = claim.snapshot
    if p.attempt_id is None:  # pragma: no cover - write_plan sets it
        raise ValueError(f"dunning process {p.id} has no attempt")
    number = claim.attempt_number
    attempt = Attempt(p.attempt_id, p.invoice_id, p.customer_id, claim.card.id, number,
                      world.amount_remaining_minor, world.currency, attempt_key(p.invoice_id, number),
                      p.subscription_id)  # fmt: skip
    return Retry(claim.snapshot, attempt, claim.card)
