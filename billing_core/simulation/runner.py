"""The runner: drives the billing core day by day with the world, through its own use cases.

:func:`run_world` fills an empty, migrated billing database with the history of a simulated book
of business, and writes the ground truth beside it (:class:`~billing_core.simulation.truth.
TruthStore`). Everything the billing core holds comes from its own services and bulk paths, so
the data is what the billing core would really hold:

* the **catalog** through the use cases (:mod:`.catalog`); under ``price_increase`` raised prices
  that live subscriptions move to at their next renewal (``change_plan(effective="period_end")``,
  in bulk);
* **signups** in bulk, exactly as ``create_customer`` (with the signup's channel, IP address and
  device), ``add_payment_method`` and ``create_subscription`` would leave them (:mod:`.signups`);
  customers on net terms keep their card aside (not the default): they are invoiced, not charged;
* **usage** of the metered add-on, one event per customer and day, through
  :func:`~billing_core.services.ingest_usage.ingest_usage`;
* the **billing run** (:func:`~billing_core.services.billing_run.run_billing`) every
  ``billing_every_days`` days; payments go to a :class:`~.world_gateway.WorldGateway`, whose
  answers come from the world's card network; invoices on net terms are billed by runs whose
  context gives them their terms (``days_until_due``);
* **dunning** every day (:func:`~billing_core.services.run_dunning.run_dunning`) under the
  policy being evaluated; customers answer its reminders (the day's ``remind`` and
  ``final_notice`` actions, with their channel): those who act add a new card if theirs cannot be
  charged and pay the invoice;
* customers on **net terms** pay on the day the world draws (or earlier, when a reminder moves
  them);
* **voluntary churn** decided at each month start, carried out on its day (cancel at the period
  end, or now);
* **disputes** opened in the customer's words (``open_dispute``) and resolved later;
* **fraud**: stolen-card signups charged back when the card's owner notices, card-testing bursts
  of fresh accounts making small charges, account takeovers (a stolen card put on the account,
  usage spiking, the owner's card restored), friendly fraud (a real customer's chargeback on a
  valid charge); scenarios switch at the chosen month.

The day, in UTC: the billing run and the dunning engine at midnight; then what the runner reads
back (new invoices, payments, dunning actions, subscription status changes) and the month-start
decisions; card-testing bursts at their own minutes; what customers do at noon (cancellations,
new cards, payments, disputes, chargebacks); signups at their own instants; usage recorded late
in the evening (before the next billing run, so it is billed in its period).

**Common random numbers.** Every draw is keyed by the world's identities (see
:mod:`.state`), never by a database id or the order of calls, so two runs of the same seed under
two dunning policies meet the same customers, with the same luck, and differ only where the
policies' choices lead.
"""

from __future__ import annotations

import dataclasses
import math
import time as _time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

from billing_core.book import MARKETS
from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.db.checkpoints import background_checkpoints
from billing_core.db.due import due_condition
from billing_core.db.types import parse_instant_column
from billing_core.disputes import DisputeCategory
from billing_core.dunning.policy import DunningPolicy, StaticPolicy
from billing_core.errors import InvalidInput
from billing_core.money import currency as currency_of
from billing_core.services.add_one_time_charge import add_one_time_charge
from billing_core.services.billing_run import run_billing
from billing_core.services.cancel_subscription import cancel_subscription
from billing_core.services.collect_payments import collect_payments
from billing_core.services.ingest_usage import ingest_usage
from billing_core.services.run_dunning import run_dunning
from billing_core.simulation import behaviour, disputes_text, fraud, network, population, timeline, usage
from billing_core.simulation import cards as card_module
from billing_core.simulation.actions import (
    CardToAdd,
    ChargebackToRecord,
    DisputeToOpen,
    Payment,
    add_cards,
    close_chargebacks,
    open_disputes,
    record_chargebacks,
    resolve_disputes,
    schedule_cancels,
    schedule_payments,
    schedule_plan_changes,
)
from billing_core.simulation.cards import Cards
from billing_core.simulation.catalog import USAGE_METRIC, WorldCatalog, build_world_catalog, raise_prices
from billing_core.simulation.params import CHANNELS, PLANS, REMINDER_CHANNELS, WorldParams
from billing_core.simulation.population import Signups
from billing_core.simulation.rng import RandomSource
from billing_core.simulation.signups import NewCard, NewCustomer, NewSubscription, write_signups
from billing_core.simulation.state import (
    ADDON_PERIODS,
    OWN_CARD,
    SIGNUP_STOLEN,
    TAKEOVER_CARD,
    TESTED_CARD,
    SubscriptionInfo,
    Tester,
    WorldCard,
    WorldState,
    zone_of,
)
from billing_core.simulation.truth import TruthStore, customer_rows
from billing_core.simulation.world_gateway import WorldGateway

NOON = 12 * 3600
EVENING = 23 * 3600 + 50 * 60
TAKEOVER_VERSIONS = 1000
CANCEL_NOW_SHARE = 0.1  # customers who cancel at once rather than at the period end; assumption
CHARGEBACK_FEE_USD = 15  # the network's fee per chargeback; assumption
FRIENDLY_CHARGEBACK_WON = 0.4  # friendly-fraud chargebacks the merchant wins; assumption
DISPUTE_DAYS = 12.0  # mean days to resolve a dispute; assumption
#: how a resolved dispute ends, per category
DISPUTE_OUTCOMES = {
    DisputeCategory.DUPLICATE_CHARGE: "refunded",
    DisputeCategory.UNRECOGNISED_OR_FRAUDULENT: "upheld",
    DisputeCategory.SERVICE_NOT_RECEIVED: "credited",
    DisputeCategory.CANCELED_BUT_CHARGED: "refunded",
    DisputeCategory.WRONG_AMOUNT: "refunded",
    DisputeCategory.REFUND_NOT_RECEIVED: "refunded",
    DisputeCategory.QUALITY: "credited",
    DisputeCategory.OTHER: "upheld",
}
_BILLABLE = ("trialing", "active", "past_due")
_MESSAGES = ("remind", "final_notice")
_PLAN_NAMES = tuple(p.name for p in PLANS)
_ANNUAL = np.array([p.interval == "year" for p in PLANS])


