"""The dispatcher: reads the outbox after its own position, records notifications, sends them.

One run (:func:`dispatch`) does two things, in this order:

1. **Retries.** Notifications whose next attempt is due (``failed`` ones after their back-off,
   ``sending`` ones whose claim has lapsed because the run that claimed them died) are claimed
   again, re-rendered from their event in the language and to the recipient recorded the first
   time, and sent with the same Message-ID.
2. **New events.** Outbox events after the consumer's offset (``consumer_offsets``, consumer
   ``notifications``) are read in ``seq`` order, a page at a time, filtered to the configured
   event types in SQL; the customers, invoices and cards a page refers to are read in one query
   each. In ONE transaction the page's notifications are inserted as ``sending`` (call tasks as
   ``open``) and the offset moves to the end of the page; only then, after that commit, are the
   messages sent, and the answers recorded (one transaction per channel).

Delivery is **at least once**. A notification is recorded (``sending``) before it is sent and
marked ``sent`` after; a run that dies in between leaves it ``sending``, and once its claim lapses
(``claim_timeout``, 10 minutes by default, so that a slow live run is not doubled) the next run
sends it again with the same Message-ID, which receivers use to drop the duplicate. SMTP offers
nothing stronger. Nothing is ever lost: the offset and the notifications move in one transaction.

The outbox only holds committed events (appends are serialized and gapless, see
:mod:`billing_core.audit`), so rolled-back work is never announced. ``(event_seq, channel)`` is
unique: an event never produces a second message on one channel, even if two dispatchers run at
once (the second finds the offset moved and reads again).

**Offset and retries.** The offset says which events have been turned into notifications, not
which were delivered: a refusing or unreachable server never holds the outbox back. A message
that fails for now becomes ``failed`` and is retried by later runs with exponential back-off
(``retry_base`` doubling up to ``retry_cap``) until ``max_attempts``, then ``undeliverable``; a
message refused for good (a 5xx answer to the recipient) or that cannot be rendered is
``undeliverable`` at once. When the provider cannot be reached at all, the run records what it
claimed and stops (``DispatchResult.stopped``) instead of claiming more.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from time import perf_counter
from typing import Any

import orjson

from billing_core.context import BillingContext, Tx
from billing_core.db.bulk import Bulk
from billing_core.db.types import parse_instant_column
from billing_core.errors import InvalidInput
from billing_core.notifications.errors import RenderError
from billing_core.notifications.messages import (
    DEFAULT_EVENTS,
    SUPPORTED_EVENTS,
    Channel,
    CustomerFacts,
    Facts,
    InvoiceFacts,
    Kind,
    OutboxEvent,
    Planned,
    message_values,
    needs_failure_history,
    payload_ids,
    plan,
)
from billing_core.notifications.render import Formatter, Renderer, default_renderer
from billing_core.notifications.senders import (
    Delivery,
    EmailSender,
    LoggingSmsSender,
    MaildirEmailSender,
    OutgoingEmail,
    OutgoingSms,
    SmsSender,
    SmtpEmailSender,
)

log = logging.getLogger(__name__)

#: the dispatcher's name in ``consumer_offsets``
CONSUMER = "notifications"
DEFAULT_SENDER = "Recoup Billing <billing@recoup.invalid>"


@dataclass(frozen=True, slots=True)
class DispatchOptions:
    """What to send and how hard to try.

    ``events`` is the set of outbox event types that produce messages (default: dunning
    actions and payment failures and recoveries; add ``invoice.finalized`` for invoice emails).
    """

    events: frozenset[str] = DEFAULT_EVENTS
    sender: str = DEFAULT_SENDER
    chunk_size: int = 500
    claim_timeout: timedelta = timedelta(minutes=10)
    max_attempts: int = 10
    retry_base: timedelta = timedelta(minutes=5)
    retry_cap: timedelta = timedelta(hours=6)

    def __post_init__(self) -> None:
        expected = "a set of event types among " + ", ".join(SUPPORTED_EVENTS)
        if isinstance(self.events, str) or not isinstance(self.events, Collection):
            raise InvalidInput("events", expected, self.events)
        events = frozenset(self.events)
        if not events <= set(SUPPORTED_EVENTS):
            raise InvalidInput("events", expected, sorted(map(str, events)))
        object.__setattr__(self, "events", events)
        address = parseaddr(self.sender)[1]
        if "@" not in address:
            raise InvalidInput("sender", "an address such as 'Billing <billing@example.com>'", self.sender)
        _positive_int(self.chunk_size, "chunk_size")
        _positive_int(self.max_attempts, "max_attempts")
        for name in ("claim_timeout", "retry_base", "retry_cap"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise InvalidInput(name, "a positive timedelta", value)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> DispatchOptions:
        """Options from :class:`recoup.settings.Settings`, with overrides.

        The sender is ``smtp_sender``; the event types are ``notify_events`` (comma-separated)
        when the settings have it, else :data:`DEFAULT_EVENTS`.
        """
        values: dict[str, Any] = {"sender": settings.smtp_sender}
        events = getattr(settings, "notify_events", None)
        if events:
            values["events"] = parse_events(events) if isinstance(events, str) else frozenset(events)
        values.update(overrides)
        return cls(**values)

    def backoff(self, attempts: int) -> timedelta:
        """How long to wait after the ``attempts``-th attempt failed: doubling, capped."""
        wait: timedelta = self.retry_base * 2 ** max(attempts - 1, 0)
        return min(wait, self.retry_cap)

    @property
    def domain(self) -> str:
        return parseaddr(self.sender)[1].rpartition("@")[2]

    @property
    def company(self) -> str:
        """Who the messages are signed by: the sender's display name, else its domain."""
        return parseaddr(self.sender)[0] or self.domain


