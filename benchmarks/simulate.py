"""Benchmark: the world simulator driving the billing core, day by day.

    uv run python benchmarks/simulate.py --customers 10000 --months 12

Builds a fresh SQLite database (in a temporary directory unless ``--db`` is given) and runs
:func:`billing_core.simulation.runner.run_world` with the default static dunning policy: signups,
usage, billing runs, payments through the world's card network, dunning, reminders answered,
invoices on net terms, churn, disputes and fraud, with the ground truth written beside the
database. Progress goes to stderr (a line per simulated month); the last line of stdout is one
JSON object: ``customers``, ``months``, ``seconds``, ``customer_months_per_s`` (customers x months
/ seconds), the rows written (``invoices``, ``payments``, ``disputes``...) and the seconds spent
per phase of the simulated day (``timings``).

Targets on 2 cores: 10,000 customers over 12 months in under 30 seconds; 100,000 customers over
24 months in under 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _machine import machine  # benchmarks/_machine.py

from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.engine import create_engine
from billing_core.db.migrate import upgrade
from billing_core.simulation.policy_eval import policy
from billing_core.simulation.runner import MonthStats, RunConfig, run_world, truth_dir_for
from billing_core.simulation.truth import TruthStore


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=10_000, help="signups over the run (expected)")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scenario", default="baseline")
    parser.add_argument("--policy", default="static")
    parser.add_argument("--billing-every", type=int, default=1, help="days between card billing runs")
    parser.add_argument(
        "--usage-report-days",
        type=int,
        default=None,
        help="days between a customer's meter reports (default: the runner's)",
    )
    parser.add_argument("--sequential", action="store_true", help="no helper processes (one core)")
    parser.add_argument("--db", type=Path, default=None, help="SQLite file to create (default: a temp dir)")
    args = parser.parse_args()

    config = RunConfig(
        customers=args.customers,
        months=args.months,
        seed=args.seed,
        scenario=args.scenario,
        policy=policy(args.policy),
        billing_every_days=args.billing_every,
        pipelined=not args.sequential,
        **({"usage_report_days": args.usage_report_days} if args.usage_report_days else {}),
    )
    machine_before = machine()
    with tempfile.TemporaryDirectory(prefix="recoup-bench-") as tmp:
        path = args.db or Path(tmp) / "simulate.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        truth_dir = truth_dir_for(path)
        if truth_dir.exists():
            shutil.rmtree(truth_dir)
        engine = create_engine(f"sqlite:///{path}")
        upgrade(engine)
        start = datetime.combine(config.world().start, datetime.min.time(), tzinfo=UTC)
        ctx = BillingContext(engine, clock=FrozenClock(start))

        def on_month(stats: MonthStats) -> None:
            print(
                f"month {stats.month:>2}: {stats.customers:>6,} signups {stats.invoices:>8,} invoices"
                f" {stats.dunning_actions:>7,} dunning actions {stats.usage_events:>9,} usage events"
                f"  {stats.seconds:6.1f} s",
                file=sys.stderr,
                flush=True,
            )

        cpu_started = time.process_time()
        summary = run_world(ctx, config, TruthStore(truth_dir), on_month=on_month)
        cpu_seconds = time.process_time() - cpu_started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        engine.dispose()
        size_mb = (
            sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists()) / 1e6
        )
    counts = summary.counts
    report = {
        "customers": summary.customers,
        "months": summary.months,
        "seconds": round(summary.seconds, 2),
        "customer_months_per_s": round(summary.customers * summary.months / summary.seconds, 1),
        "invoices": counts["invoices"],
        "payments": counts["payments"],
        "payment_attempts": counts["payment_attempts"],
        "disputes": counts["disputes"],
        "chargebacks": counts["chargebacks"],
        "dunning_actions": counts["dunning_actions"],
        "usage_events": counts["usage_events"],
        "outbox_events": counts["outbox"],
        "truth_rows": summary.truth_rows,
        "timings": summary.timings,
        "cpu_seconds": round(cpu_seconds, 2),
        "helper_cpu_seconds": round(children.ru_utime + children.ru_stime, 2),
        "database_mb": round(size_mb, 1),
        "load_average_before": machine_before["load_average"],
        "scenario": args.scenario,
        "policy": config.policy.name,
        "billing_every_days": args.billing_every,
        "usage_report_days": config.usage_report_days,
        "database": "sqlite",
        "machine": machine_before,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
