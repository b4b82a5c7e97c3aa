"""The notifications part's exceptions, under the billing core's one tree.

::

    RecoupError
    ├── InvalidInput                 bad options or a bad phone number (field, expected, got)
    └── NotificationError
        └── RenderError              a template is missing or refers to a value it was not given

A delivery failure is not an exception: senders answer with a :class:`~billing_core.notifications.
senders.Delivery` value, as the payment gateway answers with a decline. A :class:`RenderError` is
caught per message by the dispatcher, which records that notification as ``undeliverable`` with
the error, so one bad template never stops the others.
"""

from __future__ import annotations

from billing_core.errors import RecoupError


class NotificationError(RecoupError):
    """Base class of the errors raised on purpose by the notifications part."""

    code = "notification_error"


class RenderError(NotificationError):
    """A message could not be rendered: fix the template (or its values) named in the message."""

    code = "render_error"

    def __init__(self, template: str, reason: str) -> None:
        self.template = template
        self.reason = reason
        super().__init__(f"cannot render {template}: {reason}")
