"""Settings, read from the environment (prefix ``RECOUP_``) and an optional ``.env`` file.

=============================  ==========================================================
``RECOUP_DATA_DIR``            where embedded stores live (default ``./data``)
``RECOUP_DATABASE_URL``        billing database; default a SQLite file in the data dir;
                               ``postgresql+psycopg://user@host/db`` for PostgreSQL
``RECOUP_GATEWAY_SEED``        seed of the simulated payment gateway
``RECOUP_INVOICE_PREFIX``      prefix of invoice numbers (``INV``)
``RECOUP_DAYS_UNTIL_DUE``      days from finalization to an invoice's due date (0)
``RECOUP_API_HOST``            where ``recoup api`` listens (``127.0.0.1``)
``RECOUP_API_PORT``            its port (8000)
``RECOUP_SMTP_HOST``           SMTP server for notifications (``127.0.0.1``)
``RECOUP_SMTP_PORT``           its port (8025)
``RECOUP_SMTP_SENDER``         the From address of notifications
``RECOUP_SMTP_USERNAME``       SMTP login, if the server wants one
``RECOUP_SMTP_PASSWORD``       its password
``RECOUP_SMTP_STARTTLS``       upgrade the connection with STARTTLS (false)
``RECOUP_EMAIL_BACKEND``       ``smtp`` (default) or ``maildir`` (deliver into a local Maildir)
``RECOUP_MAILDIR``             the Maildir for ``maildir`` (default ``<data dir>/mail``)
``RECOUP_LAKE_DIR``            where the parquet lake lives (default ``<data dir>/lake``)
``RECOUP_NOTIFY_EVENTS``       event types that send notifications, comma-separated
                               (default: payment and dunning events; see docs/notifications.md)
=============================  ==========================================================
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# No network on machines that run Recoup's jobs: the libraries must not phone home.
for _name in ("DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY", "BENTOML_DO_NOT_TRACK"):
    os.environ.setdefault(_name, "true")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECOUP_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("data"))
    database_url: str = ""
    gateway_seed: int = 0
    invoice_prefix: str = "INV"
    credit_note_prefix: str = "CN"
    days_until_due: int = Field(default=0, ge=0, le=365)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=8025, ge=1, le=65535)
    smtp_sender: str = "Recoup Billing <billing@recoup.invalid>"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    email_backend: Literal["smtp", "maildir"] = "smtp"
    maildir: Path | None = None
    lake_dir: Path | None = None
    notify_events: str = ""

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'recoup.db').resolve()}"
        if self.lake_dir is None:
            self.lake_dir = self.data_dir / "lake"
        if self.maildir is None:
            self.maildir = self.data_dir / "mail"
        return self
