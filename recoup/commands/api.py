"""``recoup api``: the billing REST API, served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import typer

app = typer.Typer(help="The billing REST API.", no_args_is_help=True)
