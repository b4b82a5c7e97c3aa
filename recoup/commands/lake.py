"""``recoup lake``: the partitioned parquet lake the models read."""

from __future__ import annotations

import typer

app = typer.Typer(help="The lake: partitioned parquet for the feature store.", no_args_is_help=True)
