"""The ground-truth store: what the world drew from, kept apart from the billing database.

The runner writes one row per labelled outcome to parquet files under ``<data dir>/truth/``,
one directory per table (``truth_<name>/part-00000.parquet``...). Every table name starts with
``truth_`` so that a test can prove no feature pipeline reads them: features come from the billing
database and the lake only; the truth is for judging models (the oracle's AUC, calibration) and
for comparing policies.

=========================  ==================================================================
table                      one row per
=========================  ==================================================================
truth_customers            customer (signup): hidden traits, signup fraud probability and label
truth_invoice_payment      invoice on net terms: probability of payment by the due date, label
truth_payment_attempts     charge attempt: probability of success, outcome, decline code, fraud
truth_reminders            reminder: channel, hour, probability of acting within the horizon
truth_churn                customer and month start: voluntary churn within 30 and 90 days
truth_disputes             dispute: true category, language, friendly fraud
truth_takeovers            account takeover: day, probability
=========================  ==================================================================

Keys are the world's (``customer_key``, ``period_index``, ``attempt_number``...); the runner adds
the billing database's ids where it has them (nullable ``*_id`` columns) so the two can be joined
for evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from billing_core.errors import InvalidInput
from billing_core.simulation.fraud import FRAUD_KINDS
from billing_core.simulation.population import Signups
from billing_core.simulation.timeline import PAYDAY_CYCLES

TRUTH_DIR = "truth"

_KEY = [pa.field("customer_key", pa.int64(), nullable=False)]
_PERIOD = [pa.field("period_index", pa.int32(), nullable=False)]

SCHEMAS: dict[str, pa.Schema] = {
    "truth_customers": pa.schema(
        [
            *_KEY,
            pa.field("customer_id", pa.int64()),
            pa.field("signup_day", pa.int32(), nullable=False),
            pa.field("channel", pa.string(), nullable=False),
            pa.field("plan", pa.string(), nullable=False),
            pa.field("pays_by_invoice", pa.bool_(), nullable=False),
            pa.field("financial_health", pa.float64(), nullable=False),
            pa.field("engagement", pa.float64(), nullable=False),
            pa.field("price_sensitivity", pa.float64(), nullable=False),
            pa.field("responsiveness_email", pa.float64(), nullable=False),
            pa.field("responsiveness_sms", pa.float64(), nullable=False),
            pa.field("responsiveness_call", pa.float64(), nullable=False),
            pa.field("preferred_hour", pa.int8(), nullable=False),
            pa.field("honesty", pa.float64(), nullable=False),
            pa.field("payday_cycle", pa.string(), nullable=False),
            pa.field("payday_phase", pa.int8(), nullable=False),
            pa.field("fraud_kind", pa.string(), nullable=False),
            pa.field("p_fraud", pa.float64(), nullable=False),
            pa.field("is_fraud", pa.bool_(), nullable=False),
            pa.field("chargeback_day", pa.int32()),
        ]
    ),
    "truth_invoice_payment": pa.schema(
        [
            *_KEY,
            *_PERIOD,
            pa.field("invoice_id", pa.int64()),
            pa.field("issue_day", pa.int32(), nullable=False),
            pa.field("due_day", pa.int32(), nullable=False),
            pa.field("p_paid_by_due", pa.float64(), nullable=False),
            pa.field("paid_by_due", pa.bool_(), nullable=False),
            pa.field("pay_day", pa.int32()),  # null if never paid (e.g. written off)
        ]
    ),
    "truth_payment_attempts": pa.schema(
        [
            *_KEY,
            *_PERIOD,
            pa.field("attempt_number", pa.int16(), nullable=False),
            pa.field("invoice_id", pa.int64()),
            pa.field("attempt_id", pa.int64()),
            pa.field("day", pa.int32(), nullable=False),
            pa.field("local_hour", pa.int8(), nullable=False),
            pa.field("p_success", pa.float64(), nullable=False),
            pa.field("succeeded", pa.bool_(), nullable=False),
            pa.field("decline_code", pa.string()),  # null on success
            pa.field("p_fraud", pa.float64(), nullable=False),
            pa.field("is_fraud", pa.bool_(), nullable=False),
            pa.field("fraud_kind", pa.string(), nullable=False),
        ]
    ),
    "truth_reminders": pa.schema(
        [
            *_KEY,
            *_PERIOD,
            pa.field("reminder_number", pa.int16(), nullable=False),
            pa.field("invoice_id", pa.int64()),
            pa.field("channel", pa.string(), nullable=False),
            pa.field("day", pa.int32(), nullable=False),
            pa.field("local_hour", pa.int8(), nullable=False),
            pa.field("horizon_days", pa.float32(), nullable=False),
            pa.field("p_respond", pa.float64(), nullable=False),
            pa.field("responded", pa.bool_(), nullable=False),
        ]
    ),
    "truth_churn": pa.schema(
        [
            *_KEY,
            pa.field("customer_id", pa.int64()),
            pa.field("month_index", pa.int32(), nullable=False),
            pa.field("month_start_day", pa.int32(), nullable=False),
            pa.field("p_churn_30d", pa.float64(), nullable=False),
            pa.field("p_churn_90d", pa.float64(), nullable=False),
            pa.field("decided", pa.bool_(), nullable=False),
            pa.field("cancel_day", pa.int32()),  # null if no voluntary cancel is pending
        ]
    ),
    "truth_disputes": pa.schema(
        [
            *_KEY,
            *_PERIOD,
            pa.field("dispute_key", pa.int64(), nullable=False),
            pa.field("dispute_id", pa.int64()),
            pa.field("open_day", pa.int32(), nullable=False),
            pa.field("category", pa.string(), nullable=False),
            pa.field("language", pa.string(), nullable=False),
            pa.field("friendly_fraud", pa.bool_(), nullable=False),
            pa.field("p_dispute", pa.float64(), nullable=False),
            pa.field("typos", pa.int16(), nullable=False),
        ]
    ),
    "truth_takeovers": pa.schema(
        [
            *_KEY,
            pa.field("customer_id", pa.int64()),
            pa.field("day", pa.int32(), nullable=False),
            pa.field("p_takeover", pa.float64(), nullable=False),
        ]
    ),
}
TABLES: tuple[str, ...] = tuple(SCHEMAS)


def customer_rows(signups: Signups, customer_id: Any = None) -> dict[str, Any]:
    """The ``truth_customers`` rows of ``signups`` (``customer_id``: their database ids, if known)."""
    import numpy as np

    traits = signups.traits
    return {
        "customer_key": signups.customer_key,
        "customer_id": customer_id,
        "signup_day": signups.day,
        "channel": signups.channel_name,
        "plan": signups.plan_name,
        "pays_by_invoice": signups.pays_by_invoice,
        **{name: values for name, values in traits.columns().items() if name not in ("payday_cycle",)},
        "payday_cycle": np.asarray(PAYDAY_CYCLES)[traits.payday_cycle],
        "fraud_kind": np.asarray(FRAUD_KINDS)[signups.fraud_kind],
        "p_fraud": signups.fraud_probability,
        "is_fraud": signups.is_fraud,
        "chargeback_day": [None if d < 0 else int(d) for d in signups.chargeback_day.tolist()],
    }


def truth_dir(data_dir: str | Path) -> Path:
    """Where the truth lives for a data directory (``<data dir>/truth``)."""
    return Path(data_dir) / TRUTH_DIR


def _schema(table: str) -> pa.Schema:
    if table not in SCHEMAS:
        raise InvalidInput("table", "one of " + ", ".join(TABLES), table)
    return SCHEMAS[table]


def to_table(table: str, data: Mapping[str, Any] | Any) -> pa.Table:
    """``data`` (columns by name, a pandas DataFrame or a pyarrow Table) conformed to ``table``.

    Columns must match the schema exactly, except nullable columns, which may be left out (they
    are filled with nulls). Values are cast to the schema's types; a value that does not fit
    raises :class:`InvalidInput` naming the column.
    """
    schema = _schema(table)
    if isinstance(data, pa.Table):
        columns: dict[str, Any] = {name: data.column(name) for name in data.column_names}
    elif hasattr(data, "to_dict") and hasattr(data, "columns"):
        columns = {str(name): data[name].to_numpy() for name in data.columns}
    else:
        columns = {name: value for name, value in dict(data).items() if value is not None}
    extra = sorted(set(columns) - set(schema.names))
    if extra:
        raise InvalidInput(f"{table}.{extra[0]}", "a column of the schema", extra[0])
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidInput(table, "columns of one length", sorted(lengths))
    rows = lengths.pop() if lengths else 0
    arrays = []
    for field in schema:
        if field.name not in columns:
            if not field.nullable:
                raise InvalidInput(f"{table}.{field.name}", "a value for every row", None)
            arrays.append(pa.nulls(rows, type=field.type))
            continue
        try:
            arrays.append(pa.array(columns[field.name], type=field.type, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
            raise InvalidInput(
                f"{table}.{field.name}", str(field.type), type(columns[field.name]).__name__
            ) from exc
        if not field.nullable and arrays[-1].null_count:
            raise InvalidInput(f"{table}.{field.name}", "no nulls", f"{arrays[-1].null_count} nulls")
    return pa.Table.from_arrays(arrays, schema=schema)


class TruthStore:
    """Append-only parquet parts per truth table under ``root`` (``<data dir>/truth``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_data_dir(cls, data_dir: str | Path) -> TruthStore:
        return cls(truth_dir(data_dir))

    def write(self, table: str, data: Mapping[str, Any] | Any) -> Path:
        """Append ``data`` to ``table`` as a new part; returns the part's path."""
        arrow = to_table(table, data)
        folder = self.root / table
        folder.mkdir(parents=True, exist_ok=True)
        index = len(list(folder.glob("part-*.parquet")))
        path = folder / f"part-{index:05d}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(arrow, tmp)
        tmp.replace(path)
        return path

    def read(self, table: str) -> pa.Table:
        """Every part of ``table`` (an empty table with the schema if nothing was written)."""
        schema = _schema(table)
        parts = sorted((self.root / table).glob("part-*.parquet"))
        if not parts:
            return schema.empty_table()
        return pa.concat_tables([pq.read_table(p, schema=schema) for p in parts])

    def tables(self) -> list[str]:
        """The tables that have at least one part."""
        return [t for t in TABLES if any((self.root / t).glob("part-*.parquet"))]
