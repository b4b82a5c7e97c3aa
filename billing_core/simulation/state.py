"""What the runner knows about the world while it drives the billing core.

The world's customers are drawn once for the whole run (``population.draw_signups_between``:
the same keys and draws as day by day) and live in arrays indexed by their position in the run
(``idx``, in customer-key order). Beside them the runner keeps what it needs to join the world
with the billing database: the database ids of each customer and subscription, which card (a
world card: customer, version, death day, stolen or not) each payment method is, and, per
invoice, the world's period index and what the card network remembers of earlier attempts.

None of this is random: every draw is keyed by the world's identities (customer key, period
index, attempt number, reminder number, day). Database ids only say *where* to write.

**Period indexes.** A subscription's cycle invoices are periods ``0, 1, 2...`` from its anchor
(computed from the invoice's ``period_start`` on the customer's calendar). A customer's second
subscription (the metered add-on of an annual plan, which bills monthly) counts its periods from
:data:`ADDON_PERIODS`; a final invoice (usage after a cancellation) is :data:`FINAL_PERIODS`
plus the period it closes. Period indexes key the network's draws, the invoice's payment, its
dispute and its reminders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from billing_core.db.bulk import Bulk
from billing_core.db.types import parse_instant_column
from billing_core.disputes import DisputeCategory
from billing_core.simulation import behaviour, fraud, timeline
from billing_core.simulation.cards import Cards
from billing_core.simulation.network import NO_DECLINE
from billing_core.simulation.params import WorldParams
from billing_core.simulation.population import Signups
from billing_core.simulation.rng import IntArray, RandomSource
from billing_core.simulation.truth import SCHEMAS, TruthStore

DAY = timedelta(days=1)
#: period indexes of a customer's second subscription start here
ADDON_PERIODS = 500
#: a final invoice's period index: this plus the period it closes
FINAL_PERIODS = 250
#: card kinds
OWN_CARD, SIGNUP_STOLEN, TAKEOVER_CARD, TESTED_CARD = range(4)
#: billing reasons whose invoice closes a subscription
_FINAL = "subscription_final"
_CHUNK = 500


@lru_cache(maxsize=64)
def zone_of(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class WorldCard(NamedTuple):
    """The world card behind a payment method."""

    idx: int  # the customer's position in the run (-1 for a card-testing account)
    version: int
    death_day: int
    death_code: int
    stolen: bool
    kind: int  # OWN_CARD, SIGNUP_STOLEN, TAKEOVER_CARD, TESTED_CARD
    p_fraud: float  # the signup's or the takeover's probability (0 for an own card)


@dataclass(slots=True)
class InvoiceInfo:
    idx: int  # -1 for a card-testing account
    period: int  # the world's period index
    reason: str
    subscription_id: int | None
    currency: str
    amount_due_minor: int
    number: str


@dataclass(slots=True)
class NetworkMemory:
    """What the network remembers of an invoice's attempts."""

    last_day: float = -1.0
    first_failure_day: float = -1.0
    last_code: int = NO_DECLINE
    last_card: tuple[int, int] = (-1, -1)  # (idx, version) of the card last declined


@dataclass(slots=True)
class SubscriptionInfo:
    idx: int
    offset: int  # 0 for the first subscription, ADDON_PERIODS for the add-on's own
    anchor_month: int  # local year * 12 + month of the anchor
    months: int
    tz_name: str


@dataclass
class Tester:
    """A card-testing account and the answers its tested card gets, in order."""

    key: int
    tz_name: str
    answers: list[tuple[bool, int, float, int]]  # (succeeded, decline code, p_success, world attempt)