def parse_events(text: str) -> frozenset[str]:
    """``"payment.failed, invoice.finalized"`` as a set of event types (validated by the options)."""
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def _positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(name, "a whole number >= 1", value)


@dataclass
class DispatchResult:
    """What a run did. ``offset`` and ``head`` are read at its end (``head - offset`` is the lag)."""

    events: int = 0  # outbox events of the configured types read
    notifications: int = 0  # new notifications recorded
    call_tasks: int = 0
    retried: int = 0  # older notifications claimed again
    sent: int = 0
    failed: int = 0  # failed for now: retried by a later run
    undeliverable: int = 0
    skipped: int = 0  # events whose payload broke the contract (logged)
    sent_by_kind: dict[str, int] = field(default_factory=dict)  # "email payment_failed": n
    stopped: str | None = None  # why the run stopped early (the provider was unreachable)
    offset: int = 0
    head: int = 0
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class _Draft:
    planned: Planned
    language: str
    recipient: str
    subject: str | None
    text: str
    html: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    message_id: str
    attempts: int
    draft: _Draft | None  # None when there is nothing to send (the event or customer is gone)

    @property
    def sure_draft(self) -> _Draft:
        assert self.draft is not None
        return self.draft


def dispatch(
    ctx: BillingContext,
    *,
    email: EmailSender,
    sms: SmsSender,
    options: DispatchOptions | None = None,
    renderer: Renderer | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> DispatchResult:
    """Send what the outbox asks for: retries first, then new events (see the module's doc).

    ``on_progress(done, total)`` counts outbox sequence numbers covered by this run. Call it
    after any run that writes events (billing, dunning); it is safe to run it from several
    processes at once.
    """
    return _Dispatcher(ctx, email, sms, options or DispatchOptions(), renderer or default_renderer()).run(
        on_progress
    )


def email_sender(settings: Any) -> EmailSender:
    """The email backend the settings choose: ``smtp`` (``RECOUP_SMTP_*``) or ``maildir``."""
    backend = getattr(settings, "email_backend", "smtp")
    if backend == "maildir":
        return MaildirEmailSender.from_settings(settings)
    if backend == "smtp":
        return SmtpEmailSender.from_settings(settings)
    raise InvalidInput("email_backend", "smtp or maildir", backend)


def dispatch_with_settings(
    ctx: BillingContext, settings: Any, *, echo: Callable[[str], object] | None = None, **overrides: Any
) -> DispatchResult:
    """:func:`dispatch` with the email backend of the settings and text messages written to the log.

    ``RECOUP_EMAIL_BACKEND=smtp`` (the default) sends through ``RECOUP_SMTP_*``; ``maildir``
    delivers into ``RECOUP_MAILDIR``.
    """
    return dispatch(
        ctx,
        email=email_sender(settings),
        sms=LoggingSmsSender(echo),
        options=DispatchOptions.from_settings(settings, **overrides),
    )


class _Dispatcher:
    def __init__(
        self,
        ctx: BillingContext,
        email: EmailSender,
        sms: SmsSender,
        options: DispatchOptions,
        renderer: Renderer,
    ) -> None:
        self.ctx = ctx
        self.email = email
        self.sms = sms
        self.options = options
        self.renderer = renderer
        self.result = DispatchResult()

    def run(self, on_progress: Callable[[int, int], None] | None) -> DispatchResult:
        started = perf_counter()
        self.retry_due()
        if self.result.stopped is None:
            self.new_events(on_progress)
        with self.ctx.read() as conn:
            bulk = Bulk(conn)
            self.result.offset, self.result.head = read_offset(bulk), read_head(bulk)
        self.result.seconds = perf_counter() - started
        return self.result

    # -- new events ------------------------------------------------------------------------------
    def new_events(self, on_progress: Callable[[int, int], None] | None) -> None:
        types = sorted(self.options.events)
        chunk = self.options.chunk_size
        query = (
            "SELECT seq, occurred_at, event_type, payload FROM outbox WHERE seq > ? AND seq <= ?"
            f" AND event_type IN ({', '.join('?' * len(types))}) ORDER BY seq LIMIT ?"
        )
        start: int | None = None
        while self.result.stopped is None:
            with self.ctx.read() as conn:
                bulk = Bulk(conn)
                head, offset = read_head(bulk), read_offset(bulk)
                start = offset if start is None else start
                if offset >= head:
                    break
                rows = bulk.query(query, (offset, head, *types, chunk))
                # a full page ends at its last event; a short one covers everything up to the head
                end = int(rows[-1][0]) if len(rows) >= chunk else head
                events = [_event(row) for row in rows]
                facts = load_facts(bulk, events)
            planned = self._plan(events, facts)
            drafts = [self._draft(p, facts) for p in planned if p.channel is not Channel.CALL]
            calls = [p for p in planned if p.channel is Channel.CALL]
            with self.ctx.transaction() as tx:
                claimed = self._claim_page(tx, offset, end, drafts, calls)
            if claimed is None:
                continue  # another dispatcher took this page meanwhile: read again from its offset
            self.result.events += len(events)
            self.result.notifications += len(drafts)
            self.result.call_tasks += len(calls)
            self._deliver(claimed)
            if on_progress is not None:
                on_progress(end - start, head - start)

    def _plan(self, events: Sequence[OutboxEvent], facts: Facts) -> list[Planned]:
        planned: list[Planned] = []
        for event in events:
            try:
                planned.extend(plan(event, facts))
            except (KeyError, TypeError, ValueError) as exc:
                self.result.skipped += 1
                log.warning("outbox event %s (%s) skipped: %s", event.seq, event.event_type, exc)
        return planned

    def _draft(
        self, planned: Planned, facts: Facts, *, language: str | None = None, recipient: str | None = None
    ) -> _Draft:
        customer = planned.customer
        sms = planned.channel is Channel.SMS
        lang = language or self.renderer.language_for(planned.kind, customer.language, sms=sms)
        to = recipient or (customer.phone if sms else customer.email) or ""
        try:
            fmt = Formatter(lang, customer.country, customer.timezone)
            values = message_values(planned, fmt, facts, company=self.options.company)
            if sms:
                return _Draft(planned, lang, to, None, self.renderer.sms(planned.kind, lang, values), "")
            rendered = self.renderer.email(planned.kind, lang, values)
        except (RenderError, LookupError, ValueError) as exc:
            log.error("notification for outbox event %s not rendered: %s", planned.event.seq, exc)
            return _Draft(planned, lang, to, None, "", "", error=f"not rendered: {exc}"[:512])
        return _Draft(planned, lang, to, rendered.subject, rendered.text, rendered.html)

    def _claim_page(
        self, tx: Tx, offset: int, end: int, drafts: Sequence[_Draft], calls: Sequence[Planned]
    ) -> list[_Claimed] | None:
        """Record the page's notifications and call tasks and move the offset, or None if it moved."""
        bulk, now = tx.bulk, tx.now
        now_s = bulk.instant(now)
        bulk.execute(
            "INSERT INTO consumer_offsets (consumer, last_seq, updated_at) VALUES (?, 0, ?)"
            " ON CONFLICT (consumer) DO NOTHING",
            (CONSUMER, now_s),
        )
        lock = "" if bulk.sqlite else " FOR UPDATE"
        (current,) = bulk.query(
            f"SELECT last_seq FROM consumer_offsets WHERE consumer = ?{lock}", (CONSUMER,)
        )[0]
        if int(current) != offset:
            return None
        bulk.execute(
            "UPDATE consumer_offsets SET last_seq = ?, updated_at = ? WHERE consumer = ?",
            (end, now_s, CONSUMER),
        )
        lease = bulk.instant(now + self.options.claim_timeout)
        rows, claimed = [], []
        for notification_id, draft in zip(
            bulk.reserve_ids("notifications", len(drafts)), drafts, strict=True
        ):
            message_id = f"<{uuid.uuid4().hex}.{notification_id}@{self.options.domain}>"
            p = draft.planned
            if draft.error is None:
                status, attempts, due = "sending", 1, lease
                claimed.append(_Claimed(notification_id, message_id, 1, draft))
            else:
                status, attempts, due = "undeliverable", 0, None
                self.result.undeliverable += 1
            rows.append(
                (notification_id, p.event.seq, p.kind.value, p.channel.value, p.customer.id, p.invoice_id,
                 draft.recipient[:320], draft.language, (draft.subject or None) and draft.subject[:512],
                 status, message_id, attempts, draft.error, now_s, due)
            )  # fmt: skip
        bulk.insert("notifications", _NOTIFICATION_COLUMNS, rows)
        bulk.insert(
            "call_tasks",
            ["event_seq", "customer_id", "invoice_id", "action", "amount_minor", "currency", "status", "created_at"],
            [
                (p.event.seq, p.customer.id, p.invoice_id, str(p.event.payload.get("action")), p.amount_minor,
                 p.currency, "open", now_s)
                for p in calls
            ],
        )  # fmt: skip
        return claimed

    # -- retries ---------------------------------------------------------------------------------
    def retry_due(self) -> None:
        while self.result.stopped is None:
            with self.ctx.transaction() as tx:
                rows = self._claim_due(tx)
            if not rows:
                return
            self.result.retried += len(rows)
            with self.ctx.read() as conn:
                bulk = Bulk(conn)
                events = {e.seq: e for e in read_events(bulk, {row[1] for row in rows})}
                facts = load_facts(bulk, events.values())
            claimed, broken = [], []
            for (
                notification_id,
                seq,
                kind,
                channel,
                customer_id,
                recipient,
                language,
                message_id,
                attempts,
            ) in rows:
                event, customer = events.get(seq), facts.customers.get(customer_id)
                try:
                    if event is None or customer is None:
                        raise LookupError(f"outbox event {seq} or customer {customer_id} not found")
                    planned = Planned.of(event, Kind(kind), Channel(channel), customer, facts)
                except (LookupError, ValueError) as exc:
                    broken.append((_Claimed(notification_id, message_id, attempts, None), str(exc)))
                    continue
                draft = self._draft(planned, facts, language=language, recipient=recipient)
                item = _Claimed(notification_id, message_id, attempts, draft)
                if draft.error is None:
                    claimed.append(item)
                else:
                    broken.append((item, draft.error))
            self._deliver(claimed, [(c, Delivery.failed(error, permanent=True)) for c, error in broken])

    def _claim_due(self, tx: Tx) -> list[tuple[Any, ...]]:
        bulk, now = tx.bulk, tx.now
        now_s, lease = bulk.instant(now), bulk.instant(now + self.options.claim_timeout)
        skip_locked = "" if bulk.sqlite else " FOR UPDATE SKIP LOCKED"
        rows = bulk.query(
            "UPDATE notifications SET status = 'sending', attempts = attempts + 1, next_attempt_at = ?"
            " WHERE id IN (SELECT id FROM notifications WHERE status IN ('sending', 'failed')"
            f" AND next_attempt_at <= ? ORDER BY id LIMIT ?{skip_locked})"
            " AND status IN ('sending', 'failed') AND next_attempt_at <= ?"
            " RETURNING id, event_seq, kind, channel, customer_id, recipient, language, message_id, attempts",
            (lease, now_s, self.options.chunk_size, now_s),
        )
        return sorted(rows)

    # -- sending and recording -------------------------------------------------------------------
    def _deliver(
        self, claimed: Sequence[_Claimed], outcomes: Iterable[tuple[_Claimed, Delivery]] = ()
    ) -> None:
        """Send the claimed messages (outside any transaction); record each channel's answers."""
        answers = list(outcomes)
        if answers:
            self._record(answers)
        now = self.ctx.clock.now()
        emails = [c for c in claimed if c.sure_draft.planned.channel is Channel.EMAIL]
        texts = [c for c in claimed if c.sure_draft.planned.channel is Channel.SMS]
        if emails:
            sent = self.email.send_many([self._email(c.id, c.message_id, c.sure_draft, now) for c in emails])
            self._record(list(zip(emails, sent, strict=True)))
        if texts:
            sent = self.sms.send_many([_sms(c.id, c.message_id, c.sure_draft) for c in texts])
            self._record(list(zip(texts, sent, strict=True)))

    def _email(self, notification_id: int, message_id: str, draft: _Draft, now: datetime) -> OutgoingEmail:
        return OutgoingEmail(
            notification_id=notification_id,
            message_id=message_id,
            sender=self.options.sender,
            recipient=draft.recipient,
            recipient_name=draft.planned.customer.name,
            subject=draft.subject or "",
            text=draft.text,
            html=draft.html,
            language=draft.language,
            date=now,
        )

    def _record(self, answers: Sequence[tuple[_Claimed, Delivery]]) -> None:
        result, options = self.result, self.options
        with self.ctx.transaction() as tx:
            bulk, now = tx.bulk, tx.now
            now_s = bulk.instant(now)
            updates: list[tuple[Any, ...]] = []
            for claimed, delivery in answers:
                row: tuple[Any, ...]
                error = delivery.error[:512] if delivery.error else None
                if delivery.ok:
                    result.sent += 1
                    planned = claimed.sure_draft.planned
                    key = f"{planned.channel.value} {planned.kind.value}"
                    result.sent_by_kind[key] = result.sent_by_kind.get(key, 0) + 1
                    row = ("sent", delivery.provider_message_id, None, None, now_s)
                elif delivery.permanent or claimed.attempts >= options.max_attempts:
                    result.undeliverable += 1
                    row = ("undeliverable", None, error, None, None)
                else:
                    result.failed += 1
                    row = ("failed", None, error, bulk.instant(now + options.backoff(claimed.attempts)), None)
                if delivery.unreachable and result.stopped is None:
                    result.stopped = delivery.error or "the provider could not be reached"
                updates.append((*row, claimed.id, claimed.attempts))
            # a claim that lapsed and was taken by another run is theirs now: leave it alone
            bulk.executemany(
                "UPDATE notifications SET status = ?, provider_message_id = COALESCE(?, provider_message_id),"
                " last_error = ?, next_attempt_at = ?, sent_at = ?"
                " WHERE id = ? AND status = 'sending' AND attempts = ?",
                updates,
            )


def _sms(notification_id: int, message_id: str, draft: _Draft) -> OutgoingSms:
    return OutgoingSms(notification_id, message_id, draft.recipient, draft.text, draft.language)


_NOTIFICATION_COLUMNS = [
    "id", "event_seq", "kind", "channel", "customer_id", "invoice_id", "recipient", "language", "subject",
    "status", "message_id", "attempts", "last_error", "created_at", "next_attempt_at",
]  # fmt: skip


# -- reads ---------------------------------------------------------------------------------------


def read_head(bulk: Bulk) -> int:
    return int(bulk.query("SELECT last_seq FROM outbox_head WHERE id = 1")[0][0])


def read_offset(bulk: Bulk, consumer: str = CONSUMER) -> int:
    rows = bulk.query("SELECT last_seq FROM consumer_offsets WHERE consumer = ?", (consumer,))
    return int(rows[0][0]) if rows else 0


def _event(row: Sequence[Any]) -> OutboxEvent:
    seq, occurred_at, event_type, payload = row
    return OutboxEvent(int(seq), parse_instant_column(occurred_at), event_type, orjson.loads(payload))


def read_events(bulk: Bulk, seqs: Collection[int]) -> list[OutboxEvent]:
    return [
        _event(row)
        for row in _select_in(
            bulk, "SELECT seq, occurred_at, event_type, payload FROM outbox WHERE seq IN ({ids})", seqs
        )
    ]


def _select_in(bulk: Bulk, statement: str, ids: Collection[int], size: int = 500) -> list[tuple[Any, ...]]:
    """Run ``statement`` (with ``{ids}`` where the id list goes) over ``ids``, 500 at a time."""
    ordered = sorted(ids)
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(ordered), size):
        part = ordered[start : start + size]
        rows.extend(bulk.query(statement.format(ids=", ".join("?" * len(part))), part))
    return rows


