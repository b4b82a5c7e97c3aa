"""The ``recoup`` command line.

Every command imports what it needs inside its own body: ``recoup --help`` must answer at once,
and the ML libraries (feast, mlflow, evidently, bentoml) take seconds to import.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from billing_core.context import BillingContext
    from recoup.settings import Settings

app = typer.Typer(
    name="recoup",
    help="Recoup: collections and risk intelligence on a lean billing core.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="The billing database: schema migrations.", no_args_is_help=True)
audit_app = typer.Typer(
    help="The hash-chained audit log of every money movement and state change.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")


def _register_parts() -> None:
    """The sub-commands that live in :mod:`recoup.commands`, one module per part."""
    from recoup.commands import api, dunning, features, lake, notify, simulate

    app.add_typer(api.app, name="api")
    app.add_typer(dunning.app, name="dunning")
    app.add_typer(notify.app, name="notify")
    app.add_typer(lake.app, name="lake")
    app.add_typer(simulate.app, name="simulate")
    app.add_typer(features.app, name="features")


_register_parts()

console = Console()
err = Console(stderr=True)

AsOf = Annotated[
    str,
    typer.Option(
        "--as-of", help="Instant to bill up to: a date (midnight UTC) or an ISO 8601 instant with offset."
    ),
]


def parse_as_of(value: str, field: str = "as_of") -> datetime:
    """``2026-03-01`` is midnight UTC; a full instant must carry its offset."""
    from billing_core.clock import parse_instant

    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        return parse_instant(value, field)


def _settings() -> Settings:
    from recoup.settings import Settings

    return Settings()


def _context(settings: Settings, *, at: datetime | None = None) -> BillingContext:
    from billing_core.clock import FrozenClock
    from billing_core.context import BillingContext

    if at is None:
        return BillingContext.from_settings(settings)
    return BillingContext.from_settings(settings, clock=FrozenClock(at))


def _fail(error: Exception) -> typer.Exit:
    """Print a Recoup error the way a user can act on it, and exit non-zero."""
    from billing_core.errors import InvalidInput

    if isinstance(error, InvalidInput):
        err.print(
            f"[red]error[/red] {error.code}: field [bold]{error.field}[/bold]: expected {error.expected}, "
            f"got {error.got!r}"
        )
    else:
        err.print(f"[red]error[/red] {error}")
    return typer.Exit(2)


# --------------------------------------------------------------------------------------- database


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Create or migrate the billing database (RECOUP_DATABASE_URL) to the latest schema."""
    from billing_core.db.engine import create_engine
    from billing_core.db.migrate import current_revision, upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    upgrade(engine, revision)
    console.print(f"database at revision [bold]{current_revision(engine)}[/bold] ({_safe_url(settings)})")
    engine.dispose()


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. base.")]) -> None:
    """Migrate the billing database down to REVISION."""
    from billing_core.db.engine import create_engine
    from billing_core.db.migrate import current_revision, downgrade

    engine = create_engine(_settings().database_url)
    downgrade(engine, revision)
    console.print(f"database at revision [bold]{current_revision(engine)}[/bold]")
    engine.dispose()


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the billing database."""
    from billing_core.db.engine import create_engine
    from billing_core.db.migrate import current_revision

    engine = create_engine(_settings().database_url)
    console.print(current_revision(engine) or "empty (run `recoup db upgrade`)")
    engine.dispose()


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


# ---------------------------------------------------------------------------------------- billing


@app.command()
def bill(
    as_of: AsOf,
    chunk_size: Annotated[
        int, typer.Option(help="Subscriptions planned and written per transaction.")
    ] = 5_000,
    no_collect: Annotated[
        bool, typer.Option("--no-collect", help="Invoice only; attempt no payment.")
    ] = False,
) -> None:
    """Invoice every subscription period due by --as-of, then attempt payment.

    Idempotent: run it twice, or from two processes at once, and every period is invoiced
    exactly once.
    """
    from billing_core.errors import RecoupError

    try:
        when = parse_as_of(as_of)
    except RecoupError as error:
        raise _fail(error) from error
    ctx = _context(_settings(), at=when)
    try:
        result = _run_billing(ctx, when, chunk_size=chunk_size, collect=not no_collect)
    except RecoupError as error:
        raise _fail(error) from error
    finally:
        ctx.engine.dispose()
    _print_billing(result)


def _run_billing(ctx: BillingContext, as_of: datetime, *, chunk_size: int = 5_000, collect: bool = True):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from billing_core.services.billing_run import run_billing

    with Progress(
        TextColumn("[bold]billing[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(as_of.date().isoformat(), total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return run_billing(ctx, as_of=as_of, chunk_size=chunk_size, collect=collect, on_progress=on_progress)


def _print_billing(result) -> None:  # type: ignore[no-untyped-def]
    table = Table(title=f"Billing run up to {result.as_of.isoformat()}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    rate = f"{result.invoices / result.seconds:,.0f}/s" if result.seconds else "-"
    table.add_row("invoices", f"{result.invoices:,}  ({rate})")
    table.add_row("payments attempted", f"{result.payments.attempted:,}")
    table.add_row("succeeded", f"{result.payments.succeeded:,}")
    table.add_row("failed", f"{result.payments.failed:,}")
    table.add_row("subscriptions ended", f"{result.subscriptions_canceled:,}")
    for code, amount in sorted(result.invoiced_minor.items()):
        table.add_row(f"invoiced {code}", _major(amount, code))
    for code, amount in sorted(result.payments.collected_minor.items()):
        table.add_row(f"collected {code}", _major(amount, code))
    table.add_row("seconds", f"{result.seconds:.2f}")
    console.print(table)
    if result.payments.decline_codes:
        declines = Table(title="Declines")
        declines.add_column("decline code")
        declines.add_column("attempts", justify="right")
        for code, count in sorted(result.payments.decline_codes.items(), key=lambda kv: -kv[1]):
            declines.add_row(code, f"{count:,}")
        console.print(declines)


def _major(amount_minor: int, code: str, *, suffix: bool = True) -> str:
    """``1234567`` USD as ``12,345.67 USD``: grouped, with the currency's own decimals."""
    from billing_core.money import Money

    money = Money.of(amount_minor, code)
    text = f"{money.to_major():,.{money.currency.exponent}f}"
    return f"{text} {code}" if suffix else text


