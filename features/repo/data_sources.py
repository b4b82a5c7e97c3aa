"""The data sources: one parquet file per feature table, two push sources, two request sources.

The files live in ``<RECOUP_FEATURES_DIR>/tables`` (``features.config.tables_dir_from_env``), read
when this module is imported; ``features.store.definitions`` re-imports the repository when that
directory changes.
"""

from __future__ import annotations

from feast import Field, FileSource, PushSource, RequestSource
from feast.types import Int64, UnixTimestamp

from features.config import tables_dir_from_env
from features.jobs.schemas import TABLES

TABLES_DIR = tables_dir_from_env()


def _file(name: str) -> FileSource:
    return FileSource(
        name=name,
        path=str(TABLES_DIR / f"{name}.parquet"),
        timestamp_field="event_timestamp",
        description=TABLES[name].description,
    )


customer_payment_source = _file("customer_payment")
invoice_context_source = _file("invoice_context")
dunning_context_source = _file("dunning_context")
usage_trend_source = _file("usage_trend")
churn_signals_source = _file("churn_signals")
email_domain_velocity_source = _file("email_domain_velocity")
bin_velocity_source = _file("bin_velocity")
device_velocity_source = _file("device_velocity")
ip_velocity_source = _file("ip_velocity")
payment_risk_source = _file("payment_risk")
customer_realtime_source = _file("customer_realtime")
bin_realtime_source = _file("bin_realtime")
dispute_context_source = _file("dispute_context")

customer_realtime_push = PushSource(
    name="customer_realtime_push",
    batch_source=customer_realtime_source,
    description="failed attempts per customer in the last 24 hours, pushed by `recoup features push`",
)
bin_realtime_push = PushSource(
    name="bin_realtime_push",
    batch_source=bin_realtime_source,
    description="attempts per card BIN in the last hour, pushed by `recoup features push`",
)

request_time = RequestSource(
    name="request_time",
    schema=[Field(name="request_at", dtype=UnixTimestamp)],
    description="the instant a prediction is asked for (training sets use each row's event_timestamp)",
)
requested_amount = RequestSource(
    name="requested_amount",
    schema=[Field(name="requested_amount_minor", dtype=Int64)],
    description="the amount of the payment being scored, in minor units of the customer's currency",
)

FILES: dict[str, FileSource] = {name: globals()[f"{name}_source"] for name in TABLES}
SOURCES = [*FILES.values(), customer_realtime_push, bin_realtime_push, request_time, requested_amount]

__all__ = [
    "FILES",
    "SOURCES",
    "bin_realtime_push",
    "bin_realtime_source",
    "bin_velocity_source",
    "churn_signals_source",
    "customer_payment_source",
    "customer_realtime_push",
    "customer_realtime_source",
    "device_velocity_source",
    "dispute_context_source",
    "dunning_context_source",
    "email_domain_velocity_source",
    "invoice_context_source",
    "ip_velocity_source",
    "payment_risk_source",
    "request_time",
    "requested_amount",
    "usage_trend_source",
]
