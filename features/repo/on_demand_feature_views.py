"""On-demand feature views: values that depend on the request itself (its time, its amount).

They run in Python mode. Each transformation takes a mapping of column name to values: lists of
Python values (online, and in the stock offline store) or numpy arrays (the ASOF offline store
passes whole columns), and returns the same kind, so a training set of a million rows is computed
with numpy while an online request pays a few microseconds.

Feast keeps each transformation's source text in the registry and runs it in a bare namespace, so
each imports its helpers (``features.transforms``) in its own body. Output fields carry no
description (Feast compares a declared field with the one it infers, description included);
docs/features.md describes them.

Training sets set ``request_at`` to each row's ``event_timestamp`` (``features.training``), so the
request-time values a model learns from are those it will be served.
"""

from __future__ import annotations

from typing import Any

from feast import Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64

from features.repo.data_sources import request_time, requested_amount
from features.repo.feature_views import customer_payment, dunning_context, invoice_context, payment_risk


@on_demand_feature_view(
    sources=[customer_payment, request_time],
    schema=[Field(name="tenure_days", dtype=Float64)],
    mode="python",
    description="the customer's tenure at request time",
)
def customer_request(inputs: dict[str, Any]) -> dict[str, Any]:
    from features.transforms import out, seconds

    at = inputs["request_at"]
    tenure = (seconds(at) - seconds(inputs["signup_at"])) / 86_400
    return {"tenure_days": out(tenure, at)}


@on_demand_feature_view(
    sources=[dunning_context, request_time],
    schema=[
        Field(name="hours_since_failure_now", dtype=Float64),
        Field(name="hours_since_reminder_now", dtype=Float64),
        Field(name="days_since_first_failure_now", dtype=Float64),
        Field(name="request_hour", dtype=Float64),
        Field(name="request_day_of_month", dtype=Float64),
        Field(name="request_weekday", dtype=Float64),
    ],
    mode="python",
    description="a dunning decision's timing at request time",
)
def dunning_request(inputs: dict[str, Any]) -> dict[str, Any]:
    from features.transforms import out, seconds, utc_fields

    like = inputs["request_at"]
    at = seconds(like)
    hour, day_of_month, weekday = utc_fields(at)
    return {
        "hours_since_failure_now": out((at - seconds(inputs["last_failure_at"])) / 3_600, like),
        "hours_since_reminder_now": out((at - seconds(inputs["last_reminder_at"])) / 3_600, like),
        "days_since_first_failure_now": out((at - seconds(inputs["first_failure_at"])) / 86_400, like),
        "request_hour": out(hour, like),
        "request_day_of_month": out(day_of_month, like),
        "request_weekday": out(weekday, like),
    }


@on_demand_feature_view(
    sources=[invoice_context, request_time],
    schema=[
        Field(name="days_until_due_now", dtype=Float64),
        Field(name="card_expires_in_days_now", dtype=Float64),
    ],
    mode="python",
    description="an invoice's due date and card expiry relative to the request",
)
def invoice_request(inputs: dict[str, Any]) -> dict[str, Any]:
    from features.transforms import out, seconds

    like = inputs["request_at"]
    at = seconds(like)
    return {
        "days_until_due_now": out((seconds(inputs["due_at"]) - at) / 86_400, like),
        "card_expires_in_days_now": out((seconds(inputs["card_expires_at"]) - at) / 86_400, like),
    }


@on_demand_feature_view(
    sources=[payment_risk, customer_payment, requested_amount],
    schema=[
        Field(name="amount_zscore_requested", dtype=Float64),
        Field(name="amount_over_median_requested", dtype=Float64),
    ],
    mode="python",
    description="the amount being scored, against the customer's history",
)
def fraud_request(inputs: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from features.transforms import numbers, out

    like = inputs["requested_amount_minor"]
    amount = numbers(like)
    mean, std = numbers(inputs["attempt_amount_mean"]), numbers(inputs["attempt_amount_std"])
    median = numbers(inputs["median_invoice_minor"])
    with np.errstate(divide="ignore", invalid="ignore"):
        zscore = np.where(std > 0, (amount - mean) / np.where(std > 0, std, 1), np.nan)
        ratio = np.where(median > 0, amount / np.where(median > 0, median, 1), np.nan)
    return {"amount_zscore_requested": out(zscore, like), "amount_over_median_requested": out(ratio, like)}


ON_DEMAND_VIEWS = {v.name: v for v in (customer_request, dunning_request, invoice_request, fraud_request)}

__all__ = ["ON_DEMAND_VIEWS", "customer_request", "dunning_request", "fraud_request", "invoice_request"]
