"""The entities features are keyed by."""

from __future__ import annotations

from feast import Entity, ValueType

customer = Entity(
    name="customer", join_keys=["customer_id"], value_type=ValueType.INT64, description="a billing customer"
)
invoice = Entity(
    name="invoice", join_keys=["invoice_id"], value_type=ValueType.INT64, description="an invoice"
)
dispute = Entity(
    name="dispute", join_keys=["dispute_id"], value_type=ValueType.INT64, description="a customer's dispute"
)
email_domain = Entity(
    name="email_domain",
    join_keys=["email_domain"],
    value_type=ValueType.STRING,
    description="the domain of a customer's email address, lower case",
)
card_bin = Entity(
    name="card_bin",
    join_keys=["card_bin"],
    value_type=ValueType.STRING,
    description="the first digits of a card number (its issuer)",
)
device = Entity(
    name="device",
    join_keys=["device_id"],
    value_type=ValueType.STRING,
    description="the device a customer signed up on",
)
signup_ip = Entity(
    name="signup_ip",
    join_keys=["signup_ip"],
    value_type=ValueType.STRING,
    description="the IP address a customer signed up from",
)

ENTITIES = [customer, invoice, dispute, email_domain, card_bin, device, signup_ip]
BY_NAME = {e.name: e for e in ENTITIES}

__all__ = ["ENTITIES", "card_bin", "customer", "device", "dispute", "email_domain", "invoice", "signup_ip"]
