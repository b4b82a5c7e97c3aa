"""``recoup features``: the feature store (Feast) over the lake.

feast, DuckDB, pyarrow and pandas are imported inside the commands, so that ``recoup --help`` stays
fast.
"""

from __future__ import annotations

import contextlib
import signal
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from features.config import FeatureStoreSettings

app = typer.Typer(
    help="The feature store: feature tables from the lake, Feast registry, online store, push.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)


def _settings() -> FeatureStoreSettings:
    from features.config import FeatureStoreConfigError, FeatureStoreSettings
    from recoup.settings import Settings

    settings = Settings()
    try:
        return FeatureStoreSettings.from_env(settings.data_dir, settings.lake_dir)
    except FeatureStoreConfigError as error:
        err.print(f"[red]error[/red] {error}")
        raise typer.Exit(2) from None


def _instant(value: str, field: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        err.print(
            f"[red]error[/red] {field}: expected a date or an ISO 8601 instant with offset, got {value!r}"
        )
        raise typer.Exit(2)
    return parsed.astimezone(UTC)


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


@app.command("build")
def build(
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Compute the tables as of this instant (default: the lake's latest event)."
        ),
    ] = None,
    table: Annotated[list[str] | None, typer.Option("--table", help="Only this table (repeatable).")] = None,
) -> None:
    """Compute every feature table from the lake (RECOUP_LAKE_DIR) into <features dir>/tables."""
    from features.jobs import EmptyLake, build_tables

    settings = _settings()
    when = _instant(as_of, "as_of") if as_of else None
    if not settings.lake_dir.exists():
        err.print(f"[red]error[/red] no lake at {settings.lake_dir}: run `recoup lake export` first")
        raise typer.Exit(2)
    try:
        with _progress() as progress:
            task = progress.add_task("feature tables", total=None)

            def on_table(name: str, done: int, total: int) -> None:
                progress.update(task, description=name or "feature tables", completed=done, total=total)

            result = build_tables(
                settings.lake_dir, settings.tables_dir, as_of=when, names=table, on_table=on_table
            )
    except (EmptyLake, KeyError) as error:
        err.print(f"[red]error[/red] {error}")
        raise typer.Exit(2) from None
    out = Table(title=f"Feature tables as of {result.as_of.isoformat()} in {settings.tables_dir}")
    out.add_column("table")
    out.add_column("rows", justify="right")
    out.add_column("seconds", justify="right")
    for name, count in result.rows.items():
        out.add_row(name, f"{count:,}", f"{result.seconds[name]:.2f}")
    console.print(out)
    rows = result.rows
    if "device_velocity" in rows and not rows["device_velocity"] and not rows.get("ip_velocity"):
        console.print("device and IP velocity are empty: no customer in the lake has a signup device or IP")
    if "bin_velocity" in rows and not rows["bin_velocity"]:
        console.print("BIN velocity is empty: the lake has no payment methods")


@app.command("apply")
def apply_() -> None:
    """Register the repository (features/repo) in the Feast registry; remove what it no longer defines."""
    from features.store import apply, open_repository

    settings = _settings()
    with err.status("registering the feature repository"):
        store = open_repository(settings)
        result = apply(store, settings)
    out = Table(title=f"Feast project {settings.project} ({settings.online_kind} online store)")
    out.add_column("kind")
    out.add_column("registered")
    for kind, names in result.registered.items():
        out.add_row(kind, ", ".join(names))
    console.print(out)
    if result.removed:
        console.print("removed: " + ", ".join(result.removed))


@app.command("materialize")
def materialize_(
    end: Annotated[
        str | None,
        typer.Option(help="Up to this instant (default: the instant the tables were built as of)."),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Everything, not only what is new since the last run.")
    ] = False,
    view: Annotated[
        list[str] | None, typer.Option("--view", help="Only this feature view (repeatable).")
    ] = None,
) -> None:
    """Load the feature tables' new rows into the online store (incremental per feature view)."""
    from features.store import materialize, open_repository

    settings = _settings()
    until = _instant(end, "end") if end else None
    store = open_repository(settings)
    try:
        with _progress() as progress:
            task = progress.add_task("feature views", total=None)

            def on_view(name: str, done: int, total: int) -> None:
                progress.update(task, description=name or "feature views", completed=done, total=total)

            result = materialize(store, settings, end=until, full=full, views=view, on_view=on_view)
    except FileNotFoundError as error:
        err.print(f"[red]error[/red] {error}")
        raise typer.Exit(2) from None
    out = Table(title=f"Materialized up to {result.end.isoformat()} ({settings.online_kind} online store)")
    out.add_column("feature view")
    out.add_column("from")
    out.add_column("entities written", justify="right")
    for name, (start, rows) in result.views.items():
        out.add_row(name, "the beginning" if start.year == 1970 else start.isoformat(), f"{rows:,}")
    console.print(out)
    console.print(f"{sum(r for _, r in result.views.values()):,} entities in {result.seconds:.1f} s")


@app.command("push")
def push(
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep consuming new events until interrupted.")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between polls when idle (--follow).")
    ] = 1.0,
    page_size: Annotated[int, typer.Option(min=1, help="Outbox events read per page.")] = 10_000,
    from_head: Annotated[
        bool, typer.Option("--from-head", help="Start at the outbox's head, skipping history (first run).")
    ] = False,
) -> None:
    """Push the real-time counters online from the billing core's payment events (consumer 'features')."""
    from sqlalchemy import inspect

    from billing_core.db.engine import create_engine
    from features.push import OutboxPusher, PushResult
    from features.store import open_repository
    from recoup.settings import Settings

    settings = _settings()
    engine = create_engine(Settings().database_url)
    if not inspect(engine).has_table("consumer_offsets"):
        engine.dispose()
        err.print("[red]error[/red] the billing database has no outbox yet: run `recoup db upgrade` first")
        raise typer.Exit(2)
    store = open_repository(settings)
    pusher = OutboxPusher.for_store(engine, store, page_size=page_size)

    def report(result: PushResult) -> None:
        pushed = ", ".join(f"{n:,} to {source}" for source, n in result.pushed.items())
        clock = result.clock.isoformat() if result.clock else "-"
        console.print(
            f"events up to {result.position:,} ({result.payment_events:,} payments, clock {clock}): pushed {pushed}"
        )

    try:
        if from_head:
            console.print(f"starting at the outbox's head, event {pusher.skip_to_head():,}")
        if not follow:
            report(pusher.run_once())
            return
        stopping = {"now": False}

        def stop(*_: object) -> None:
            stopping["now"] = True

        signal.signal(signal.SIGTERM, stop)
        with contextlib.suppress(KeyboardInterrupt):
            pusher.follow(interval=interval, should_stop=lambda: stopping["now"], on_result=report)
        console.print(f"stopped at event {pusher.position:,}")
    finally:
        engine.dispose()


