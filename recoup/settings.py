"""Settings, read from the environment (prefix ``RECOUP_``) and an optional ``.env`` file.

=============================  ==========================================================
``RECOUP_DATA_DIR``            where embedded stores live (default ``./data``)
``RECOUP_DATABASE_URL``        billing database; default a SQLite file in the data dir;
                               ``postgresql+psycopg://user@host/db`` for PostgreSQL
``RECOUP_GATEWAY_SEED``        seed of the simulated payment gateway
``RECOUP_INVOICE_PREFIX``      prefix of invoice numbers (``INV``)
``RECOUP_DAYS_UNTIL_DUE``      days from finalization to an invoice's due date (0)
=============================  ==========================================================
"""

from __future__ import annotations

import os
from pathlib import Path

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

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'recoup.db').resolve()}"
        return self
