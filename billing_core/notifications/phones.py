"""Use case: record (or remove) the mobile number a customer agreed to receive text messages on.

A dunning reminder the engine wants sent by SMS goes by email to a customer without a number.
The number itself stays out of the outbox (which is kept for ever): the event says only that
consent was given or withdrawn.
"""

from __future__ import annotations

import re

from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.errors import InvalidInput

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def set_sms_phone(ctx: BillingContext, *, customer_id: int, phone: str | None) -> str | None:
    """Store ``phone`` (E.164, such as ``+4915112345678``) for the customer; ``None`` removes it."""
    if phone is not None and (not isinstance(phone, str) or not _E164.match(phone)):
        raise InvalidInput("phone", "an E.164 number such as '+4915112345678', or null", phone)
    with ctx.transaction() as tx:
        repository.get_customer(tx.conn, customer_id)
        bulk = tx.bulk
        bulk.execute("DELETE FROM notification_phones WHERE customer_id = ?", (customer_id,))
        if phone is not None:
            bulk.execute(
                "INSERT INTO notification_phones (customer_id, phone, consented_at) VALUES (?, ?, ?)",
                (customer_id, phone, bulk.instant(tx.now)),
            )
        tx.emit(
            "customer.sms_consent_changed",
            "customer",
            customer_id,
            customer_id=customer_id,
            consented=phone is not None,
        )
    return phone
