"""Dunning policies judged on the same world: one replay per policy, common random numbers.

:func:`compare_policies` runs the world of one :class:`~.runner.RunConfig` once per policy, each
into a fresh database, with the same seed. Every draw is keyed by the world's identities, so the
customers, their usage, their cards and the first attempt of every invoice are the same in every
replay; what differs is what each policy's retries, messages, suspensions and write-offs lead
to. :func:`evaluate` then reads each database (the billing core's own records, never the truth)
and reports:

==========================  ==========================================================================
metric                      definition
==========================  ==========================================================================
``at_risk_usd``             amount due of the invoices that entered collections (a dunning process)
``recovered_usd``           of which paid by the end of the run
``recovery_rate``           ``recovered_usd / at_risk_usd``
``dso_days``                days sales outstanding: the mean over the run's days of the receivables
                            (invoiced, not yet paid, not written off or voided) over the mean daily
                            billings
``involuntary_churn``       customers who lost a subscription at a write-off, as a share of the
                            customers who signed up
``voluntary_churn``         customers who canceled themselves, as a share of the customers
``actions_per_invoice``     dunning actions (retries, messages, suspensions, write-offs) per invoice
                            in collections
==========================  ==========================================================================

Amounts are in US dollars by the book's price scales (:func:`~.network.usd_amount`). Only
invoices that entered collections at least ``maturity_days`` (60 by default: the default
schedule's write-off) before the end count towards recovery and actions, so that a policy is not
credited or blamed for processes the run cut short.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Engine

from billing_core.db.bulk import Bulk
from billing_core.db.types import parse_instant_column
from billing_core.dunning.lifecycle import Channel
from billing_core.dunning.policy import DunningPolicy, StaticPolicy
from billing_core.errors import InvalidInput
from billing_core.simulation.network import usd_amount

#: the policies the command line offers, by name
POLICIES: dict[str, Callable[[], DunningPolicy]] = {
    # the engine's default: 8 retries in 14 days, email reminders on days 1, 3, 7, 14
    "static": StaticPolicy,
    # more retries sooner, texts and a call, an earlier final notice, suspension and write-off
    "static-aggressive": lambda: StaticPolicy(
        name="static-aggressive",
        retry_days=(1, 2, 3, 4, 5, 6, 7, 8),
        reminders=((1, Channel.SMS), (2, Channel.EMAIL), (4, Channel.SMS), (7, Channel.CALL)),
        final_notice_day=10,
        final_notice_channel=Channel.SMS,
        suspend_day=14,
        write_off_day=45,
    ),
    # two retries, two emails
    "static-lean": lambda: StaticPolicy(
        name="static-lean", retry_days=(3, 7), reminders=((1, Channel.EMAIL), (7, Channel.EMAIL))
    ),
    # the default schedule with texts and a call instead of some emails
    "static-sms": lambda: StaticPolicy(
        name="static-sms",
        reminders=((1, Channel.SMS), (3, Channel.EMAIL), (7, Channel.SMS), (14, Channel.CALL)),
    ),
}


def policy(name: str) -> DunningPolicy:
    """A policy of :data:`POLICIES` by name."""
    factory = POLICIES.get(name)
    if factory is None:
        raise InvalidInput("policy", "one of " + ", ".join(POLICIES), name)
    return factory()


@dataclass(frozen=True)
class PolicyMetrics:
    policy: str
    customers: int
    invoices: int
    invoices_in_collections: int  # matured cohort
    at_risk_usd: float
    recovered_usd: float
    recovery_rate: float
    recovered_invoices: int
    written_off_invoices: int
    dso_days: float
    involuntary_churn: float
    involuntary_cancels: int
    voluntary_churn: float
    actions_per_invoice: float
    retries: int
    messages: int
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def evaluate(
    engine: Engine, *, start: datetime, end: datetime, policy_name: str = "", maturity_days: int = 60
) -> PolicyMetrics:
    """Read the outcome of a run from its billing database (see the module's docstring)."""
    cutoff = end - timedelta(days=maturity_days)
    with engine.connect().execution_options(read_only=True) as conn, conn.begin():
        bulk = Bulk(conn)
        customers = int(bulk.query("SELECT COUNT(*) FROM customers")[0][0])
        invoices = bulk.query(
            "SELECT id, currency, amount_due_minor, finalized_at, paid_at, voided_at, marked_uncollectible_at,"
            " status FROM invoices WHERE amount_due_minor > 0"
        )
        processes = bulk.query(
            "SELECT p.id, p.invoice_id, p.started_at, i.status, i.currency, i.amount_due_minor"
            " FROM dunning_processes p JOIN invoices i ON i.id = p.invoice_id"
        )
        actions = bulk.query("SELECT process_id, action FROM dunning_actions")
        owners = dict(bulk.query("SELECT id, customer_id FROM subscriptions"))
        changes = bulk.query(
            "SELECT payload FROM outbox WHERE event_type IN (?, ?)",
            ("subscription.status_changed", "subscription.cancel_scheduled"),
        )
    cohort = {
        pid: (status, code, amount)
        for pid, _inv, started, status, code, amount in processes
        if parse_instant_column(started) <= cutoff
    }
    codes = np.array([c[1] for c in cohort.values()], dtype="<U3")
    amounts = np.array([c[2] for c in cohort.values()], dtype=np.int64)
    usd = usd_amount(amounts, codes) if len(amounts) else np.zeros(0)
    paid = np.array([c[0] == "paid" for c in cohort.values()], dtype=np.bool_)
    written_off = sum(1 for c in cohort.values() if c[0] == "uncollectible")
    at_risk = float(usd.sum())
    recovered = float(usd[paid].sum()) if len(usd) else 0.0
    retries = messages = total_actions = 0
    for process_id, action in actions:
        if process_id not in cohort:
            continue
        total_actions += 1
        if action == "retry":
            retries += 1
        elif action in ("remind", "final_notice"):
            messages += 1
    involuntary_subs = 0
    involuntary: set[int] = set()
    voluntary: set[int] = set()
    for (payload,) in changes:
        event = orjson.loads(payload)
        owner = owners.get(int(event["subscription_id"]))
        if owner is None:
            continue
        if event.get("to") == "canceled" and event.get("reason") == "written_off":
            involuntary_subs += 1
            involuntary.add(owner)
        elif "ends_at" in event or (event.get("to") == "canceled" and event.get("reason") == "canceled"):
            voluntary.add(owner)
    return PolicyMetrics(
        policy=policy_name,
        customers=customers,
        invoices=len(invoices),
        invoices_in_collections=len(cohort),
        at_risk_usd=round(at_risk, 2),
        recovered_usd=round(recovered, 2),
        recovery_rate=recovered / at_risk if at_risk else 0.0,
        recovered_invoices=int(paid.sum()),
        written_off_invoices=written_off,
        dso_days=_dso(invoices, start, end),
        involuntary_churn=len(involuntary) / customers if customers else 0.0,
        involuntary_cancels=involuntary_subs,
        voluntary_churn=len(voluntary) / customers if customers else 0.0,
        actions_per_invoice=total_actions / len(cohort) if cohort else 0.0,
        retries=retries,
        messages=messages,
    )


def _dso(rows: Sequence[tuple[Any, ...]], start: datetime, end: datetime) -> float:
    """Mean receivables over the run's days divided by the mean daily billings (in US dollars)."""
    if not rows:
        return 0.0
    day = timedelta(days=1)
    days = max(int((end - start) / day), 1)

    def at(value: Any) -> float:
        return (parse_instant_column(value) - start) / day if value is not None else np.inf

    opened = np.array([at(r[3]) for r in rows])
    closed = np.array([min(at(r[4]), at(r[5]), at(r[6])) for r in rows])
    usd = usd_amount(
        np.array([r[2] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype="<U3")
    )
    grid = np.arange(1, days + 1, dtype=np.float64)
    receivable = np.zeros(days)
    # receivables at each day end: invoiced by then, not yet closed
    order = np.argsort(opened)
    cum_open = np.cumsum(usd[order])
    opened_by = np.searchsorted(opened[order], grid, side="right")
    order_c = np.argsort(closed)
    cum_closed = np.cumsum(usd[order_c])
    closed_by = np.searchsorted(closed[order_c], grid, side="right")
    receivable = np.where(opened_by > 0, cum_open[np.maximum(opened_by - 1, 0)], 0.0) - np.where(
        closed_by > 0, cum_closed[np.maximum(closed_by - 1, 0)], 0.0
    )
    daily_billings = float(usd.sum()) / days
    return float(receivable.mean() / daily_billings) if daily_billings else 0.0


@dataclass(frozen=True)
class Comparison:
    config: Any  # RunConfig
    metrics: list[PolicyMetrics]
    databases: list[str]


def compare_policies(
    config: Any,
    names: Sequence[str],
    *,
    directory: str | Path | None = None,
    on_policy: Callable[[str], None] | None = None,
    on_month: Callable[[str, Any], None] | None = None,
) -> Comparison:
    """Replay ``config``'s world once per policy in ``names`` (fresh SQLite databases in
    ``directory``, a temporary one by default) and evaluate each."""
    from billing_core.clock import FrozenClock
    from billing_core.context import BillingContext
    from billing_core.db.engine import create_engine
    from billing_core.db.migrate import upgrade
    from billing_core.simulation.runner import run_world, truth_dir_for
    from billing_core.simulation.truth import TruthStore

    if not names:
        raise InvalidInput("policies", "at least one policy", list(names))
    chosen = [policy(name) for name in names]
    metrics: list[PolicyMetrics] = []
    databases: list[str] = []
    with tempfile.TemporaryDirectory(prefix="recoup-policy-eval-") as tmp:
        folder = Path(directory) if directory is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name, chosen_policy in zip(names, chosen, strict=True):
            if on_policy is not None:
                on_policy(name)
            path = folder / f"{name}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            engine = create_engine(f"sqlite:///{path}")
            try:
                upgrade(engine)
                truth_dir = truth_dir_for(path)
                if truth_dir.exists():
                    shutil.rmtree(truth_dir)
                run_config = dataclasses.replace(config, policy=chosen_policy)
                params = run_config.world()
                start = _utc_start(params.start)
                ctx = BillingContext(engine, clock=FrozenClock(start))
                summary = run_world(ctx, run_config, TruthStore(truth_dir), on_month=_named(on_month, name))
                result = evaluate(
                    engine,
                    start=start,
                    end=start + timedelta(days=summary.days),
                    policy_name=chosen_policy.name,
                )
                metrics.append(dataclasses.replace(result, seconds=round(summary.seconds, 2)))
                databases.append(str(path) if directory is not None else "")
            finally:
                engine.dispose()
    return Comparison(config, metrics, databases)


def _named(on_month: Callable[[str, Any], None] | None, name: str) -> Callable[[Any], None] | None:
    if on_month is None:
        return None

    def call(stats: Any) -> None:
        on_month(name, stats)

    return call


def _utc_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)
