"""Benchmark: the dunning engine over 60 days of collections, run day by day.

    uv run python benchmarks/dunning_run.py --invoices 100000

Builds a fresh SQLite database (in a temporary directory unless ``--db`` is given) with a book of
``--invoices`` subscriptions all due on day 0, and bills them through a simulated gateway that
declines every payment (a share of the cards, by fingerprint, for good with a hard code; cards
past their expiry month with ``expired_card``; the rest with a soft code): every invoice that
owes something goes into dunning. Then it runs the engine once a day for 60 days (``as_of``
advancing a day at a time, a frozen clock moved with it) with the default static policy. Retries
go to a simulated gateway that declines 85% of soft attempts; on day 10 a quarter of the
customers whose card was refused for good (or had expired) add a new card. Only the dunning runs
are timed. Progress goes to stderr; the last line of stdout is one JSON object.

Target: 100,000 invoices through 60 days in under 60 seconds on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tqdm import tqdm

from billing_core.book import build_book
from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.bulk import Bulk
from billing_core.db.engine import create_engine
from billing_core.db.migrate import upgrade
from billing_core.payments import SimulatedGateway
from billing_core.services.billing_run import run_billing
from billing_core.services.run_dunning import run_dunning

HARD_DECLINE_RATE = 0.15
RETRY_SOFT_DECLINE_RATE = 0.85
NEW_CARD_DAY = 10
NEW_CARD_SHARE = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=100_000, help="subscriptions billed into dunning")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file to create (default: a temp dir)")
    parser.add_argument("--chunk-size", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sequential", action="store_true", help="no helper process (one core)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="recoup-bench-") as tmp:
        path = args.db or Path(tmp) / "dunning.db"
        if path.exists():
            path.unlink()
        engine = create_engine(f"sqlite:///{path}")
        upgrade(engine)
        day0 = datetime(2026, 3, 1, tzinfo=UTC)
        clock = FrozenClock(day0)
        declining = SimulatedGateway(args.seed, soft_decline_rate=1.0, hard_decline_rate=HARD_DECLINE_RATE)
        ctx = BillingContext(engine, clock=clock, gateway=declining)

        started = time.perf_counter()
        with tqdm(total=args.invoices, desc="building book", unit="sub", file=sys.stderr) as bar:
            build_book(
                ctx, subscriptions=args.invoices, as_of=day0, seed=args.seed,
                on_progress=lambda n: bar.update(n - bar.n),
            )  # fmt: skip
        with tqdm(
            total=args.invoices, desc="billing (every payment declined)", unit="inv", file=sys.stderr
        ) as bar:
            billing = run_billing(ctx, as_of=day0, on_progress=lambda done, total: bar.update(done - bar.n))
        setup_seconds = time.perf_counter() - started

        # retries meet a gateway that declines most soft attempts; the same cards stay blocked
        ctx.gateway = SimulatedGateway(
            args.seed, soft_decline_rate=RETRY_SOFT_DECLINE_RATE, hard_decline_rate=HARD_DECLINE_RATE
        )
        rng = random.Random(args.seed)
        seconds = 0.0
        cpu_started = time.process_time()
        children_started = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs = []
        with tqdm(range(args.days + 1), desc="dunning, day by day", unit="day", file=sys.stderr) as days:
            for day in days:
                as_of = day0 + timedelta(days=day)
                clock.set(as_of)
                if day == NEW_CARD_DAY:
                    _new_cards(ctx, rng)
                result = run_dunning(
                    ctx, as_of=as_of, chunk_size=args.chunk_size, pipelined=not args.sequential
                )
                seconds += result.seconds
                runs.append(result)
                days.set_postfix(actions=sum(r.actions for r in runs), open=_open(ctx))

        cpu_seconds = time.process_time() - cpu_started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        helper_cpu = (children.ru_utime - children_started.ru_utime) + (
            children.ru_stime - children_started.ru_stime
        )
        report = _report(ctx, runs, seconds)
        report["cpu_seconds"] = round(cpu_seconds, 2)  # this process
        report["helper_cpu_seconds"] = round(helper_cpu, 2)  # the helper processes it forked
        report.update(
            subscriptions=args.invoices,
            days=args.days,
            billing_invoices=billing.invoices,
            setup_seconds=round(setup_seconds, 2),
            pipelined=not args.sequential,
            database="sqlite",
        )
        engine.dispose()
    print(json.dumps(report))


def _new_cards(ctx: BillingContext, rng: random.Random) -> None:
    """A share of the customers whose card was refused for good (or had expired) add a new one."""
    with ctx.transaction() as tx:
        bulk = tx.bulk
        waiting = bulk.query(
            "SELECT DISTINCT p.customer_id FROM dunning_processes p WHERE p.status IN ('active', 'warned', 'suspended')"
            " AND p.last_decline_code IN ('do_not_honor', 'stolen_card', 'lost_card', 'fraudulent', 'expired_card')"
            " ORDER BY p.customer_id"
        )
        chosen = [row[0] for row in waiting if rng.random() < NEW_CARD_SHARE]
        ids = bulk.reserve_ids("payment_methods", len(chosen))
        now_s = bulk.instant(tx.now)
        year = tx.now.year + 3
        bulk.insert(
            "payment_methods",
            ["id", "customer_id", "brand", "bin", "last4", "exp_month", "exp_year", "fingerprint", "created_at"],
            [(pm, cid, "visa", "424242", "4242", 12, year, f"fp-new-{pm}", now_s) for pm, cid in zip(ids, chosen, strict=True)],
        )  # fmt: skip
        bulk.executemany(
            "UPDATE customers SET default_payment_method_id = ?, updated_at = ? WHERE id = ?",
            [(pm, now_s, cid) for pm, cid in zip(ids, chosen, strict=True)],
        )
        for pm, cid in zip(ids, chosen, strict=True):  # as add_payment_method records it
            tx.emit("payment_method.attached", "customer", cid, customer_id=cid, payment_method_id=pm,
                    brand="visa", bin="424242", last4="4242", exp_month=12, exp_year=year, default=True)  # fmt: skip


def _open(ctx: BillingContext) -> int:
    with ctx.read() as conn:
        return int(
            Bulk(conn).query(
                "SELECT COUNT(*) FROM dunning_processes WHERE status IN ('active', 'warned', 'suspended')"
            )[0][0]
        )


def _report(ctx: BillingContext, runs: list, seconds: float) -> dict[str, object]:  # type: ignore[type-arg]
    with ctx.read() as conn:
        bulk = Bulk(conn)
        statuses = dict(bulk.query("SELECT status, COUNT(*) FROM dunning_processes GROUP BY status"))
        (invoices,) = bulk.query("SELECT COUNT(*) FROM dunning_processes")[0]
        (actions,) = bulk.query("SELECT COUNT(*) FROM dunning_actions")[0]
        by_action = dict(bulk.query("SELECT action, COUNT(*) FROM dunning_actions GROUP BY action"))
        (suspended,) = bulk.query(
            "SELECT COUNT(*) FROM dunning_actions WHERE action = 'suspend' AND outcome = 'suspended'"
        )[0]
        (events,) = bulk.query("SELECT COUNT(*) FROM outbox WHERE event_type = 'dunning.action'")[0]
    executed = sum(r.actions for r in runs)
    return {
        "invoices": invoices,
        "actions": actions,
        "seconds": round(seconds, 2),
        "actions_per_s": round(actions / seconds, 1) if seconds else None,
        "recovered": statuses.get("recovered", 0),
        "written_off": statuses.get("written_off", 0),
        "suspended": suspended,
        "still_open": sum(n for s, n in statuses.items() if s in ("active", "warned", "suspended")),
        "actions_by_type": by_action,
        "actions_reported": executed,
        "action_events": events,
        "retries_attempted": sum(r.payments.attempted for r in runs),
        "slowest_day_seconds": round(max(r.seconds for r in runs), 2) if runs else 0,
    }


if __name__ == "__main__":
    main()