@dataclass(frozen=True)
class RunConfig:
    """What to simulate. ``customers`` is the expected number of signups over the run."""

    customers: int = 10_000
    months: int = 12
    seed: int = 7
    scenario: str = "baseline"
    switch_month: int | None = None  # default: half way
    policy: DunningPolicy = field(default_factory=StaticPolicy)
    billing_every_days: int = 1
    #: invoices on net terms are issued by a run of their own every so many days (weekly by default)
    terms_billing_every_days: int = 7
    #: meters report a customer's usage every so many days (and always before a renewal)
    usage_report_days: int = 3
    pipelined: bool = True
    chunk_size: int = 5_000
    params: WorldParams | None = None  # the world (default: WorldParams()); scenario and size are set here

    def __post_init__(self) -> None:
        for name, low in (
            ("customers", 1),
            ("months", 1),
            ("billing_every_days", 1),
            ("terms_billing_every_days", 1),
            ("usage_report_days", 1),
            ("chunk_size", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInput(name, f"a whole number >= {low}", value)
        if self.switch_month is not None and (
            isinstance(self.switch_month, bool)
            or not isinstance(self.switch_month, int)
            or self.switch_month < 0
        ):
            raise InvalidInput("switch_month", "a month index of at least 0", self.switch_month)

    @property
    def switch(self) -> int:
        return self.months // 2 if self.switch_month is None else self.switch_month

    def world(self) -> WorldParams:
        """The world's parameters: scenario set, signups scaled to ``customers`` over the run."""
        base = (self.params or WorldParams()).replace(scenario="baseline")
        params = WorldParams.for_scenario(
            self.scenario, self.switch, **_fields(base, exclude=("scenario", "switch_month"))
        )
        end = int(timeline.month_start_day(params.start, self.months))
        expected = sum(float(population.expected_signups(params, d).sum()) for d in range(end))
        scale = self.customers / max(expected, 1e-9)
        return params.replace(
            signups_per_day=params.signups_per_day * scale,
            card_testing_bursts_per_day=params.card_testing_bursts_per_day * scale,
        )


def _fields(params: WorldParams, *, exclude: tuple[str, ...]) -> dict[str, Any]:
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name not in exclude}


@dataclass
class MonthStats:
    """What one simulated month did (counts)."""

    month: int
    first_day: str
    customers: int = 0  # signups written
    card_testing_accounts: int = 0
    invoices: int = 0
    attempts: int = 0
    first_attempts: int = 0
    first_declines: int = 0
    dunning_actions: int = 0
    reminders: int = 0
    customer_payments: int = 0
    voluntary_cancels: int = 0
    involuntary_cancels: int = 0
    disputes: int = 0
    chargebacks: int = 0
    usage_events: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RunSummary:
    """What a run wrote, with its size and time."""

    customers: int
    months: int
    days: int
    seed: int
    scenario: str
    switch_month: int
    policy: str
    seconds: float
    counts: dict[str, int]  # rows per table of the billing database
    truth_rows: dict[str, int]
    monthly: list[MonthStats]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase of the simulated day

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["seconds"] = round(self.seconds, 2)
        return out


MonthCallback = Callable[[MonthStats], None]


def run_world(
    ctx: BillingContext,
    config: RunConfig,
    truth: TruthStore,
    *,
    on_month: MonthCallback | None = None,
    on_day: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Simulate ``config`` into the (empty, migrated) database of ``ctx`` and the truth store.

    ``ctx.clock`` must be a :class:`~billing_core.clock.FrozenClock`: the runner moves it through
    the simulated days. ``ctx.gateway`` is replaced by a :class:`~.world_gateway.WorldGateway`.
    ``on_month`` is called after each simulated month, ``on_day(day, days)`` after each day.
    """
    with background_checkpoints(ctx.engine):  # the days' commits append; a thread copies the log
        return Runner(ctx, config, truth).run(on_month=on_month, on_day=on_day)


class Runner:
    """One simulated run (see the module's docstring)."""

    def __init__(self, ctx: BillingContext, config: RunConfig, truth: TruthStore) -> None:
        if not isinstance(ctx.clock, FrozenClock):
            raise InvalidInput("ctx.clock", "a FrozenClock (the runner moves time)", type(ctx.clock).__name__)
        self.config = config
        self.truth = truth
        self.clock: FrozenClock = ctx.clock
        self.params = params = config.world()
        self.rng = rng = RandomSource(config.seed)
        self.end_day = int(timeline.month_start_day(params.start, config.months))
        book = population.draw_signups_between(params, 0, self.end_day, rng)
        self.book: Signups = book
        self.state = state = WorldState(params, rng, book, book.pays_by_invoice & ~book.is_fraud, ctx.engine)
        self.gateway = WorldGateway(state)
        self.ctx = dataclasses.replace(ctx, gateway=self.gateway)
        self.terms_ctx: dict[int, BillingContext] = {}
        n = len(book)
        self.n = n
        self.signup_month = timeline.days(params.start, book.day).month_index
        self.day_start = np.searchsorted(book.day, np.arange(self.end_day + 1), side="left")
        self.currency_index = book.currency_index
        self.main_sub = np.zeros(n, dtype=np.int64)
        self.addon_sub = np.zeros(n, dtype=np.int64)
        self.signed = np.zeros(n, dtype=np.bool_)  # written to the database
        self.live = np.zeros(n, dtype=np.bool_)  # first subscription not canceled
        self.canceled = np.zeros(n, dtype=np.bool_)  # the customer canceled (voluntary churn carried out)
        self.metered_on = np.zeros(n, dtype=np.bool_)  # the metered subscription is billable
        self.engagement = np.array(book.traits.engagement, copy=True)
        self.history: dict[int, npt.NDArray[np.float64]] = {}
        self.pending_cancel = np.full(n, -1, dtype=np.int64)
        self.decided_day = np.full(n, -1, dtype=np.int64)
        self.unresolved = np.zeros(n, dtype=np.int64)
        self.takeover_day = np.full(n, -1, dtype=np.int64)
        self.card_pm = np.zeros(n, dtype=np.int64)
        self.takeover_p: dict[int, float] = {}
        self.attempt_ids: dict[tuple[int, int], int] = {}
        self._counters: dict[str, int] = {}
        self.timings: dict[str, float] = {}  # seconds per phase of the day
        self.usage_buffer: list[_Usage] = []  # usage the meters have not reported yet
        self._tokens: dict[int, str] = {}
        self.own_card: dict[int, tuple[Cards, int]] = {}  # idx -> the card a takeover replaced, its pm
        self.sub_status: dict[int, str] = {}
        self.reminders: dict[int, int] = {}  # invoice -> reminders so far
        self.act_day: dict[int, int] = {}  # invoice -> day the customer will act on it
        self.disputed: set[int] = set()
        self.charged_back: set[int] = set()
        # what is due on a given day
        self.acts: dict[int, list[int]] = defaultdict(list)  # invoices customers pay that day
        self.cancels: dict[int, list[int]] = defaultdict(list)
        self.card_changes: dict[int, list[tuple[int, str]]] = defaultdict(list)  # (idx, why)
        self.disputes_due: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        self.resolutions: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
        # (payment id, amount, currency, friendly fraud, world key of the charge: customer key, period)
        self.chargebacks_due: dict[int, list[tuple[int, int, str, bool, int, int]]] = defaultdict(list)
        self.tested_payments: dict[int, int] = {}  # card-testing customer id -> payments so far
        self.chargeback_closes: dict[int, list[tuple[int, bool]]] = defaultdict(list)
        self.positions = {"invoice": 0, "payment": 0, "action": 0, "seq": 0, "attempt": 0}
        self.raised = False
        self.catalog: WorldCatalog | None = None
        self.stats: MonthStats | None = None
        self.monthly: list[MonthStats] = []

    # -- the run --------------------------------------------------------------------------------

    def run(
        self, *, on_month: MonthCallback | None = None, on_day: Callable[[int, int], None] | None = None
    ) -> RunSummary:
        started = _time.perf_counter()
        state = self.state
        self.clock.set(state.instant(0))
        self.catalog = build_world_catalog(self.ctx)
        month_started = _time.perf_counter()
        next_month = 0
        for day in range(self.end_day):
            if day == int(timeline.month_start_day(self.params.start, next_month)):
                if self.stats is not None:
                    self._end_month(month_started, on_month)
                month_started = _time.perf_counter()
                self.stats = MonthStats(next_month, str(self.params.start + timedelta(days=day)))
                self._counters = dict(state.counters)
                next_month += 1
                self._day(day, month_start=next_month - 1)
            else:
                self._day(day, month_start=None)
            if on_day is not None:
                on_day(day + 1, self.end_day)
        self.clock.set(state.instant(self.end_day - 1, EVENING))
        self._timed("usage", self._report_usage, self.end_day - 1, everything=True)
        self._end_month(month_started, on_month)
        with self.ctx.read() as conn:
            bulk = Bulk(conn)
            counts = {
                table: int(bulk.query(f"SELECT COUNT(*) FROM {table}")[0][0])
                for table in (
                    "customers", "subscriptions", "invoices", "payment_attempts", "payments", "dunning_actions",
                    "disputes", "chargebacks", "usage_events", "outbox",
                )
            }  # fmt: skip
        truth_rows = {table: self.truth.read(table).num_rows for table in self.truth.tables()}
        return RunSummary(
            customers=int(self.signed.sum()),
            months=self.config.months,
            days=self.end_day,
            seed=self.config.seed,
            scenario=self.config.scenario,
            switch_month=self.config.switch,
            policy=self.config.policy.name,
            seconds=_time.perf_counter() - started,
            counts=counts,
            truth_rows=truth_rows,
            monthly=self.monthly,
            timings={
                **{name: round(seconds, 2) for name, seconds in sorted(self.timings.items())},
                "gateway (within the phases above)": round(self.gateway.seconds, 2),
            },
        )

    def _end_month(self, month_started: float, on_month: MonthCallback | None) -> None:
        assert self.stats is not None
        self._timed("truth", self._flush_truth)
        stats = self.stats
        counters = self.state.counters
        for name in ("attempts", "first_attempts", "first_declines", "customer_payments"):
            setattr(stats, name, counters.get(name, 0) - self._counters.get(name, 0))
        stats.seconds = _time.perf_counter() - month_started
        self.monthly.append(stats)
        if on_month is not None:
            on_month(stats)

    def _day(self, day: int, *, month_start: int | None) -> None:
        state = self.state
        midnight = state.instant(day)
        self.clock.set(midnight)
        timed = self._timed
        if day > 0:
            timed(
                "billing",
                self._bill,
                midnight,
                cards=day % self.config.billing_every_days == 0,
                terms=day % self.config.terms_billing_every_days == 0,
            )
        timed(
            "dunning", run_dunning, self.ctx, as_of=midnight, policy=self.config.policy,
            chunk_size=self.config.chunk_size, pipelined=self.config.pipelined,
        )  # fmt: skip
        timed("read_back", self._read_back, day)
        if month_start is not None:
            timed("month_start", self._month_start, month_start, day)
        timed("fraud", self._takeovers, day)
        timed("fraud", self._card_testing, day)
        self.clock.set(state.instant(day, NOON))
        timed("customers_act", self._customers_act, day)
        timed("signups", self._signups, day)
        self.clock.set(state.instant(day, EVENING))
        timed("usage", self._usage, day)

    def _timed(self, phase: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = _time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + _time.perf_counter() - started

    # -- billing ----------------------------------------------------------------------------------

    def _bill(self, as_of: datetime, *, cards: bool, terms: bool) -> None:
        """Billing runs: one for the customers charged by card; on their days, one per net term for
        the customers invoiced on terms (a context whose ``days_until_due`` is the term)."""
        if not (cards or terms):
            return
        with self.ctx.read() as conn:
            bulk = Bulk(conn)
            due, params = due_condition(bulk, as_of)
            rows = bulk.query(
                f"SELECT id, customer_id FROM subscriptions WHERE {due} AND status IN (?, ?, ?)",
                (*params, *_BILLABLE),
            )
        if not rows:
            return
        state = self.state
        groups: dict[int, list[int]] = defaultdict(list)
        for sub_id, customer_id in rows:
            idx = state.by_customer_id.get(customer_id, -1)
            days = int(self.book.net_terms_days[idx]) if idx >= 0 and state.pays_by_invoice[idx] else 0
            groups[days].append(sub_id)
        for days, ids in sorted(groups.items()):
            if not (terms if days else cards):
                continue
            ctx = self.ctx
            if days:
                ctx = self.terms_ctx.get(days) or self.terms_ctx.setdefault(
                    days, dataclasses.replace(self.ctx, days_until_due=days)
                )
            run_billing(
                ctx, as_of=as_of, subscription_ids=sorted(ids), chunk_size=self.config.chunk_size,
                pipelined=self.config.pipelined,
            )  # fmt: skip

    # -- reading back what the billing core did ---------------------------------------------------

    def _read_back(self, day: int) -> None:
        state = self.state
        pos = self.positions
        with self.ctx.read() as conn:
            bulk = Bulk(conn)
            invoices = bulk.query(
                "SELECT i.id, i.customer_id, i.subscription_id, i.billing_reason, i.period_start, i.currency,"
                " i.amount_due_minor, i.number, s.next_period_index, i.due_at, i.created_at, i.status"
                " FROM invoices i LEFT JOIN subscriptions s ON s.id = i.subscription_id WHERE i.id > ? ORDER BY i.id",
                (pos["invoice"],),
            )
            payments = bulk.query(
                "SELECT id, invoice_id, customer_id, amount_minor, currency, payment_method_id, created_at"
                " FROM payments WHERE id > ? ORDER BY id",
                (pos["payment"],),
            )
            actions = bulk.query(
                "SELECT id, invoice_id, customer_id, action, channel, executed_at FROM dunning_actions"
                " WHERE id > ? ORDER BY id",
                (pos["action"],),
            )
            head = int(bulk.query("SELECT last_seq FROM outbox_head WHERE id = 1")[0][0])
            changes = bulk.query(
                "SELECT payload FROM outbox WHERE seq > ? AND seq <= ? AND event_type = ?",
                (pos["seq"], head, "subscription.status_changed"),
            )
        pos["seq"] = head
        if invoices:
            pos["invoice"] = invoices[-1][0]
            state.remember_invoices([row[:9] for row in invoices])
            self._net_terms_invoices(day, invoices)
            self._stat("invoices", len(invoices))
        if actions:
            pos["action"] = actions[-1][0]
            self._stat("dunning_actions", len(actions))
            messages = [a for a in actions if a[3] in _MESSAGES]
            if messages:
                self._reminders(messages)
        if payments:
            pos["payment"] = payments[-1][0]
            self._payments(day, payments)
        for (payload,) in changes:
            self._status_changed(orjson.loads(payload))

    def _stat(self, name: str, n: int = 1) -> None:
        if self.stats is not None:
            setattr(self.stats, name, getattr(self.stats, name) + n)

    def _status_changed(self, event: dict[str, Any]) -> None:
        sub_id = int(event["subscription_id"])
        target = event["to"]
        self.sub_status[sub_id] = target
        info = self.state.subscriptions.get(sub_id)
        if info is None:
            return
        idx = info.idx
        metered_sub = self.addon_sub[idx] or (self.main_sub[idx] if self.book.metered_addon[idx] else 0)
        if metered_sub == sub_id:
            self.metered_on[idx] = target in _BILLABLE
        if target == "canceled" and self.main_sub[idx] == sub_id:
            self.live[idx] = False
            if event.get("reason") == "written_off":
                self._stat("involuntary_cancels")
                self.state.count("involuntary_cancels")

    def _net_terms_invoices(self, day: int, rows: list[tuple[Any, ...]]) -> None:
        """Invoices on net terms: the world draws when each is paid."""
        state = self.state
        picked = []
        for row in rows:
            i = state.by_customer_id.get(row[1], -1)
            if i >= 0 and state.pays_by_invoice[i] and row[6] > 0 and row[11] == "open":
                picked.append((row[0], i, row[6], row[5], row[9], row[10]))
        if not picked:
            return
        invoice = np.array([p[0] for p in picked], dtype=np.int64)
        idx = np.array([p[1] for p in picked], dtype=np.int64)
        issue = np.array(
            [int(np.floor(state.day_of(parse_instant_column(p[5])))) for p in picked], dtype=np.int64
        )
        due = np.array(
            [int(np.ceil(state.day_of(parse_instant_column(p[4])))) for p in picked], dtype=np.int64
        )
        period = np.array([state.invoices[i].period for i in invoice.tolist()], dtype=np.int64)
        amount = network.usd_amount(np.array([p[2] for p in picked]), np.array([p[3] for p in picked]))
        draw = behaviour.invoice_payment(
            self.params, self.rng, customer_key=self.book.customer_key[idx], period_index=period,
            issue_day=issue, due_day=due, financial_health=self.book.traits.financial_health[idx], amount_usd=amount,
        )  # fmt: skip
        for invoice_id, pay_day in zip(invoice.tolist(), draw.pay_day.tolist(), strict=True):
            self._act(invoice_id, max(int(pay_day), day))
        state.truth.add(
            "truth_invoice_payment",
            {
                "customer_key": self.book.customer_key[idx], "period_index": period, "invoice_id": invoice,
                "issue_day": issue, "due_day": due, "p_paid_by_due": draw.p_paid_by_due,
                "paid_by_due": draw.paid_by_due, "pay_day": draw.pay_day,
            },
        )  # fmt: skip

    def _act(self, invoice_id: int, day: int) -> None:
        """The customer pays ``invoice_id`` on ``day`` (the earliest day they decided on)."""
        known = self.act_day.get(invoice_id)
        if known is not None and known <= day:
            return
        self.act_day[invoice_id] = day
        self.acts[day].append(invoice_id)

    def _reminders(self, rows: list[tuple[Any, ...]]) -> None:
        """Customers read the day's reminders and final notices; some act on them."""
        state = self.state
        state.load_invoices(row[1] for row in rows)
        picked = []
        for action_id, invoice_id, customer_id, _action, channel, executed in rows:
            i = state.by_customer_id.get(customer_id, -1)
            if i < 0:
                continue
            number = self.reminders.get(invoice_id, 0)
            self.reminders[invoice_id] = number + 1
            picked.append((invoice_id, i, number, channel, parse_instant_column(executed), action_id))
        if not picked:
            return
        self._stat("reminders", len(picked))
        idx = np.array([p[1] for p in picked], dtype=np.int64)
        at = [p[4] for p in picked]
        day_f = np.array([state.day_of(a) for a in at])
        day = np.floor(day_f).astype(np.int64)
        hour = np.array(
            [
                a.astimezone(zone_of(str(self.book.timezone[i]))).hour
                for a, i in zip(at, idx.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
        period = np.array([state.invoices[p[0]].period for p in picked], dtype=np.int64)
        channel = np.array([REMINDER_CHANNELS.index(p[3]) for p in picked], dtype=np.int64)
        traits = self.book.traits
        response = behaviour.reminder_response(
            self.params, self.rng, customer_key=self.book.customer_key[idx], period_index=period,
            reminder_number=np.array([p[2] for p in picked], dtype=np.int64), channel=channel, local_hour=hour,
            preferred_hour=traits.preferred_hour[idx], responsiveness=traits.responsiveness[idx],
            financial_health=traits.financial_health[idx], day=day,
        )  # fmt: skip
        fraudster = self.book.is_fraud[idx]
        acts = np.isfinite(response.delay_days) & ~fraudster
        for j in np.nonzero(acts)[0].tolist():
            when = day_f[j] + response.delay_days[j]
            act = int(np.floor(when)) if when - np.floor(when) <= 0.5 else int(np.floor(when)) + 1
            self._act(picked[j][0], act)
        state.truth.add(
            "truth_reminders",
            {
                "customer_key": self.book.customer_key[idx], "period_index": period,
                "reminder_number": [p[2] for p in picked], "invoice_id": [p[0] for p in picked],
                "channel": [p[3] for p in picked], "day": day, "local_hour": hour,
                "horizon_days": np.full(len(picked), 7.0), "p_respond": np.where(fraudster, 0.0, response.p_respond),
                "responded": response.responds & ~fraudster,
            },
        )  # fmt: skip

    def _charge_key(self, invoice_id: int, customer_id: int) -> tuple[int, int]:
        """The world's key of a charge: its customer's key and period (a tested card's n-th charge)."""
        state = self.state
        state.load_invoices([invoice_id])
        info = state.invoices[invoice_id]
        if info.idx >= 0:
            return int(self.book.customer_key[info.idx]), info.period
        n = self.tested_payments.get(customer_id, 0)
        self.tested_payments[customer_id] = n + 1
        return state.testers[customer_id].key, n

    def _payments(self, day: int, rows: list[tuple[Any, ...]]) -> None:
        """Payments made since yesterday: stolen cards are charged back, some invoices disputed."""
        state = self.state
        candidates = []
        days: dict[Any, int] = {}
        for payment_id, invoice_id, customer_id, amount, code, pm_id, created in rows:
            card = state.cards.get(pm_id) if pm_id is not None else None
            paid_day = days.get(created)
            if paid_day is None:
                paid_day = days[created] = int(np.floor(state.day_of(parse_instant_column(created))))
            if card is not None and card.stolen:
                if payment_id not in self.charged_back:
                    self.charged_back.add(payment_id)
                    charge_key, charge_period = self._charge_key(invoice_id, customer_id)
                    self.chargebacks_due[max(card.death_day, day)].append(
                        (payment_id, amount, code, False, charge_key, charge_period)
                    )
                continue
            i = state.by_customer_id.get(customer_id, -1)
            if i < 0 or self.book.is_fraud[i] or invoice_id in self.disputed:
                continue
            self.disputed.add(invoice_id)
            candidates.append((payment_id, invoice_id, i, amount, code, paid_day))
        if not candidates:
            return
        state.load_invoices(c[1] for c in candidates)
        idx = np.array([c[2] for c in candidates], dtype=np.int64)
        period = np.array([state.invoices[c[1]].period for c in candidates], dtype=np.int64)
        paid = np.array([c[5] for c in candidates], dtype=np.int64)
        final = np.array([state.invoices[c[1]].reason == "subscription_final" for c in candidates])
        draw = state.dispute_draw(idx, period, paid, final)
        for j in np.nonzero(draw.disputes)[0].tolist():
            payment_id, invoice_id, i, amount, code, paid_day = candidates[j]
            self.disputes_due[max(int(draw.open_day[j]), day)].append(
                (payment_id, invoice_id, i, int(period[j]), int(draw.category[j]), bool(draw.friendly_fraud[j]),
                 float(draw.p_dispute[j]), amount, code, paid_day)
            )  # fmt: skip

    # -- month starts -----------------------------------------------------------------------------

    def _month_start(self, month: int, day: int) -> None:
        state = self.state
        book = self.book
        self.history[month] = self.engagement.copy()
        if self.params.scenario == "price_increase" and month == self.params.switch_month and not self.raised:
            self._raise_prices(month)
        # account updaters replace expiring cards before the month's first charges
        card = state.card
        expired = card_module.expires_before(self.params.start, day, card.exp_month, card.exp_year)
        updated = np.nonzero(
            self.signed & self.live & ~state.pays_by_invoice & expired & card.auto_update & ~card.stolen
        )[0]
        for idx in updated.tolist():
            self.card_changes[day].append((idx, "updater"))
        # voluntary churn: every customer still subscribed decides at the month start
        eligible = np.nonzero(self.signed & self.live & ~self.canceled & ~book.is_fraud & (book.day < day))[0]
        if not len(eligible):
            return
        ago = self.history.get(month - 3)
        engagement_ago = book.traits.engagement[eligible] if ago is None else ago[eligible]
        young = book.day[eligible] >= int(timeline.month_start_day(self.params.start, max(month - 3, 0)))
        engagement_ago = np.where(young, book.traits.engagement[eligible], engagement_ago)
        pending = self.pending_cancel[eligible]
        draw = behaviour.voluntary_churn(
            self.params, self.rng, customer_key=book.customer_key[eligible], month=month,
            tenure_months=month - self.signup_month[eligible], engagement=self.engagement[eligible],
            engagement_90d_ago=engagement_ago, price_sensitivity=book.traits.price_sensitivity[eligible],
            unresolved_disputes=self.unresolved[eligible], pending_cancel_day=np.where(pending >= day, pending, -1),
        )  # fmt: skip
        for j in np.nonzero(draw.decides)[0].tolist():
            idx = int(eligible[j])
            cancel_day = int(draw.cancel_day[j])
            self.pending_cancel[idx] = cancel_day
            self.decided_day[idx] = day
            self.cancels[cancel_day].append(idx)
        state.truth.add(
            "truth_churn",
            {
                "customer_key": book.customer_key[eligible], "customer_id": state.customer_id[eligible],
                "month_index": np.full(len(eligible), month), "month_start_day": np.full(len(eligible), day),
                "p_churn_30d": draw.p_churn_30d, "p_churn_90d": draw.p_churn_90d, "decided": draw.decides,
                "cancel_day": [None if c < 0 else c for c in draw.cancel_day.tolist()],
            },
        )  # fmt: skip

    def _raise_prices(self, month: int) -> None:
        assert self.catalog is not None
        raise_prices(self.ctx, self.catalog, float(self.params.price_multiplier(month)))
        self.raised = True
        changes = []
        for idx in np.nonzero(self.signed & self.live & ~self.canceled)[0].tolist():
            items = self._items(idx, raised=True)[0]
            changes.append((int(self.main_sub[idx]), items))
        with self.ctx.transaction() as tx:
            schedule_plan_changes(tx, changes)

    def _items(self, idx: int, *, raised: bool) -> list[list[tuple[int, int]]]:
        """The subscriptions a customer takes: their plan (with the add-on when monthly), and the
        add-on on its own monthly subscription beside an annual plan."""
        assert self.catalog is not None
        book = self.book
        code = str(book.currency[idx])
        plan = _PLAN_NAMES[int(book.plan[idx])]
        main = [(self.catalog.plan_price(code, plan, raised=raised), int(book.seats[idx]))]
        if not book.metered_addon[idx]:
            return [main]
        addon = (self.catalog.addon_price(code), 0)
        if _ANNUAL[int(book.plan[idx])]:
            return [main, [addon]]
        return [[*main, addon]]

    # -- fraud that arrives on its own --------------------------------------------------------------

    def _takeovers(self, day: int) -> None:
        state = self.state
        book = self.book
        month = state.month_of(day)
        for idx in np.nonzero(self.takeover_day >= 0)[0].tolist():  # contained: the owner's card is back
            if day - int(self.takeover_day[idx]) == self.params.takeover_spike_days and idx in self.own_card:
                self.card_changes[day].append((idx, "restore"))
        eligible = np.nonzero(
            self.signed
            & self.live
            & ~book.is_fraud
            & ~state.pays_by_invoice
            & (self.takeover_day < 0)
            & (book.day < day)
        )[0]
        if not len(eligible):
            return
        drawn = fraud.draw_takeovers(
            self.params, self.rng, customer_key=book.customer_key[eligible], day=day, month=month
        )
        taken = eligible[drawn.taken_over]
        if not len(taken):
            return
        self.takeover_day[taken] = day
        for j, idx in zip(np.nonzero(drawn.taken_over)[0].tolist(), taken.tolist(), strict=True):
            self.takeover_p[idx] = float(drawn.p_takeover[j])
            self.card_changes[day].append((idx, "takeover"))
        state.truth.add(
            "truth_takeovers",
            {
                "customer_key": book.customer_key[taken], "customer_id": state.customer_id[taken],
                "day": np.full(len(taken), day), "p_takeover": drawn.p_takeover[drawn.taken_over],
            },
        )  # fmt: skip

    def _card_testing(self, day: int) -> None:
        """Fresh accounts sharing a BIN, a device and a few IP addresses test cards with small charges."""
        state = self.state
        burst = fraud.draw_card_testing(self.params, self.rng, day)
        if not len(burst.accounts):
            return
        accounts = burst.accounts
        first_second = np.full(len(accounts), 86_399, dtype=np.int64)
        np.minimum.at(first_second, burst.attempt_account, burst.attempt_second)
        created = [state.instant(day, max(int(s) - 120, 0)) for s in first_second.tolist()]
        new = [
            self._new_customer(accounts, j, created[j], tax_rate=False, subscriptions=(), default_card=True)
            for j in range(len(accounts))
        ]
        order = sorted(range(len(new)), key=lambda j: (created[j], int(accounts.customer_key[j])))
        assert self.catalog is not None
        with self.ctx.transaction() as tx:
            written = write_signups(tx, [new[j] for j in order], prices=self.catalog.book.prices)
        ids = np.zeros(len(accounts), dtype=np.int64)
        delay = fraud.chargeback_delay_days(
            self.params, self.rng, "runner.tested_chargeback", accounts.customer_key
        )
        for j, w in zip(order, written, strict=True):
            ids[j] = w.customer_id
            key = int(accounts.customer_key[j])
            answers = [
                (
                    bool(burst.succeeded[a]),
                    int(burst.decline_code[a]),
                    float(burst.p_success[a]),
                    int(burst.attempt_number[a]),
                )
                for a in np.nonzero(burst.attempt_account == j)[0].tolist()
            ]
            state.testers[w.customer_id] = Tester(key, str(accounts.timezone[j]), answers)
            assert w.payment_method_id is not None
            state.cards[w.payment_method_id] = WorldCard(
                -1, 0, day + int(delay[j]), network.STOLEN_CARD, True, TESTED_CARD, 1.0
            )
        self._stat("card_testing_accounts", len(accounts))
        state.truth.add("truth_customers", customer_rows(accounts, customer_id=ids))
        for a in range(len(burst)):
            j = int(burst.attempt_account[a])
            code = str(accounts.currency[j])
            self.clock.set(state.instant(day, int(burst.attempt_second[a])))
            add_one_time_charge(
                self.ctx, customer_id=int(ids[j]), description="Account credit",
                unit_amount_minor=_minor(float(burst.amount_usd[a]), code), currency_code=code,
            )  # fmt: skip

    # -- what customers do at noon ------------------------------------------------------------------

    def _customers_act(self, day: int) -> None:
        self._cancel(day)
        self._change_cards(day)
        self._pay(day)
        self._disputes_and_chargebacks(day)

    def _cancel(self, day: int) -> None:
        due = [i for i in self.cancels.pop(day, []) if self.live[i] and not self.canceled[i]]
        if not due:
            return
        idx = np.array(due, dtype=np.int64)
        months = np.array([int(self.decided_day[i]) for i in due], dtype=np.int64)
        now = self.rng.uniforms("runner.cancel_now", self.book.customer_key[idx], months) < CANCEL_NOW_SHARE
        at_end: list[int] = []
        at_once: list[int] = []
        for i, immediately in zip(due, now.tolist(), strict=True):
            subs = [int(s) for s in (self.main_sub[i], self.addon_sub[i]) if s]
            subs = [s for s in subs if self.sub_status.get(s, "active") != "canceled"]
            if immediately or any(self.sub_status.get(s, "active") not in _BILLABLE for s in subs):
                at_once.extend(subs)
            else:
                at_end.extend(subs)
            self.canceled[i] = True
        self._stat("voluntary_cancels", len(due))
        self.state.count("voluntary_cancels", len(due))
        if at_end:
            with self.ctx.transaction() as tx:
                schedule_cancels(tx, at_end)
        if at_once:  # the final invoice bills the usage so far: the meters report it first
            owners = {int(self.state.customer_id[self.state.subscriptions[s].idx]) for s in at_once}
            self._report_usage(day, only=owners)
        for sub_id in at_once:
            cancel_subscription(self.ctx, subscription_id=sub_id)

    def _change_cards(self, day: int) -> None:
        """Cards that change today: account updaters, attackers, owners restoring theirs."""
        changes = self.card_changes.pop(day, [])
        if not changes:
            return
        state = self.state
        seen: set[int] = set()
        picked = []
        for i, why in changes:
            if i in seen or not self.signed[i]:
                continue
            seen.add(i)
            picked.append((i, why))
        idx = np.array([p[0] for p in picked], dtype=np.int64)
        previous = state.card.take(idx)
        replacement = population.replacement_cards(
            self.params, self.rng, previous=previous, day=day, currency_index=self.currency_index[idx]
        )
        takeover = np.array([why == "takeover" for _, why in picked])
        # an attacker's card is not the customer's next card: its versions count from TAKEOVER_VERSIONS
        stolen = fraud.takeover_cards(
            self.params, self.rng, previous=dataclasses.replace(previous, card_version=previous.card_version + TAKEOVER_VERSIONS),
            day=day, currency_index=self.currency_index[idx],
        ) if takeover.any() else replacement  # fmt: skip
        new_cards: list[Cards] = []
        kinds: list[tuple[int, float]] = []
        for j, (i, why) in enumerate(picked):
            if why == "restore":
                own, _pm = self.own_card.pop(i)
                new_cards.append(own)
                kinds.append((OWN_CARD, 0.0))
            elif why == "takeover":
                self.own_card[i] = (previous.take(np.array([j])), int(self.card_pm[i]))
                new_cards.append(stolen.take(np.array([j])))
                kinds.append((TAKEOVER_CARD, self.takeover_p.get(i, 0.0)))
            else:
                new_cards.append(replacement.take(np.array([j])))
                kinds.append((OWN_CARD, 0.0))
        cards = Cards.concat(new_cards)
        self._attach(idx, cards, kinds)

    def _attach(self, idx: npt.NDArray[np.int64], cards: Cards, kinds: list[tuple[int, float]]) -> None:
        state = self.state
        with self.ctx.transaction() as tx:
            ids = add_cards(
                tx,
                [
                    CardToAdd(
                        int(state.customer_id[i]), str(cards.brand[j]), str(cards.bin[j]), str(cards.last4[j]),
                        int(cards.exp_month[j]), int(cards.exp_year[j]), str(cards.fingerprint[j]),
                    )
                    for j, i in enumerate(idx.tolist())
                ],
            )  # fmt: skip
        for j, (i, pm_id) in enumerate(zip(idx.tolist(), ids, strict=True)):
            for f in dataclasses.fields(Cards):
                getattr(state.card, f.name)[i] = getattr(cards, f.name)[j]
            self.card_pm[i] = pm_id
            kind, p = kinds[j]
            state.cards[pm_id] = WorldCard(
                i, int(cards.card_version[j]), int(cards.death_day[j]), int(cards.death_code[j]),
                bool(cards.stolen[j]), kind, p,
            )  # fmt: skip

    def _pay(self, day: int) -> None:
        """Invoices customers pay today: a reminder acted on, or the day an invoice on terms is paid."""
        due = [i for i in self.acts.pop(day, []) if self.act_day.get(i) == day]
        if not due:
            return
        state = self.state
        state.load_invoices(due)
        picked = [(inv, state.invoices[inv].idx) for inv in due if state.invoices[inv].idx >= 0]
        # a card payer whose card cannot be charged adds a new one first
        renew = []
        for _inv, idx in picked:
            if state.pays_by_invoice[idx] or idx in renew:
                continue
            pm = int(self.card_pm[idx])
            card = state.cards.get(pm)
            if card is None or card.stolen:
                continue
            version = (idx, card.version)
            expired = card_module.expires_before(
                self.params.start, day, state.card.exp_month[idx], state.card.exp_year[idx]
            )
            if bool(expired) or card.death_day <= day or version in state.blocked:
                renew.append(idx)
        if renew:
            idx_arr = np.array(renew, dtype=np.int64)
            new = population.replacement_cards(
                self.params,
                self.rng,
                previous=state.card.take(idx_arr),
                day=day,
                currency_index=self.currency_index[idx_arr],
            )
            self._attach(idx_arr, new, [(OWN_CARD, 0.0)] * len(renew))
        payments = [
            Payment(inv, int(state.invoice_card[idx]) if state.pays_by_invoice[idx] else None)
            for inv, idx in picked
        ]
        with self.ctx.transaction() as tx:
            scheduled = schedule_payments(tx, payments)
            attempts = [s for s in scheduled if s is not None]
            state.customer_payments.update(s.idempotency_key for s in attempts)
        if attempts:
            collect_payments(self.ctx, attempt_ids=[s.attempt_id for s in attempts])

    def _disputes_and_chargebacks(self, day: int) -> None:
        """Disputes opened in the customers' words, disputes resolved, chargebacks opened and closed."""
        due = self.disputes_due.pop(day, [])
        resolutions = self.resolutions.pop(day, [])
        chargebacks = self.chargebacks_due.pop(day, [])
        closes = self.chargeback_closes.pop(day, [])
        if not (due or resolutions or chargebacks or closes):
            return
        state = self.state
        book = self.book
        opened: list[DisputeToOpen] = []
        if due:
            (payment_id, invoice_id, idx, period, category, friendly, p_dispute, amount, code, paid_day) = (
                map(list, zip(*due, strict=True))
            )
            idx_arr = np.array(idx, dtype=np.int64)
            keys = behaviour.dispute_key(book.customer_key[idx_arr], np.array(period))
            language = disputes_text.message_language(
                self.params, self.rng, dispute_key=keys, customer_language=book.language[idx_arr]
            )
            messages = disputes_text.generate_messages(
                self.params, self.rng, dispute_key=keys, category=np.array(category), language=language,
                currency=np.array(code), amount_minor=np.array(amount), day=np.array(paid_day),
                invoice_number=[state.invoices[i].number for i in invoice_id],
                plan=[_PLAN_NAMES[int(book.plan[i])] for i in idx], seats=book.seats[idx_arr],
            )  # fmt: skip
            delays = 2 + np.floor(DISPUTE_DAYS * self.rng.exponentials("runner.dispute_resolution", keys))
            opened = [
                DisputeToOpen(int(state.customer_id[i]), int(p), int(a), text)
                for i, p, a, text in zip(idx, payment_id, amount, messages.text, strict=True)
            ]
            for j in np.nonzero(np.array(friendly))[0].tolist():  # a friendly fraudster also asks their bank
                if payment_id[j] not in self.charged_back:
                    self.charged_back.add(payment_id[j])
                    chargebacks.append(
                        (payment_id[j], amount[j], code[j], True, int(book.customer_key[idx[j]]), period[j])
                    )
        records = [
            ChargebackToRecord(p, f"cb-{p}", a, "10.4", _minor(CHARGEBACK_FEE_USD, c))
            for p, a, c, *_ in chargebacks
        ]
        with self.ctx.transaction() as tx:
            ids = open_disputes(tx, opened)
            resolved = set(resolve_disputes(tx, [(d, outcome, "resolved") for d, _i, outcome in resolutions]))
            chargeback_ids = record_chargebacks(tx, records)
            close_chargebacks(tx, closes)
        for dispute_id, i, _outcome in resolutions:
            if dispute_id in resolved:
                self.unresolved[i] -= 1
        if chargebacks:
            keys_cb = np.array([c[4] for c in chargebacks], dtype=np.int64)
            periods_cb = np.array([c[5] for c in chargebacks], dtype=np.int64)
            u = self.rng.uniforms("runner.chargeback_close", keys_cb, periods_cb)
            for chargeback_id, (*_, friendly_cb, _k, _p), value in zip(
                chargeback_ids, chargebacks, u.tolist(), strict=True
            ):
                won = friendly_cb and value < FRIENDLY_CHARGEBACK_WON
                self.chargeback_closes[day + 30 + int(45 * value)].append((chargeback_id, won))
            self._stat("chargebacks", len(chargebacks))
        if not due:
            return
        for j, dispute_id in enumerate(ids):
            self.unresolved[idx[j]] += 1
            outcome = DISPUTE_OUTCOMES[behaviour.DISPUTE_CATEGORIES[category[j]]]
            self.resolutions[day + int(delays[j])].append((dispute_id, idx[j], outcome))
        self._stat("disputes", len(due))
        state.truth.add(
            "truth_disputes",
            {
                "customer_key": book.customer_key[idx_arr], "period_index": period, "dispute_key": keys,
                "dispute_id": ids, "open_day": np.full(len(due), day), "category": messages.category_name,
                "language": messages.language, "friendly_fraud": friendly, "p_dispute": p_dispute,
                "typos": messages.typos,
            },
        )  # fmt: skip

    # -- signups -----------------------------------------------------------------------------------

    def _signups(self, day: int) -> None:
        first, end = int(self.day_start[day]), int(self.day_start[day + 1])
        if first == end:
            return
        state = self.state
        book = self.book
        idx = np.arange(first, end, dtype=np.int64)
        created = _signup_instants(state, book, idx, day)
        self._tokens = dict(
            zip(book.customer_key[idx].tolist(), _tokens(self.rng, book.customer_key[idx]), strict=True)
        )
        new = [
            self._new_customer(
                book, int(i), created[j], tax_rate=True,
                subscriptions=tuple(NewSubscription(tuple(items)) for items in self._items(int(i), raised=self.raised)),
                default_card=not bool(state.pays_by_invoice[i]),
            )
            for j, i in enumerate(idx.tolist())
        ]  # fmt: skip
        order = sorted(range(len(new)), key=lambda j: (created[j], int(book.customer_key[idx[j]])))
        assert self.catalog is not None
        with self.ctx.transaction() as tx:
            written = write_signups(tx, [new[j] for j in order], prices=self.catalog.book.prices)
        for j, w in zip(order, written, strict=True):
            i = int(idx[j])
            state.customer_id[i] = w.customer_id
            state.by_customer_id[w.customer_id] = i
            assert w.payment_method_id is not None
            stolen = bool(book.is_fraud[i])
            state.cards[w.payment_method_id] = WorldCard(
                i, 0, int(state.card.death_day[i]), int(state.card.death_code[i]), stolen,
                SIGNUP_STOLEN if stolen else OWN_CARD, float(book.fraud_probability[i]) if stolen else 0.0,
            )  # fmt: skip
            if state.pays_by_invoice[i]:
                state.invoice_card[i] = w.payment_method_id
            else:
                self.card_pm[i] = w.payment_method_id
            tz = str(book.timezone[i])
            for position, (sub_id, (anchor, months)) in enumerate(
                zip(w.subscription_ids, w.schedules, strict=True)
            ):
                local = anchor.astimezone(zone_of(tz))
                state.subscriptions[sub_id] = SubscriptionInfo(
                    i, ADDON_PERIODS * position, local.year * 12 + local.month, months, tz
                )
                self.sub_status[sub_id] = "active"
            self.main_sub[i] = w.subscription_ids[0]
            if len(w.subscription_ids) > 1:
                self.addon_sub[i] = w.subscription_ids[1]
        self.signed[idx] = True
        self.live[idx] = True
        self.metered_on[idx] = book.metered_addon[idx]
        self._stat("customers", len(idx))
        state.truth.add("truth_customers", customer_rows(book.take(idx), customer_id=state.customer_id[idx]))

    def _new_customer(
        self, accounts: Signups, j: int, created: datetime, *, tax_rate: bool,
        subscriptions: tuple[NewSubscription, ...], default_card: bool,
    ) -> NewCustomer:  # fmt: skip
        assert self.catalog is not None
        token = self._tokens.pop(int(accounts.customer_key[j]), None)
        if token is None:
            token = _tokens(self.rng, accounts.customer_key[j : j + 1])[0]
        card = accounts.card
        return NewCustomer(
            created_at=created,
            email=f"{token}@{accounts.email_domain[j]}",
            name=f"Customer {token}",
            currency=str(accounts.currency[j]),
            timezone=str(accounts.timezone[j]),
            country=str(accounts.country[j]),
            language=str(accounts.language[j]),
            tax_rate_id=self.catalog.tax_rate(str(accounts.country[j])) if tax_rate else None,
            signup_channel=CHANNELS[int(accounts.channel[j])],
            signup_ip=str(accounts.ip_address[j]),
            signup_device_id=str(accounts.device_id[j]),
            signup_ip_country=str(accounts.ip_country[j]),
            card=NewCard(
                str(card.brand[j]), str(card.bin[j]), str(card.last4[j]), int(card.exp_month[j]),
                int(card.exp_year[j]), str(card.fingerprint[j]), default_card,
            ),
            subscriptions=subscriptions,
        )  # fmt: skip

    # -- usage --------------------------------------------------------------------------------------

    def _usage(self, day: int) -> None:
        state = self.state
        book = self.book
        alive = np.nonzero(self.signed & self.live & (book.day < day))[0]
        if len(alive):
            self.engagement[alive] = usage.drift_engagement(
                self.params, self.rng, customer_key=book.customer_key[alive], day=day,
                engagement=self.engagement[alive], anchor=book.traits.engagement[alive],
            )  # fmt: skip
        metered = np.nonzero(self.signed & self.metered_on & (book.day < day))[0]
        if not len(metered):
            return
        since = np.where(self.takeover_day[metered] >= 0, day - self.takeover_day[metered], -1)
        units = usage.daily_usage(
            self.params, self.rng, customer_key=book.customer_key[metered], day=day,
            scale=usage.usage_scale(self.params, plan=book.plan[metered], seats=book.seats[metered], metered_addon=True),
            engagement=self.engagement[metered], tenure_days=day - book.day[metered],
            churn_progress=behaviour.churn_progress(
                day=day, decided_day=self.decided_day[metered], cancel_day=self.pending_cancel[metered]
            ),
            days_since_takeover=since,
        )  # fmt: skip
        used = units > 0
        self.usage_buffer.append(
            _Usage(
                day,
                state.instant(day, NOON).strftime("%Y-%m-%dT%H:%M:%SZ"),
                state.customer_id[metered][used],
                units[used],
            )
        )
        self._report_usage(day)

    def _report_usage(self, day: int, *, everything: bool = False, only: set[int] | None = None) -> None:
        """Meters report every ``usage_report_days`` days (customers in blocks of consecutive ids
        take turns, so that a day's events land on few pages of the usage index), and always
        before the customer's renewal, so that every period is billed its own usage."""
        if not self.usage_buffer:
            return
        every = self.config.usage_report_days
        renewing: npt.NDArray[np.int64] | None = None
        if only is not None:
            renewing = np.array(sorted(only), dtype=np.int64)
        elif every > 1 and not everything:
            with self.ctx.read() as conn:
                bulk = Bulk(conn)
                due, params = due_condition(bulk, self.state.instant(day + 1))
                renewing = np.array(
                    sorted(
                        {
                            row[0]
                            for row in bulk.query(
                                f"SELECT customer_id FROM subscriptions WHERE {due} AND status IN (?, ?, ?)",
                                (*params, *_BILLABLE),
                            )
                        }
                    ),
                    dtype=np.int64,
                )
        parts: list[tuple[npt.NDArray[np.int64], int, str, npt.NDArray[np.int64]]] = []
        kept: list[_Usage] = []
        for entry in self.usage_buffer:
            if renewing is None:
                now = np.ones(len(entry.customer_id), dtype=np.bool_)
            else:
                now = np.isin(entry.customer_id, renewing)
                if only is None:
                    now |= (entry.customer_id // 256 + day) % every == 0
            if now.any():
                parts.append((entry.customer_id[now], entry.day, entry.occurred, entry.units[now]))
            if not now.all():
                kept.append(_Usage(entry.day, entry.occurred, entry.customer_id[~now], entry.units[~now]))
        self.usage_buffer = kept
        if not parts:
            return
        cids = np.concatenate([p[0] for p in parts])
        order = np.argsort(cids, kind="stable")  # a customer's days together, in day order
        days = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])[order].tolist()
        at = {p[1]: p[2] for p in parts}
        values = np.concatenate([p[3] for p in parts])[order].tolist()
        events = [
            {
                "event_id": f"d{d:05d}c{cid}",
                "customer_id": cid,
                "metric_code": USAGE_METRIC,
                "occurred_at": at[d],
                "value": v,
            }
            for cid, d, v in zip(cids[order].tolist(), days, values, strict=True)
        ]
        ingest_usage(self.ctx, events)
        self._stat("usage_events", len(events))

    # -- truth --------------------------------------------------------------------------------------

    def _flush_truth(self) -> None:
        state = self.state
        rows = self.gateway.take_rows()
        if rows["key"]:
            with self.ctx.read() as conn:
                found = Bulk(conn).query(
                    "SELECT id, invoice_id, attempt_number FROM payment_attempts WHERE id > ?",
                    (self.positions["attempt"],),
                )
            for attempt_id, invoice_id, number in found:
                self.attempt_ids[(invoice_id, number)] = attempt_id
            if found:
                self.positions["attempt"] = max(r[0] for r in found)
            attempt_ids = [
                self.attempt_ids.pop((i, n), None)
                for i, n in zip(rows["invoice"], rows["number"], strict=True)
            ]
            codes = rows["code"]
            state.truth.add(
                "truth_payment_attempts",
                {
                    "customer_key": rows["key"], "period_index": rows["period"], "attempt_number": rows["attempt"],
                    "invoice_id": rows["invoice"], "attempt_id": attempt_ids, "day": rows["day"],
                    "local_hour": rows["hour"], "p_success": rows["p_success"], "succeeded": rows["succeeded"],
                    "decline_code": codes, "p_fraud": rows["p_fraud"], "is_fraud": rows["is_fraud"],
                    "fraud_kind": [fraud.FRAUD_KINDS[k] for k in rows["kind"]],
                },
            )  # fmt: skip
        state.truth.flush(self.truth)


def _tokens(rng: RandomSource, keys: npt.NDArray[np.int64]) -> list[str]:
    """The synthetic part of each customer's email address and name (a hash of their key)."""
    return [f"{h:016x}"[:10] for h in rng.hashes("runner.email", keys).tolist()]


class _Usage(NamedTuple):
    """A day's usage not reported yet: customers and their units."""

    day: int
    occurred: str
    customer_id: npt.NDArray[np.int64]
    units: npt.NDArray[np.int64]


def _minor(amount_usd: float, code: str) -> int:
    """An amount given in US dollars in minor units of ``code`` (by the book's price scales)."""
    scale = float(MARKETS[code][1]) * 10.0 ** int(currency_of(code).exponent)
    return max(1, math.floor(amount_usd * scale + 0.5))


def _signup_instants(
    state: WorldState, book: Signups, idx: npt.NDArray[np.int64], day: int
) -> list[datetime]:
    """Each signup's instant within its UTC day, at its local signup hour (and a keyed minute)."""
    midnight = state.instant(day)
    noon = state.instant(day, NOON)
    seconds = state.rng.integers(0, 3600, "runner.signup_second", book.customer_key[idx])
    out = []
    offsets: dict[str, float] = {}
    for j, i in enumerate(idx.tolist()):
        tz = str(book.timezone[i])
        offset = offsets.get(tz)
        if offset is None:
            delta = noon.astimezone(zone_of(tz)).utcoffset()
            offset = offsets[tz] = delta.total_seconds() / 3600 if delta is not None else 0.0
        hour = (int(book.signup_hour[i]) - offset) % 24
        out.append(midnight + timedelta(hours=hour, seconds=int(seconds[j])))
    return out


def truth_dir_for(database: str | Path) -> Path:
    """Where the truth of a database file lives: beside it (``sim.db`` -> ``sim.truth``)."""
    path = Path(database)
    return path.with_name((path.stem if path.suffix else path.name) + ".truth")