class TruthBuffer:
    """Rows waiting to be written to the truth store, per table (columns as lists)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, list[Any]]] = {}

    def add(self, table: str, columns: Mapping[str, Any]) -> None:
        """Append rows given as columns of one length (lists or arrays); a column left out is null."""
        names = SCHEMAS[table].names
        target = self.rows.setdefault(table, {name: [] for name in names})
        size = len(next(iter(columns.values())))
        if not size:
            return
        for name in names:
            values = columns.get(name)
            if values is None:
                target[name].extend([None] * size)
            elif isinstance(values, np.ndarray):
                target[name].extend(values.tolist())
            else:
                target[name].extend(values)

    def take(self, table: str) -> dict[str, list[Any]] | None:
        return self.rows.pop(table, None)

    def flush(self, store: TruthStore) -> int:
        written = 0
        for table in list(self.rows):
            data = self.rows.pop(table)
            if data and any(data.values()) and len(next(iter(data.values()))):
                store.write(table, data)
                written += len(next(iter(data.values())))
        return written


@dataclass
class WorldState:
    """The world of one run and its map onto the billing database (shared by runner and gateway)."""

    params: WorldParams
    rng: RandomSource
    book: Signups
    pays_by_invoice: npt.NDArray[np.bool_]
    engine: Any
    start_instant: datetime = field(init=False)
    customer_id: IntArray = field(init=False)
    card: Cards = field(init=False)  # each customer's current default card (world side)
    invoice_card: IntArray = field(init=False)  # the card an invoice payer pays with (payment method id)
    by_customer_id: dict[int, int] = field(default_factory=dict)
    cards: dict[int, WorldCard] = field(default_factory=dict)  # payment method id -> world card
    blocked: dict[tuple[int, int], int] = field(default_factory=dict)  # (idx, version) -> hard code
    subscriptions: dict[int, SubscriptionInfo] = field(default_factory=dict)
    invoices: dict[int, InvoiceInfo] = field(default_factory=dict)
    memory: dict[int, NetworkMemory] = field(default_factory=dict)
    #: idempotency keys of attempts the customer makes themselves (they pay: the charge goes through)
    customer_payments: set[str] = field(default_factory=set)
    testers: dict[int, Tester] = field(default_factory=dict)  # customer id -> card-testing account
    truth: TruthBuffer = field(default_factory=TruthBuffer)
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.start_instant = datetime.combine(self.params.start, datetime.min.time(), tzinfo=UTC)
        n = len(self.book)
        self.customer_id = np.zeros(n, dtype=np.int64)
        self.card = Cards(
            **{f: np.array(getattr(self.book.card, f), copy=True) for f in Cards.__dataclass_fields__}
        )
        self.invoice_card = np.zeros(n, dtype=np.int64)

    # -- time -------------------------------------------------------------------------------------

    def instant(self, day: int, seconds: float = 0.0) -> datetime:
        return self.start_instant + timedelta(days=day, seconds=seconds)

    def day_of(self, at: datetime) -> float:
        """Days (fractional) since the world's start."""
        return (at - self.start_instant) / DAY

    @property
    def start(self) -> date:
        return self.params.start

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    # -- periods ----------------------------------------------------------------------------------

    def period_of(
        self, sub_id: int | None, reason: str, period_start: Any, next_period_index: int | None
    ) -> int:
        info = self.subscriptions.get(sub_id) if sub_id is not None else None
        if info is None:
            return 0
        if reason == _FINAL:
            return info.offset + FINAL_PERIODS + int(next_period_index or 0)
        if period_start is None:  # a plan change's proration: keyed by the period it falls in
            return info.offset + FINAL_PERIODS + int(next_period_index or 0) + 1000
        local = parse_instant_column(period_start).astimezone(zone_of(info.tz_name))
        months = local.year * 12 + local.month - info.anchor_month
        return info.offset + months // info.months

    def load_invoices(self, invoice_ids: Iterable[int]) -> None:
        """Read what the world needs of invoices it does not know yet (one query per 500)."""
        missing = sorted({i for i in invoice_ids if i not in self.invoices})
        if not missing:
            return
        with self.engine.connect().execution_options(read_only=True) as conn, conn.begin():
            bulk = Bulk(conn)
            for start in range(0, len(missing), _CHUNK):
                chunk = missing[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = bulk.query(
                    "SELECT i.id, i.customer_id, i.subscription_id, i.billing_reason, i.period_start, i.currency,"
                    " i.amount_due_minor, i.number, s.next_period_index FROM invoices i"
                    f" LEFT JOIN subscriptions s ON s.id = i.subscription_id WHERE i.id IN ({marks})",
                    chunk,
                )
                self.remember_invoices(rows)

    def remember_invoices(self, rows: Sequence[tuple[Any, ...]]) -> list[int]:
        """Add invoices (id, customer_id, subscription_id, reason, period_start, currency, amount due,
        number, next_period_index) to the map; returns the ids added."""
        added = []
        for invoice_id, customer_id, sub_id, reason, period_start, code, due, number, next_index in rows:
            if invoice_id in self.invoices:
                continue
            idx = self.by_customer_id.get(customer_id, -1)
            period = self.period_of(sub_id, reason, period_start, next_index) if idx >= 0 else 0
            self.invoices[invoice_id] = InvoiceInfo(idx, period, reason, sub_id, code, due, number or "")
            added.append(invoice_id)
        return added

    # -- disputes (shared by the gateway's fraud truth and the runner's disputes) -----------------

    def dispute_draw(
        self, idx: IntArray, period: IntArray, paid_day: IntArray, final: npt.NDArray[np.bool_]
    ) -> behaviour.DisputeDraw:
        """The dispute draw of paid invoices; a final invoice (charged after a cancellation) is an
        incident of ``canceled_but_charged``."""
        canceled = behaviour.DISPUTE_CATEGORIES.index(DisputeCategory.CANCELED_BUT_CHARGED)
        return behaviour.dispute_draw(
            self.params,
            self.rng,
            customer_key=self.book.customer_key[idx],
            period_index=period,
            paid_day=paid_day,
            honesty=self.book.traits.honesty[idx],
            incident=np.where(final, canceled, behaviour.NO_INCIDENT),
        )

    def month_of(self, day: int) -> int:
        return int(timeline.days(self.start, day).month_index)

    def signup_fraud_p(self, idx: IntArray) -> npt.NDArray[np.float64]:
        return np.asarray(self.book.fraud_probability[idx], dtype=np.float64)


FRAUD_KIND_NAMES = fraud.FRAUD_KINDS
