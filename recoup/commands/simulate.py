"""``recoup simulate``: fill a billing database with a simulated history, compare dunning policies.

* ``recoup simulate run --customers 10000 --months 24 --seed 7 --scenario recession`` (or the same
  options without ``run``) drives the billing core day by day with the world simulator into an
  empty database (the settings' one, or ``--db PATH``) and writes the ground truth beside it;
* ``recoup simulate policy-eval --policy static --policy static-aggressive ...`` replays the same
  world once per policy (a fresh database each, the same seed) and prints the outcomes side by
  side;
* ``recoup simulate report`` draws the plots of a simulated database.

See docs/simulator.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from billing_core.simulation.runner import MonthStats, RunConfig, RunSummary

app = typer.Typer(
    help="The world simulator: simulated billing histories with their ground truth.", no_args_is_help=True
)

Customers = Annotated[
    int, typer.Option(help="Customers who sign up over the run (expected; drawn day by day).", min=1)
]
Months = Annotated[int, typer.Option(help="Months to simulate from the world's start.", min=1)]
Seed = Annotated[int, typer.Option(help="The world's seed: the same seed gives the same world.")]
Scenario = Annotated[str, typer.Option(help="baseline, recession, price_increase or fraud_wave.")]
SwitchMonth = Annotated[
    int | None, typer.Option(help="The month the scenario takes effect (default: half way).", min=0)
]
TargetDb = Annotated[
    Path | None,
    typer.Option(help="SQLite file to fill (default: the settings' database, RECOUP_DATABASE_URL)."),
]
PolicyName = Annotated[str, typer.Option(help="The dunning policy (see policy-eval).")]
BillingEvery = Annotated[
    int, typer.Option(help="Days between billing runs for customers charged by card.", min=1)
]


def _config(
    *, customers: int, months: int, seed: int, scenario: str, switch_month: int | None, billing_every: int,
    policy_name: str = "static",
) -> RunConfig:  # fmt: skip
    from billing_core.simulation.params import WorldParams
    from billing_core.simulation.policy_eval import policy
    from billing_core.simulation.runner import RunConfig

    config = RunConfig(
        customers=customers,
        months=months,
        seed=seed,
        scenario=scenario,
        switch_month=switch_month,
        policy=policy(policy_name),
        billing_every_days=billing_every,
    )
    WorldParams.for_scenario(scenario, config.switch)  # an unknown scenario fails before anything runs
    return config


@app.callback(invoke_without_command=True)
def simulate(
    context: typer.Context,
    customers: Customers = 10_000,
    months: Months = 24,
    seed: Seed = 7,
    scenario: Scenario = "baseline",
    switch_month: SwitchMonth = None,
    db: TargetDb = None,
    policy: PolicyName = "static",
    billing_every: BillingEvery = 1,
) -> None:
    """Options without a sub-command are a `run`: `recoup simulate --customers 10000 --months 24`."""
    if context.invoked_subcommand is None:
        run(
            customers=customers, months=months, seed=seed, scenario=scenario, switch_month=switch_month,
            db=db, policy=policy, billing_every=billing_every,
        )  # fmt: skip


@app.command("run")
def run(
    customers: Customers = 10_000,
    months: Months = 24,
    seed: Seed = 7,
    scenario: Scenario = "baseline",
    switch_month: SwitchMonth = None,
    db: TargetDb = None,
    policy: PolicyName = "static",
    billing_every: BillingEvery = 1,
) -> None:
    """Simulate a book of business into an empty billing database, with its ground truth.

    The database must be empty (or freshly migrated); it is migrated first if needed. The truth
    goes to <data dir>/truth, or beside --db (sim.db: sim.truth).
    """
    from billing_core.clock import FrozenClock
    from billing_core.context import BillingContext
    from billing_core.db.engine import create_engine
    from billing_core.errors import RecoupError
    from billing_core.simulation.runner import run_world, truth_dir_for
    from billing_core.simulation.truth import TruthStore
    from recoup.cli import _fail, _settings

    try:
        config = _config(
            customers=customers, months=months, seed=seed, scenario=scenario, switch_month=switch_month,
            billing_every=billing_every, policy_name=policy,
        )  # fmt: skip
    except RecoupError as error:
        raise _fail(error) from error
    settings = _settings()
    if db is not None:
        url, truth_dir = f"sqlite:///{db.resolve()}", truth_dir_for(db)
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url, truth_dir = settings.database_url, settings.data_dir / "truth"
    engine = create_engine(url)
    try:
        _prepare(engine, url, truth_dir)
        start = _start_instant(config)
        ctx = BillingContext(engine, clock=FrozenClock(start), invoice_prefix=settings.invoice_prefix)
        summary = _with_progress(
            config,
            lambda on_month, on_day: run_world(
                ctx, config, TruthStore(truth_dir), on_month=on_month, on_day=on_day
            ),
        )
    except RecoupError as error:
        raise _fail(error) from error
    finally:
        engine.dispose()
    _print_summary(summary, url, truth_dir)


def _start_instant(config: RunConfig) -> Any:
    from datetime import UTC, datetime

    return datetime.combine(config.world().start, datetime.min.time(), tzinfo=UTC)


def _prepare(engine: Any, url: str, truth_dir: Path) -> None:
    """Migrate a fresh database; refuse one that holds data, or a truth store already written."""
    from sqlalchemy import inspect

    from billing_core.db.bulk import Bulk
    from billing_core.db.migrate import current_revision, upgrade
    from recoup.cli import err

    if current_revision(engine) is None and "customers" in inspect(engine).get_table_names():
        raise typer.BadParameter(f"{_safe(url)} has tables but no schema revision: not a Recoup database")
    upgrade(engine)
    with engine.connect() as conn:
        bulk = Bulk(conn)
        customers = int(bulk.query("SELECT COUNT(*) FROM customers")[0][0])
        events = int(bulk.query("SELECT last_seq FROM outbox_head WHERE id = 1")[0][0])
    if customers or events:
        err.print(
            f"[red]error[/red] the database {_safe(url)} is not empty ({customers:,} customers, {events:,} events):"
            " simulate into an empty one (--db PATH, or another RECOUP_DATABASE_URL)"
        )
        raise typer.Exit(2)
    if truth_dir.exists() and any(truth_dir.iterdir()):
        err.print(
            f"[red]error[/red] the truth store {truth_dir} already holds tables from another run:"
            " remove it or choose another --db"
        )
        raise typer.Exit(2)


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _with_progress(config: RunConfig, call: Any, label: str = "") -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from recoup.cli import err

    with Progress(
        TextColumn("[bold]simulate[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(label or config.scenario, total=None)

        def on_day(day: int, days: int) -> None:
            progress.update(task, completed=day, total=days)

        def on_month(stats: MonthStats) -> None:
            declined = stats.first_declines / stats.first_attempts if stats.first_attempts else 0.0
            progress.console.print(
                f"{label + ' ' if label else ''}month {stats.month:>2} ({stats.first_day[:7]}):"
                f" {stats.customers:,} signups, {stats.invoices:,} invoices, {declined:.1%} first attempts declined,"
                f" {stats.dunning_actions:,} dunning actions, {stats.voluntary_cancels:,} + {stats.involuntary_cancels:,}"
                f" cancels (voluntary + involuntary), {stats.disputes:,} disputes, {stats.chargebacks:,} chargebacks"
                f"  [{stats.seconds:.1f} s]"
            )

        return call(on_month, on_day)


def _print_summary(summary: RunSummary, url: str, truth_dir: Path) -> None:
    from rich.table import Table

    from recoup.cli import console

    table = Table(
        title=f"Simulated {summary.months} months ({summary.scenario}, switch at month {summary.switch_month},"
        f" seed {summary.seed}, policy {summary.policy})",
        show_header=False,
    )
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_row("customers signed up", f"{summary.customers:,}")
    for name in ("invoices", "payment_attempts", "payments", "dunning_actions", "disputes", "chargebacks",
                 "usage_events", "outbox"):  # fmt: skip
        table.add_row(name.replace("_", " "), f"{summary.counts.get(name, 0):,}")
    for name, rows in summary.truth_rows.items():
        table.add_row(f"truth: {name}", f"{rows:,}")
    rate = summary.customers * summary.months / summary.seconds if summary.seconds else 0.0
    table.add_row("seconds", f"{summary.seconds:.1f}  ({rate:,.0f} customer-months/s)")
    table.add_row("database", _safe(url))
    table.add_row("truth", str(truth_dir))
    console.print(table)


@app.command("policy-eval")
def policy_eval(
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy", help="A policy to replay (repeat the option): static, static-aggressive, ..."
        ),
    ] = None,
    customers: Customers = 10_000,
    months: Months = 12,
    seed: Seed = 7,
    scenario: Scenario = "baseline",
    switch_month: SwitchMonth = None,
    billing_every: BillingEvery = 1,
    out: Annotated[
        Path | None, typer.Option(help="Keep each policy's database here (default: a temporary directory).")
    ] = None,
) -> None:
    """Replay the same world once per policy (common random numbers) and compare the outcomes."""
    from billing_core.errors import RecoupError
    from billing_core.simulation.policy_eval import POLICIES
    from recoup.cli import _fail, err

    names = policy or ["static", "static-aggressive"]
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        err.print(f"[red]error[/red] unknown policy {unknown[0]!r}: expected one of {', '.join(POLICIES)}")
        raise typer.Exit(2)
    try:
        config = _config(
            customers=customers, months=months, seed=seed, scenario=scenario, switch_month=switch_month,
            billing_every=billing_every,
        )  # fmt: skip
        comparison = _compare(config, names, out)
    except RecoupError as error:
        raise _fail(error) from error
    _print_comparison(comparison)


def _compare(config: RunConfig, names: list[str], out: Path | None) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from billing_core.simulation.policy_eval import compare_policies
    from recoup.cli import err

    with Progress(
        TextColumn("[bold]policy-eval[/bold] {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=len(names) * config.months)

        def on_policy(name: str) -> None:
            progress.update(task, description=name)

        def on_month(name: str, stats: Any) -> None:
            progress.advance(task)

        return compare_policies(config, names, directory=out, on_policy=on_policy, on_month=on_month)


def _print_comparison(comparison: Any) -> None:
    from rich.table import Table

    from recoup.cli import console

    config = comparison.config
    metrics = comparison.metrics
    table = Table(
        title=f"Dunning policies on the same world ({config.customers:,} customers, {config.months} months,"
        f" {config.scenario}, seed {config.seed})"
    )
    table.add_column("")
    for m in metrics:
        table.add_column(m.policy, justify="right")
    rows: list[tuple[str, Any]] = [
        ("invoices in collections (matured)", lambda m: f"{m.invoices_in_collections:,}"),
        ("at risk (USD)", lambda m: f"{m.at_risk_usd:,.0f}"),
        ("recovered revenue (USD)", lambda m: f"{m.recovered_usd:,.0f}"),
        ("recovery rate", lambda m: f"{m.recovery_rate:.1%}"),
        ("days sales outstanding", lambda m: f"{m.dso_days:.2f}"),
        ("involuntary churn (customers)", lambda m: f"{m.involuntary_churn:.2%}"),
        ("voluntary churn (customers)", lambda m: f"{m.voluntary_churn:.2%}"),
        ("actions per invoice", lambda m: f"{m.actions_per_invoice:.2f}"),
        ("  retries", lambda m: f"{m.retries:,}"),
        ("  messages", lambda m: f"{m.messages:,}"),
        ("seconds", lambda m: f"{m.seconds:.1f}"),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(m) for m in metrics))
    console.print(table)
    kept = [path for path in comparison.databases if path]
    if kept:
        console.print("databases: " + ", ".join(kept))


@app.command("report")
def report(
    out: Annotated[Path, typer.Option(help="Directory for the PNG files.")] = Path("report"),
    db: Annotated[
        Path | None, typer.Option(help="SQLite file of a simulated run (default: the settings' database).")
    ] = None,
) -> None:
    """Plot a simulated database: payment delays, decline codes, churn, fraud over time."""
    from billing_core.db.engine import create_engine
    from billing_core.simulation.report import write_report
    from billing_core.simulation.runner import truth_dir_for
    from billing_core.simulation.truth import TruthStore
    from recoup.cli import _settings, console, err

    settings = _settings()
    if db is not None:
        if not db.exists():
            err.print(f"[red]error[/red] no database at {db}")
            raise typer.Exit(2)
        url, truth_dir = f"sqlite:///{db.resolve()}", truth_dir_for(db)
    else:
        url, truth_dir = settings.database_url, settings.data_dir / "truth"
    engine = create_engine(url)
    try:
        truth = TruthStore(truth_dir) if truth_dir.exists() else None
        paths = write_report(engine, out, truth=truth)
    finally:
        engine.dispose()
    for path in paths:
        console.print(str(path))