@app.command()
def report(
    currency: Annotated[str, typer.Option(help="Reporting currency.")] = "USD",
    at: Annotated[str | None, typer.Option(help="Instant of the FX rates (default: now).")] = None,
) -> None:
    """Invoiced, paid and open amounts per currency and in one reporting currency."""
    from billing_core.errors import RecoupError
    from billing_core.reporting import invoice_summary

    settings = _settings()
    ctx = _context(settings)
    try:
        when = parse_as_of(at) if at else ctx.clock.now()
        with ctx.read() as conn:
            rows = invoice_summary(conn, reporting_currency=currency, at=when)
    except RecoupError as error:
        raise _fail(error) from error
    finally:
        ctx.engine.dispose()
    _print_summary(rows, currency.upper(), when)


def _print_summary(rows, reporting: str, when: datetime) -> None:  # type: ignore[no-untyped-def]
    native = Table(title="Finalized invoices by currency")
    for name in ("currency", "invoices", "invoiced", "paid", "open", "written off"):
        native.add_column(name, justify="left" if name == "currency" else "right")
    for r in rows:
        native.add_row(
            r.currency,
            f"{r.invoices:,}",
            *(
                _major(v, r.currency, suffix=False)
                for v in (r.invoiced_minor, r.paid_minor, r.open_minor, r.uncollectible_minor)
            ),
        )
    console.print(native)
    converted = Table(title=f"The same in {reporting}, at the rates effective {when.date().isoformat()}")
    for name in ("currency", "invoiced", "paid", "open"):
        converted.add_column(name, justify="left" if name == "currency" else "right")
    totals = [0, 0, 0]
    for r in rows:
        values = (r.invoiced_reporting_minor, r.paid_reporting_minor, r.open_reporting_minor)
        converted.add_row(r.currency, *(_major(v, reporting, suffix=False) for v in values))
        totals = [a + b for a, b in zip(totals, values, strict=True)]
    converted.add_section()
    converted.add_row("all", *(_major(v, reporting, suffix=False) for v in totals), style="bold")
    console.print(converted)