def load_facts(bulk: Bulk, events: Iterable[OutboxEvent]) -> Facts:
    """Customers, invoices, cards and failure history the events refer to: one query per table."""
    events = list(events)
    facts = Facts()
    for cid, email, name, language, timezone, country, phone in _select_in(
        bulk,
        "SELECT c.id, c.email, c.name, c.language, c.timezone, c.country, p.phone FROM customers c"
        " LEFT JOIN notification_phones p ON p.customer_id = c.id WHERE c.id IN ({ids})",
        payload_ids(events, "customer_id"),
    ):
        facts.customers[cid] = CustomerFacts(cid, email, name, language, timezone, country, phone)
    for iid, number, code, due_at, remaining in _select_in(
        bulk,
        "SELECT id, number, currency, due_at, amount_remaining_minor FROM invoices WHERE id IN ({ids})",
        payload_ids(events, "invoice_id"),
    ):
        due = parse_instant_column(due_at) if due_at is not None else None
        facts.invoices[iid] = InvoiceFacts(iid, number, code, due, int(remaining))
    for pm_id, brand, last4 in _select_in(
        bulk,
        "SELECT id, brand, last4 FROM payment_methods WHERE id IN ({ids})",
        payload_ids(events, "payment_method_id", types={"payment.failed"}),
    ):
        facts.cards[pm_id] = (brand, last4)
    recovered = payload_ids((e for e in events if needs_failure_history(e)), "invoice_id")
    facts.invoices_with_failures.update(
        row[0]
        for row in _select_in(
            bulk,
            "SELECT DISTINCT invoice_id FROM payment_attempts WHERE status = 'failed' AND invoice_id IN ({ids})",
            recovered,
        )
    )
    return facts


