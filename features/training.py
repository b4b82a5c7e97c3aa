"""Training sets and online features, both through a model's feature service.

    store = open_repository(settings)
    spine = entity_rows("churn_v1", "data/lake")          # who, and when
    frame = training_set(store, "churn_v1", spine)        # get_historical_features
    online = online_features(store, "churn_v1", [{"customer_id": 42}])   # get_online_features

``entity_rows`` builds a service's entity rows from the lake (the moments a model is asked
something); labels are the model packages' business. Both functions fill in the request values a
service needs: ``request_at`` is each row's ``event_timestamp`` offline and the time of the call
online, so on-demand features are computed the same way on both sides.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

ENTITY_COLUMNS = {
    "dunning_v1": ["invoice_id", "customer_id"],
    "churn_v1": ["customer_id"],
    "fraud_v1": ["customer_id", "email_domain", "card_bin", "device_id", "signup_ip"],
    "disputes_v1": ["dispute_id", "customer_id"],
}
REQUEST_COLUMNS = {
    "dunning_v1": ["request_at"],
    "churn_v1": ["request_at"],
    "fraud_v1": ["request_at", "requested_amount_minor"],
    "disputes_v1": ["request_at"],
}

_SPINES = {
    # a decision about an invoice in collections: after each declined attempt
    "dunning_v1": """
        SELECT invoice_id, customer_id, event_timestamp FROM payment_attempts WHERE status = 'failed'""",
    # a customer's churn risk: at the start of every month the customer exists
    "churn_v1": """
        SELECT customer_id, unnest(generate_series(
            date_trunc('month', min(event_timestamp)) + INTERVAL 1 MONTH,
            (SELECT max(event_timestamp) FROM invoices), INTERVAL 1 MONTH)) AS event_timestamp
        FROM customers GROUP BY customer_id""",
    # every payment attempt, with the identities its customer signed up with
    "fraud_v1": """
        SELECT a.customer_id, c.email_domain, m.bin AS card_bin, c.signup_device_id AS device_id,
               c.signup_ip, a.amount_minor AS requested_amount_minor,
               a.event_timestamp - INTERVAL 1 MICROSECOND AS event_timestamp
        FROM payment_attempts a JOIN f_customers c USING (customer_id)
        LEFT JOIN f_payment_methods m ON m.payment_method_id = a.payment_method_id""",
    # every dispute, as it opens
    "disputes_v1": """
        SELECT dispute_id, customer_id, event_timestamp FROM disputes WHERE change = 'opened'""",
}


def entity_rows(service: str, lake_dir: Path | str, *, limit: int | None = None) -> pd.DataFrame:
    """The moments ``service``'s model is asked about, from the lake: its entity rows.

    Fraud rows are stamped a microsecond before the attempt they score, so its own outcome is not
    among its features; the others are stamped at the event that prompts the decision.
    """
    from features.jobs.lake import open_lake

    con, _ = open_lake(lake_dir)
    try:
        query = f"SELECT * FROM ({_SPINES[service]}) ORDER BY event_timestamp"
        if limit:
            query += f" LIMIT {int(limit)}"
        frame: pd.DataFrame = con.sql(query).df()
    finally:
        con.close()
    return frame


def _with_request(service: str, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy(deep=False)
    if "request_at" in REQUEST_COLUMNS.get(service, []) and "request_at" not in frame.columns:
        frame["request_at"] = frame["event_timestamp"]
    if (
        "requested_amount_minor" in REQUEST_COLUMNS.get(service, [])
        and "requested_amount_minor" not in frame.columns
    ):
        frame["requested_amount_minor"] = None
    for column in ENTITY_COLUMNS.get(service, []):
        if column not in frame.columns:
            frame[column] = None
    return frame


def training_set(
    store: FeatureStore, service: str, entity_df: pd.DataFrame, *, full_feature_names: bool = False
) -> pd.DataFrame:
    """``get_historical_features`` on the feature service ``service``: point in time, every row back."""
    rows = _with_request(service, entity_df)
    job = store.get_historical_features(
        entity_df=rows, features=store.get_feature_service(service), full_feature_names=full_feature_names
    )
    frame: pd.DataFrame = job.to_df()
    return frame


#: the key an absent entity is looked up with online (no row has it)
_NO_KEY: dict[str, Any] = {
    "customer_id": -1,
    "invoice_id": -1,
    "dispute_id": -1,
    "email_domain": "",
    "card_bin": "",
    "device_id": "",
    "signup_ip": "",
}

_SERVICES: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _service(store: FeatureStore, name: str) -> Any:
    """The feature service ``name``, read from the registry once per store.

    Building it from the registry costs milliseconds (every field is type-checked); a serving
    process asks for it on every request.
    """
    services = _SERVICES.setdefault(store, {})
    if name not in services:
        services[name] = store.get_feature_service(name, allow_cache=True)
    return services[name]


def online_features(
    store: FeatureStore,
    service: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    at: datetime | None = None,
    full_feature_names: bool = False,
) -> dict[str, list[Any]]:
    """``get_online_features`` on the feature service ``service``, request values filled in.

    ``at`` (default: now) is the request time of rows that do not carry ``request_at``.
    """
    needs = REQUEST_COLUMNS.get(service, [])
    when = at or datetime.now(UTC)
    filled = []
    absent: dict[str, set[int]] = {}
    for i, row in enumerate(rows):
        row = dict(row)
        if "request_at" in needs:
            row.setdefault("request_at", when)
        if "requested_amount_minor" in needs:
            row.setdefault("requested_amount_minor", None)
        for column in ENTITY_COLUMNS.get(service, []):
            if row.get(column) is None:
                # Feast cannot look up a null key; a key no row has finds nothing, as offline
                row[column] = _NO_KEY[column]
                absent.setdefault(column, set()).add(i)
        filled.append(row)
    response = store.get_online_features(
        features=_service(store, service), entity_rows=filled, full_feature_names=full_feature_names
    )
    result: dict[str, list[Any]] = response.to_dict()
    for column, positions in absent.items():
        if column in result:
            result[column] = [None if i in positions else v for i, v in enumerate(result[column])]
    return result


def same_value(offline: Any, online: Any) -> bool:
    """Whether a training set's value and the online store's answer for it are the same feature value.

    Missing is missing on both sides (None, NaN, NaT); instants compare as instants, booleans as
    booleans, numbers within a relative 1e-9 (the online store keeps floats as doubles).
    """
    import math

    import numpy as np
    import pandas as pd

    def missing(value: Any) -> bool:
        return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT

    if missing(offline) or missing(online):
        return missing(offline) and missing(online)
    if isinstance(offline, pd.Timestamp) or isinstance(online, datetime):
        return bool(pd.Timestamp(offline) == pd.Timestamp(online))
    if isinstance(offline, (bool, np.bool_)) or isinstance(online, bool):
        return bool(offline) == bool(online)
    if isinstance(online, (int, float)):
        return math.isclose(float(offline), float(online), rel_tol=1e-9, abs_tol=1e-9)
    return bool(offline == online)
