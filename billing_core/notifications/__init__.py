"""Notifications: emails, text messages and call tasks from the outbox, after their transactions commit.

The billing core and the dunning engine never send anything themselves: their use cases append
events to the outbox, and :func:`dispatch` turns the committed ones into messages in the
customer's language, sends them through an :class:`EmailSender` (SMTP) and an
:class:`SmsSender`, and records each one in ``notifications``. See ``docs/notifications.md``.

Call it after any run that writes events::

    from billing_core.notifications import LoggingSmsSender, SmtpEmailSender, dispatch

    result = dispatch(ctx, email=SmtpEmailSender.from_settings(settings), sms=LoggingSmsSender())

Modules: :mod:`.messages` (which event says what, pure), :mod:`.render` (Jinja2 templates per
kind and language, Babel formatting), :mod:`.senders` (the edges and their fakes),
:mod:`.dispatcher` (offset, claims, delivery, retries), :mod:`.calls` and :mod:`.phones` (use
cases for call tasks and SMS consent).
"""

from __future__ import annotations

from billing_core.notifications.calls import CallTask, complete_call_task, open_call_tasks
from billing_core.notifications.dispatcher import (
    CONSUMER,
    DispatchOptions,
    DispatchResult,
    NotificationStatus,
    dispatch,
    dispatch_with_settings,
    notification_status,
)
from billing_core.notifications.errors import NotificationError, RenderError
from billing_core.notifications.messages import DEFAULT_EVENTS, SUPPORTED_EVENTS, Channel, Kind
from billing_core.notifications.phones import set_sms_phone
from billing_core.notifications.render import Renderer
from billing_core.notifications.senders import (
    Delivery,
    EmailSender,
    LoggingSmsSender,
    MaildirEmailSender,
    OutgoingEmail,
    OutgoingSms,
    RecordingEmailSender,
    RecordingSmsSender,
    SmsSender,
    SmtpEmailSender,
)

__all__ = [
    "CONSUMER",
    "DEFAULT_EVENTS",
    "SUPPORTED_EVENTS",
    "CallTask",
    "Channel",
    "Delivery",
    "DispatchOptions",
    "DispatchResult",
    "EmailSender",
    "Kind",
    "LoggingSmsSender",
    "MaildirEmailSender",
    "NotificationError",
    "NotificationStatus",
    "OutgoingEmail",
    "OutgoingSms",
    "RecordingEmailSender",
    "RecordingSmsSender",
    "RenderError",
    "Renderer",
    "SmsSender",
    "SmtpEmailSender",
    "complete_call_task",
    "dispatch",
    "dispatch_with_settings",
    "notification_status",
    "open_call_tasks",
    "set_sms_phone",
]
