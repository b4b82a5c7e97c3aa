"""``recoup notify``: emails and text messages from the outbox, after their transactions commit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from billing_core.context import BillingContext
    from recoup.settings import Settings

app = typer.Typer(help="Notifications: send what the outbox asks for.", no_args_is_help=True)

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    from recoup.settings import Settings

    return Settings()


def _context(settings: Settings) -> BillingContext:
    from billing_core.context import BillingContext

    return BillingContext.from_settings(settings)


def _fail(error: Exception) -> typer.Exit:
    from billing_core.errors import InvalidInput

    if isinstance(error, InvalidInput):
        err.print(
            f"[red]error[/red] {error.code}: field [bold]{error.field}[/bold]: expected {error.expected}, "
            f"got {error.got!r}"
        )
    else:
        err.print(f"[red]error[/red] {error}")
    return typer.Exit(2)


@app.command("run")
def run(
    events: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated event types that produce messages (default: dunning.action,"
            "payment.failed,payment.succeeded; add invoice.finalized for invoice emails)."
        ),
    ] = None,
    chunk_size: Annotated[int, typer.Option(help="Outbox events read, and messages sent, per page.")] = 500,
    claim_timeout: Annotated[
        int, typer.Option(help="Seconds after which a message a dead run left 'sending' is sent again.")
    ] = 600,
    sms: Annotated[
        str, typer.Option(help="Where text messages go: 'console' (printed and logged) or 'log'.")
    ] = "console",
) -> None:
    """Send what is waiting: retries that are due, then the outbox events after the offset.

    At least once: a message recorded 'sending' by a run that died is sent again, with the same
    Message-ID, once its claim has lapsed. A server that refuses leaves messages 'failed', retried
    by later runs with back-off; an unreachable server stops the run (exit code 1).
    """
    from datetime import timedelta

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from billing_core.errors import InvalidInput, RecoupError
    from billing_core.notifications import DispatchOptions, LoggingSmsSender, dispatch
    from billing_core.notifications.dispatcher import email_sender, parse_events

    if sms not in ("console", "log"):
        raise _fail(InvalidInput("sms", "'console' or 'log'", sms))
    settings = _settings()
    overrides: dict[str, object] = {
        "chunk_size": chunk_size,
        "claim_timeout": timedelta(seconds=claim_timeout),
    }
    if events is not None:
        overrides["events"] = parse_events(events)
    try:
        options = DispatchOptions.from_settings(settings, **overrides)
    except RecoupError as error:
        raise _fail(error) from error
    ctx = _context(settings)
    try:
        with Progress(
            TextColumn("[bold]notifications[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("outbox", total=None)
            result = dispatch(
                ctx,
                email=email_sender(settings),
                sms=LoggingSmsSender(console.print if sms == "console" else None),
                options=options,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except RecoupError as error:
        raise _fail(error) from error
    finally:
        ctx.engine.dispose()
    table = Table(title="Notifications", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_row("outbox events read", f"{result.events:,}")
    table.add_row("notifications recorded", f"{result.notifications:,}")
    table.add_row("call tasks opened", f"{result.call_tasks:,}")
    table.add_row("retried", f"{result.retried:,}")
    table.add_row("sent", f"{result.sent:,}")
    table.add_row("failed (will retry)", f"{result.failed:,}")
    table.add_row("undeliverable", f"{result.undeliverable:,}")
    table.add_row("events skipped (bad payload)", f"{result.skipped:,}")
    table.add_row("offset / head", f"{result.offset:,} / {result.head:,}")
    table.add_row("seconds", f"{result.seconds:.2f}")
    console.print(table)
    if result.sent_by_kind:
        kinds = Table(title="Sent")
        kinds.add_column("channel and kind")
        kinds.add_column("messages", justify="right")
        for key, count in sorted(result.sent_by_kind.items()):
            kinds.add_row(key, f"{count:,}")
        console.print(kinds)
    if result.stopped:
        err.print(f"[red]stopped[/red]: {result.stopped}")
        raise typer.Exit(1)


@app.command("status")
def status() -> None:
    """Where the dispatcher stands: offset and lag, messages by channel and status, retries, calls."""
    from billing_core.notifications import notification_status

    ctx = _context(_settings())
    try:
        report = notification_status(ctx)
    finally:
        ctx.engine.dispose()
    table = Table(title="Notifications", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_row("offset / head", f"{report.offset:,} / {report.head:,}")
    table.add_row("events not yet looked at", f"{report.lag:,}")
    table.add_row("retries due now", f"{report.due:,}")
    table.add_row(
        "next retry", report.next_attempt_at.isoformat() if report.next_attempt_at is not None else "-"
    )
    table.add_row("open call tasks", f"{report.open_call_tasks:,}")
    console.print(table)
    counts = Table(title="Messages")
    counts.add_column("channel")
    for name in ("sending", "sent", "failed", "undeliverable"):
        counts.add_column(name, justify="right")
    for channel in sorted({channel for channel, _ in report.counts}):
        counts.add_row(
            channel,
            *(
                f"{report.counts.get((channel, name), 0):,}"
                for name in ("sending", "sent", "failed", "undeliverable")
            ),
        )
    console.print(counts)


@app.command("calls")
def calls(limit: Annotated[int, typer.Option(help="How many to list.")] = 50) -> None:
    """Open call tasks, oldest first: whom to call about which invoice."""
    from billing_core.money import Money
    from billing_core.notifications import open_call_tasks

    ctx = _context(_settings())
    try:
        tasks = open_call_tasks(ctx, limit=limit)
    finally:
        ctx.engine.dispose()
    table = Table(title="Open call tasks")
    for name in ("task", "customer", "invoice", "action", "owed", "opened"):
        table.add_column(name, justify="right" if name in ("task", "owed") else "left")
    for task in tasks:
        table.add_row(
            str(task.id),
            str(task.customer_id),
            str(task.invoice_id or "-"),
            task.action,
            str(Money.of(task.amount_minor, task.currency)),
            task.created_at.isoformat(timespec="minutes"),
        )
    console.print(table)


@app.command("call-done")
def call_done(
    task_id: Annotated[int, typer.Argument(help="The call task.")],
    outcome: Annotated[
        str, typer.Option(help="What came of the call: reached, no_answer, promised_to_pay...")
    ],
) -> None:
    """Close a call task with what came of the call."""
    from billing_core.errors import RecoupError
    from billing_core.notifications import complete_call_task

    ctx = _context(_settings())
    try:
        task = complete_call_task(ctx, task_id=task_id, outcome=outcome)
    except RecoupError as error:
        raise _fail(error) from error
    finally:
        ctx.engine.dispose()
    console.print(f"call task {task.id} done: {task.outcome}")


@app.command("phone")
def phone(
    customer_id: Annotated[int, typer.Argument(help="The customer.")],
    number: Annotated[
        str | None, typer.Argument(help="E.164 mobile number such as +4915112345678; omit to remove.")
    ] = None,
) -> None:
    """Record the mobile number a customer agreed to receive text messages on (or remove it)."""
    from billing_core.errors import RecoupError
    from billing_core.notifications import set_sms_phone

    ctx = _context(_settings())
    try:
        set_sms_phone(ctx, customer_id=customer_id, phone=number)
    except RecoupError as error:
        raise _fail(error) from error
    finally:
        ctx.engine.dispose()
    console.print(
        f"customer {customer_id}: " + (f"text messages to {number}" if number else "no text messages")
    )
