"""``recoup notify``: emails and text messages from the outbox, after their transactions commit."""

from __future__ import annotations

import typer

app = typer.Typer(help="Notifications: send what the outbox asks for.", no_args_is_help=True)