# -- status --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotificationStatus:
    offset: int
    head: int
    counts: dict[tuple[str, str], int]  # (channel, status): notifications
    due: int  # failed or abandoned notifications whose next attempt is due now
    next_attempt_at: datetime | None  # the earliest retry still waiting for its time
    open_call_tasks: int

    @property
    def lag(self) -> int:
        """Outbox events not yet looked at."""
        return self.head - self.offset


def notification_status(ctx: BillingContext) -> NotificationStatus:
    """Where the dispatcher stands: offset and lag, notifications by channel and status, retries."""
    now = ctx.clock.now()
    with ctx.read() as conn:
        bulk = Bulk(conn)
        now_s = bulk.instant(now)
        counts = {
            (channel, status): int(n)
            for channel, status, n in bulk.query(
                "SELECT channel, status, COUNT(*) FROM notifications GROUP BY channel, status"
            )
        }
        (due,) = bulk.query(
            "SELECT COUNT(*) FROM notifications WHERE status IN ('sending', 'failed') AND next_attempt_at <= ?",
            (now_s,),
        )[0]
        (next_at,) = bulk.query(
            "SELECT MIN(next_attempt_at) FROM notifications WHERE status = 'failed' AND next_attempt_at > ?",
            (now_s,),
        )[0]
        (calls,) = bulk.query("SELECT COUNT(*) FROM call_tasks WHERE status = 'open'")[0]
        return NotificationStatus(
            offset=read_offset(bulk),
            head=read_head(bulk),
            counts=counts,
            due=int(due),
            next_attempt_at=parse_instant_column(next_at) if next_at is not None else None,
            open_call_tasks=int(calls),
        )
