"""Feature services: what each model is trained on and served with, versioned per model.

A model's training set (``get_historical_features``) and its online features
(``get_online_features``) both name its service, so both sides read the same features. A
change to a model's features is a new service (``dunning_v2``) beside the old one, never an edit.

Entity columns each service needs in its entity rows, and request values (``features.training``
fills them in):

* ``dunning_v1``: ``invoice_id``, ``customer_id``; ``request_at``
* ``churn_v1``: ``customer_id``; ``request_at``
* ``fraud_v1``: ``customer_id``, ``email_domain``, ``card_bin``, ``device_id``, ``signup_ip``
  (any may be null); ``request_at``, ``requested_amount_minor``
* ``disputes_v1``: ``dispute_id``, ``customer_id``; ``request_at``
"""

from __future__ import annotations

from feast import FeatureService

from features.repo.feature_views import (
    bin_realtime,
    bin_velocity,
    churn_signals,
    customer_payment,
    customer_realtime,
    device_velocity,
    dispute_context,
    dunning_context,
    email_domain_velocity,
    invoice_context,
    ip_velocity,
    payment_risk,
    usage_trend,
)
from features.repo.on_demand_feature_views import (
    customer_request,
    dunning_request,
    fraud_request,
    invoice_request,
)

dunning_v1 = FeatureService(
    name="dunning_v1",
    features=[
        dunning_context,
        invoice_context,
        customer_payment,
        customer_realtime,
        dunning_request,
        invoice_request,
        customer_request,
    ],
    description="dunning timing: payment propensity, retry timing and reminder channel",
    tags={"model": "dunning", "version": "1"},
)

churn_v1 = FeatureService(
    name="churn_v1",
    features=[customer_payment, usage_trend, churn_signals, customer_request],
    description="churn within 30 and 90 days, voluntary and involuntary",
    tags={"model": "churn", "version": "1"},
)

fraud_v1 = FeatureService(
    name="fraud_v1",
    features=[
        payment_risk,
        email_domain_velocity,
        bin_velocity,
        device_velocity,
        ip_velocity,
        customer_realtime,
        bin_realtime,
        fraud_request,
        customer_request,
    ],
    description="fraud anomaly scoring of signups and payments",
    tags={"model": "fraud", "version": "1"},
)

disputes_v1 = FeatureService(
    name="disputes_v1",
    features=[dispute_context, customer_payment, customer_request],
    description="dispute classification: the customer's words and the context of the charge",
    tags={"model": "disputes", "version": "1"},
)

SERVICES = {s.name: s for s in (dunning_v1, churn_v1, fraud_v1, disputes_v1)}


__all__ = ["SERVICES", "churn_v1", "disputes_v1", "dunning_v1", "fraud_v1"]
