"""``recoup dunning``: the collections engine for failed payments and overdue invoices."""

from __future__ import annotations

import typer

app = typer.Typer(help="Dunning: retries, reminders, suspension and write-off.", no_args_is_help=True)