@app.command("status")
def status() -> None:
    """The feature tables (rows, as of) and where each feature view's materialization stands."""
    from features.jobs import read_build, table_path
    from features.jobs.schemas import TABLES

    settings = _settings()
    record = read_build(settings.tables_dir)
    if record is None:
        console.print(f"no feature tables in {settings.tables_dir}: run `recoup features build`")
        return
    rows: dict[str, int] = record.get("rows", {})  # type: ignore[assignment]
    out = Table(title=f"Feature tables as of {record['as_of']} in {settings.tables_dir}")
    out.add_column("table")
    out.add_column("rows", justify="right")
    out.add_column("materialized up to")
    ends: dict[str, str] = {}
    if (settings.features_dir / "registry.db").exists() or settings.registry:
        from features.store import open_repository

        store = open_repository(settings)
        for view in store.list_feature_views():
            end = view.most_recent_end_time
            ends[view.name] = end.isoformat() if end else "never"
    for name in TABLES:
        present = table_path(settings.tables_dir, name).exists()
        out.add_row(name, f"{rows.get(name, 0):,}" if present else "missing", ends.get(name, "not applied"))
    console.print(out)


@app.command("env")
def env() -> None:
    """Print the variables features/repo/feature_store*.yaml need, to run the feast command line by hand."""
    settings = _settings()
    for name, value in settings.environment().items():
        console.print(f"export {name}={value}", highlight=False, soft_wrap=True)
    console.print(
        f"# then: feast -c features/repo -f {settings.yaml_path} plan", highlight=False, soft_wrap=True
    )
