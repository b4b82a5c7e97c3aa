"""The feature views: one per feature table, their schemas derived from ``features.jobs.schemas``.

The two real-time counters (``customer_realtime``, ``bin_realtime``) read from push sources, whose
batch side is their feature table: ``recoup features push`` writes them online as payments happen,
and materialization and training sets read the table.
"""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
from feast import FeatureView, Field
from feast.types import Bool, FeastType, Float64, Int32, Int64, String, UnixTimestamp

from features.jobs.schemas import TABLES
from features.repo import data_sources as sources
from features.repo.entities import BY_NAME


def feast_type(arrow: pa.DataType) -> FeastType:
    if pa.types.is_int32(arrow):
        return Int32
    if pa.types.is_int64(arrow):
        return Int64
    if pa.types.is_floating(arrow):
        return Float64
    if pa.types.is_boolean(arrow):
        return Bool
    if pa.types.is_string(arrow):
        return String
    if pa.types.is_timestamp(arrow):
        return UnixTimestamp
    raise TypeError(f"no Feast type for {arrow}")


def _view(name: str, source: object) -> FeatureView:
    table = TABLES[name]
    return FeatureView(
        name=name,
        entities=[BY_NAME[k.entity] for k in table.keys],
        ttl=table.ttl or timedelta(0),
        schema=[Field(name=c.name, dtype=feast_type(c.type), description=c.meaning) for c in table.columns],
        source=source,  # type: ignore[arg-type]
        online=True,
        description=table.description,
        tags={"table": name},
    )


customer_payment = _view("customer_payment", sources.customer_payment_source)
invoice_context = _view("invoice_context", sources.invoice_context_source)
dunning_context = _view("dunning_context", sources.dunning_context_source)
usage_trend = _view("usage_trend", sources.usage_trend_source)
churn_signals = _view("churn_signals", sources.churn_signals_source)
email_domain_velocity = _view("email_domain_velocity", sources.email_domain_velocity_source)
bin_velocity = _view("bin_velocity", sources.bin_velocity_source)
device_velocity = _view("device_velocity", sources.device_velocity_source)
ip_velocity = _view("ip_velocity", sources.ip_velocity_source)
payment_risk = _view("payment_risk", sources.payment_risk_source)
customer_realtime = _view("customer_realtime", sources.customer_realtime_push)
bin_realtime = _view("bin_realtime", sources.bin_realtime_push)
dispute_context = _view("dispute_context", sources.dispute_context_source)

VIEWS: dict[str, FeatureView] = {name: globals()[name] for name in TABLES}

__all__ = [
    "VIEWS",
    "bin_realtime",
    "bin_velocity",
    "churn_signals",
    "customer_payment",
    "customer_realtime",
    "device_velocity",
    "dispute_context",
    "dunning_context",
    "email_domain_velocity",
    "invoice_context",
    "ip_velocity",
    "payment_risk",
    "usage_trend",
]
