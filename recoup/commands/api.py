"""``recoup api``: the billing REST API, served by uvicorn on 127.0.0.1.

``recoup api`` alone serves the API on ``RECOUP_API_HOST``:``RECOUP_API_PORT`` (127.0.0.1:8000);
the sub-commands manage api keys. FastAPI and uvicorn are imported inside the commands, so that
``recoup --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="The billing REST API: `recoup api` serves it; the sub-commands manage api keys.",
    invoke_without_command=True,
)
console = Console()
err = Console(stderr=True)

ROLES = "service, finance, analyst or admin"


@app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default RECOUP_API_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default RECOUP_API_PORT).", min=1, max=65535)
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the billing REST API with uvicorn (the database must be migrated: `recoup db upgrade`)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from billing_core.api.app import create_app_from_settings
    from recoup.settings import Settings

    settings = Settings()
    application = create_app_from_settings(settings)
    err.print(
        f"serving the billing API on http://{host or settings.api_host}:{port or settings.api_port}"
        " (docs at /docs)"
    )
    uvicorn.run(
        application,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level=log_level,
        access_log=access_log,
    )


@app.command("create-key")
def create_key(
    role: Annotated[str, typer.Option(help=f"The key's role: {ROLES}.")],
    name: Annotated[str, typer.Option(help="Who or what uses the key, such as 'meter-eu-1'.")],
) -> None:
    """Create an api key and print it, once: only its hash is stored."""
    from billing_core.context import BillingContext
    from billing_core.errors import InvalidInput
    from billing_core.services.create_api_key import create_api_key
    from recoup.settings import Settings

    ctx = BillingContext.from_settings(Settings())
    try:
        created = create_api_key(ctx, name=name, role=role)
    except InvalidInput as error:
        err.print(
            f"[red]error[/red] {error.code}: field [bold]{error.field}[/bold]: expected {error.expected}"
        )
        raise typer.Exit(2) from error
    finally:
        ctx.engine.dispose()
    err.print(f"api key {created.id} ({created.role}, {created.name!r}); it is shown this once:")
    print(created.key)


@app.command("revoke-key")
def revoke_key(
    key_id: Annotated[int, typer.Argument(help="The key's id (the number in rk_<id>_...).")],
) -> None:
    """Revoke an api key: servers refuse it within a second."""
    from billing_core.context import BillingContext
    from billing_core.errors import InvalidInput
    from billing_core.services.revoke_api_key import revoke_api_key
    from recoup.settings import Settings

    ctx = BillingContext.from_settings(Settings())
    try:
        revoked = revoke_api_key(ctx, api_key_id=key_id)
    except InvalidInput as error:
        err.print(
            f"[red]error[/red] {error.code}: field [bold]{error.field}[/bold]: expected {error.expected}"
        )
        raise typer.Exit(2) from error
    finally:
        ctx.engine.dispose()
    console.print(
        f"api key {revoked.id} ({revoked.role}, {revoked.name!r}) revoked at {revoked.revoked_at.isoformat()}"
    )


@app.command("list-keys")
def list_keys() -> None:
    """List api keys (never their secrets)."""
    from rich.table import Table

    from billing_core import queries
    from billing_core.context import BillingContext
    from recoup.settings import Settings

    ctx = BillingContext.from_settings(Settings())
    try:
        rows: list[dict[str, object]] = []
        after = None
        with ctx.read() as conn:
            while True:
                page = queries.list_api_keys(conn, limit=queries.MAX_PAGE, starting_after=after)
                rows += page.data
                if not page.has_more:
                    break
                after = page.data[-1]["id"]
    finally:
        ctx.engine.dispose()
    table = Table(title="API keys")
    for column in ("id", "name", "role", "created", "revoked"):
        table.add_column(column)
    for row in reversed(rows):
        revoked = row["revoked_at"]
        table.add_row(
            str(row["id"]),
            str(row["name"]),
            str(row["role"]),
            str(row["created_at"]),
            str(revoked) if revoked else "",
        )
    console.print(table)


@app.command("openapi")
def openapi() -> None:
    """Print the API's OpenAPI document (JSON)."""
    import json

    from billing_core.api.app import create_app
    from billing_core.context import BillingContext
    from billing_core.db.engine import create_engine

    application = create_app(BillingContext(create_engine("sqlite://")))
    print(json.dumps(application.openapi(), indent=2))