# ------------------------------------------------------------------------------------------ audit


@audit_app.command("verify")
def audit_verify(
    expect_head: Annotated[
        str | None, typer.Option(help="Also require this head hash (one you noted earlier, kept elsewhere).")
    ] = None,
) -> None:
    """Recompute the hash chain from the first event; exit 1 where it is broken."""
    from rich.progress import Progress

    from billing_core.audit import verify
    from billing_core.errors import AuditChainBroken

    ctx = _context(_settings())
    try:
        with Progress(console=err, transient=True) as progress, ctx.read() as conn:
            task = progress.add_task("verifying", total=None)
            report = verify(
                conn,
                expect_head=expect_head,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except AuditChainBroken as error:
        err.print(f"[red]audit chain broken[/red]: {error}")
        raise typer.Exit(1) from error
    finally:
        ctx.engine.dispose()
    console.print(f"[green]audit chain intact[/green]: {report.events:,} events, head {report.head_hash}")


# ------------------------------------------------------------------------------------------- book


@app.command()
def book(
    subscriptions: Annotated[int, typer.Option(help="Subscriptions to create.")] = 10_000,
    as_of: Annotated[
        str, typer.Option("--as-of", help="Every subscription is due once by then.")
    ] = "2026-02-01",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Fill the database with a synthetic book: catalog, customers, subscriptions and usage."""
    when = parse_as_of(as_of)
    settings = _settings()
    _migrate(settings)
    ctx = _context(settings, at=when)
    try:
        result = _build_book(ctx, subscriptions, when, seed)
    finally:
        ctx.engine.dispose()
    console.print(
        f"book: {result.customers:,} customers, {result.subscriptions:,} subscriptions, "
        f"{result.usage_events:,} usage events, all due by {when.date().isoformat()}"
    )


def _migrate(settings: Settings) -> None:
    from billing_core.db.engine import create_engine
    from billing_core.db.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()


def _build_book(ctx: BillingContext, subscriptions: int, as_of: datetime, seed: int):  # type: ignore[no-untyped-def]
    from rich.progress import Progress

    from billing_core.book import build_book

    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("building book", total=subscriptions)
        return build_book(
            ctx,
            subscriptions=subscriptions,
            as_of=as_of,
            seed=seed,
            on_progress=lambda n: progress.update(task, completed=n),
        )


# ------------------------------------------------------------------------------------------- demo


@app.command()
def demo(
    subscriptions: Annotated[int, typer.Option(help="Size of the synthetic book.")] = 20_000,
    months: Annotated[int, typer.Option(help="Monthly billing runs after the first.", min=0, max=24)] = 2,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    world_customers: Annotated[
        int, typer.Option(help="Customers who sign up in the simulated world.", min=100)
    ] = 10_000,
    world_months: Annotated[int, typer.Option(help="Months the world runs.", min=2, max=36)] = 12,
    policy_customers: Annotated[
        int, typer.Option(help="Customers of the world the dunning policies are compared on.", min=100)
    ] = 3_000,
) -> None:
    """The whole story on embedded defaults, in fresh databases under <data dir>/demo."""
    from recoup.demo import run_demo

    settings = _settings()
    demo_dir = settings.data_dir / "demo"
    run_demo(
        demo_dir,
        subscriptions=subscriptions,
        months=months,
        seed=seed,
        console=console,
        err=err,
        world_customers=world_customers,
        world_months=world_months,
        policy_customers=policy_customers,
    )


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["app", "parse_as_of"]
