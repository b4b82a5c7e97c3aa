"""``recoup dunning``: the collections engine for failed payments and overdue invoices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from billing_core.services.run_dunning import DunningRunResult

app = typer.Typer(help="Dunning: retries, reminders, suspension and write-off.", no_args_is_help=True)


@app.command("run")
def run(
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            help="Execute every action due by then: a date (midnight UTC) or an ISO 8601 instant with offset.",
        ),
    ],
    chunk_size: Annotated[
        int, typer.Option(help="Processes read and written per transaction.", min=1)
    ] = 5_000,
    full_scan: Annotated[
        bool,
        typer.Option(
            "--full-scan",
            help="Look at every open invoice and process, not only what changed since the last run.",
        ),
    ] = False,
) -> None:
    """Retry, remind, suspend and write off: every dunning action due by --as-of, exactly once.

    Also opens a process for every newly failed payment and newly overdue invoice, and ends those
    whose invoice was paid, voided or written off meanwhile. Safe to rerun: nothing is done twice.
    """
    from billing_core.errors import RecoupError
    from recoup.cli import _context, _fail, _settings, parse_as_of

    try:
        when = parse_as_of(as_of)
    except RecoupError as error:
        raise _fail(error) from error
    ctx = _context(_settings(), at=when)
    try:
        result = _run(ctx, when, chunk_size=chunk_size, full_scan=full_scan)
    except RecoupError as error:
        raise _fail(error) from error
    finally:
        ctx.engine.dispose()
    _print_run(result)


def _run(ctx: Any, when: Any, *, chunk_size: int, full_scan: bool) -> DunningRunResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from billing_core.services.run_dunning import run_dunning
    from recoup.cli import err

    with Progress(
        TextColumn("[bold]dunning[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        return run_dunning(
            ctx, as_of=when, chunk_size=chunk_size, full_scan=full_scan, on_progress=on_progress
        )


def _print_run(result: DunningRunResult) -> None:
    from rich.table import Table

    from recoup.cli import _major, console

    table = Table(title=f"Dunning run up to {result.as_of.isoformat()} ({result.policy})", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    rate = f"{result.actions / result.seconds:,.0f}/s" if result.seconds and result.actions else "-"
    table.add_row("processes opened", f"{result.opened:,}")
    table.add_row("actions executed", f"{result.actions:,}  ({rate})")
    for key, count in sorted(result.tally.actions.items()):
        action, outcome = key.split("/")
        table.add_row(f"  {action.replace('_', ' ')}: {outcome.replace('_', ' ')}", f"{count:,}")
    for status, count in sorted(result.tally.ended.items()):
        table.add_row(f"processes {status.replace('_', ' ')}", f"{count:,}")
    for code, amount in sorted(result.tally.recovered_minor.items()):
        table.add_row(f"recovered {code}", _major(amount, code))
    table.add_row("subscriptions suspended", f"{result.tally.subscriptions_suspended:,}")
    table.add_row("subscriptions canceled at write-off", f"{result.tally.subscriptions_canceled:,}")
    table.add_row("subscriptions back to active", f"{result.tally.subscriptions_restored:,}")
    if result.postponed:
        table.add_row("retries postponed (no card, or a payment pending)", f"{result.postponed:,}")
    table.add_row("passes", f"{result.passes:,}")
    table.add_row("seconds", f"{result.seconds:.2f}")
    console.print(table)
    if not result.complete:
        console.print("[yellow]actions are still due after the last pass: run again[/yellow]")


@app.command("status")
def status(
    at: Annotated[
        str | None, typer.Option("--at", help="Count actions due by this instant (default: now).")
    ] = None,
) -> None:
    """Open dunning processes by status and next action; ended ones by how they ended."""
    from rich.table import Table

    from billing_core.dunning.reporting import summary
    from billing_core.errors import RecoupError
    from recoup.cli import _context, _fail, _major, _settings, console, parse_as_of

    ctx = _context(_settings())
    try:
        when = parse_as_of(at, "at") if at else ctx.clock.now()
        with ctx.read() as conn:
            report = summary(conn, at=when)
    except RecoupError as error:
        raise _fail(error) from error
    finally:
        ctx.engine.dispose()
    table = Table(title=f"Open dunning processes (due by {when.isoformat()})")
    for name in ("status", "next action", "currency", "processes", "due", "owed"):
        table.add_column(name, justify="right" if name in ("processes", "due", "owed") else "left")
    for row in report.open:
        table.add_row(
            row.status, (row.next_action or "waiting").replace("_", " "), row.currency, f"{row.processes:,}",
            f"{row.due:,}", _major(row.owed_minor, row.currency, suffix=False),
        )  # fmt: skip
    if not report.open:
        table.add_row("none", "", "", "0", "0", "")
    console.print(table)
    if report.ended:
        ended = Table(title="Ended processes")
        ended.add_column("status")
        ended.add_column("processes", justify="right")
        for name, count in report.ended.items():
            ended.add_row(name.replace("_", " "), f"{count:,}")
        console.print(ended)
