"""``recoup lake``: the partitioned parquet lake the models read.

pyarrow, DuckDB and SQLAlchemy are imported inside the commands, so that ``recoup --help`` stays
fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from recoup.settings import Settings

app = typer.Typer(help="The lake: partitioned parquet for the feature store.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

_STAGES = {
    "outbox": "outbox events",
    "subscriptions": "subscriptions",
    "disputes": "disputes",
    "customers": "customers",
    "usage_events": "usage events",
    "dunning_actions": "dunning actions",
}


def _engine(settings: Settings) -> Engine:
    from sqlalchemy import inspect

    from billing_core.db.engine import create_engine

    engine = create_engine(settings.database_url)
    if not inspect(engine).has_table("lake_exports"):
        engine.dispose()
        err.print("[red]error[/red] the database has no lake_exports table: run `recoup db upgrade` first")
        raise typer.Exit(2)
    return engine


@app.command("export")
def export(
    chunk_size: Annotated[
        int,
        typer.Option(min=1, help="Outbox events (or ids) read per query; rows are read set-based per chunk."),
    ] = 50_000,
) -> None:
    """Export what the billing core recorded since the last export into RECOUP_LAKE_DIR, exactly once."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from billing_core.lake import LakeError, export_lake
    from recoup.settings import Settings

    settings = Settings()
    assert settings.lake_dir is not None
    engine = _engine(settings)
    try:
        with Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            tasks: dict[str, Any] = {}

            def on_progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(_STAGES.get(stage, stage), total=total)
                progress.update(tasks[stage], completed=done, total=total)

            result = export_lake(engine, settings.lake_dir, chunk_size=chunk_size, on_progress=on_progress)
    except LakeError as error:
        err.print(f"[red]error[/red] {error}")
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    if result.removed:
        console.print(f"removed {result.removed} files an interrupted export had left")
    if result.export_id is None:
        console.print(f"nothing new since the last export ([bold]{settings.lake_dir}[/bold])")
        return
    table = Table(title=f"Lake export {result.export_id} into {settings.lake_dir}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}")
    table.add_section()
    table.add_row("all", f"{sum(result.rows.values()):,}", style="bold")
    console.print(table)
    lo, hi = result.ranges["outbox"]
    head = result.outbox_head_at.isoformat() if result.outbox_head_at else "-"
    console.print(
        f"outbox events {lo + 1:,}..{hi:,} (up to {head}); {result.files:,} files in {result.seconds:.1f} s"
    )


@app.command("status")
def status() -> None:
    """Where the lake stands: the last export's position, and the rows of each table."""
    from billing_core.lake import TABLES, load_position, row_count
    from recoup.settings import Settings

    settings = Settings()
    assert settings.lake_dir is not None
    engine = _engine(settings)
    try:
        position = load_position(engine)
    finally:
        engine.dispose()
    if position.export_id == 0:
        console.print(f"nothing exported yet into {settings.lake_dir}: run `recoup lake export`")
        return
    marks = ", ".join(f"{source} {mark:,}" for source, mark in position.marks.items())
    console.print(f"export {position.export_id} into {settings.lake_dir}: up to {marks}")
    table = Table(title="Rows in the lake")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name in TABLES:
        table.add_row(name, f"{row_count(settings.lake_dir, name):,}")
    console.print(table)
