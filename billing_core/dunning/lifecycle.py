"""The dunning process: its lifecycle as a table, its actions, channels and outcomes.

One process follows one invoice in collections, from the first failed payment (or the due date
of an invoice nobody paid) until the invoice is paid, voided or written off. Lifecycle
(:data:`DUNNING_LIFECYCLE`)::

    ──► active ──final_notice──► warned ──suspend──► suspended
          │                                            ▲
          └───────────────────suspend──────────────────┘

    retry_failed and remind leave a live process (active, warned, suspended) where it is;
    from any live status:
        paid ─────────────────────────────► recovered
        voided ───────────────────────────► closed
        write_off, marked_uncollectible ──► written_off

A retry that succeeds is the ``paid`` event; a retry declined is ``retry_failed``. ``paid``,
``voided`` and ``marked_uncollectible`` also arrive from outside the engine (a bank transfer, a
credit note, an operator voiding the invoice or writing it off by hand): the engine notices
them on its next run and ends the process.

Which action comes next, and when, is a policy's decision (:mod:`billing_core.dunning.policy`);
the table only says which actions a process in a given state may take.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from billing_core.state_machine import StateMachine


class DunningStatus(StrEnum):
    ACTIVE = "active"  # retrying and reminding
    WARNED = "warned"  # the final notice went out
    SUSPENDED = "suspended"  # the invoice's subscription is suspended (``unpaid``)
    RECOVERED = "recovered"  # the invoice was paid
    WRITTEN_OFF = "written_off"  # the invoice was marked uncollectible
    CLOSED = "closed"  # the invoice was voided

    @property
    def live(self) -> bool:
        return self not in DUNNING_LIFECYCLE.terminal


class DunningEvent(StrEnum):
    RETRY_FAILED = "retry_failed"
    REMIND = "remind"
    FINAL_NOTICE = "final_notice"
    SUSPEND = "suspend"
    WRITE_OFF = "write_off"
    PAID = "paid"
    VOIDED = "voided"
    MARKED_UNCOLLECTIBLE = "marked_uncollectible"


class Action(StrEnum):
    """What the engine can do about an unpaid invoice."""

    RETRY = "retry"  # charge the customer's card again
    REMIND = "remind"  # ask the customer to pay (email, SMS, or a call task for a person)
    FINAL_NOTICE = "final_notice"  # the last message before the service is suspended
    SUSPEND = "suspend"  # suspend the invoice's subscription (and only it)
    WRITE_OFF = "write_off"  # mark the invoice uncollectible


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    CALL = "call"  # a task for a person to call the customer


class Outcome(StrEnum):
    """What came of an executed action (``dunning_actions.outcome``)."""

    SUCCEEDED = "succeeded"  # retry: the card was charged, the invoice is paid
    DECLINED = "declined"  # retry: declined (the decline code is recorded beside)
    CANCELED = "canceled"  # retry: the attempt was canceled (its invoice was voided meanwhile)
    QUEUED = "queued"  # remind, final_notice: the message is queued for the notification dispatcher
    SUSPENDED = "suspended"  # suspend: the subscription is now unpaid
    ALREADY_SUSPENDED = "already_suspended"  # suspend: another invoice's dunning suspended it before
    NOT_SUSPENDED = "not_suspended"  # suspend: no subscription, or one its lifecycle does not suspend
    WRITTEN_OFF = "written_off"  # write_off: the invoice is uncollectible


#: actions that need a channel (the others never have one)
MESSAGES: frozenset[Action] = frozenset({Action.REMIND, Action.FINAL_NOTICE})

_S, _E = DunningStatus, DunningEvent
_LIVE = (_S.ACTIVE, _S.WARNED, _S.SUSPENDED)

DUNNING_LIFECYCLE: StateMachine[DunningStatus, DunningEvent] = StateMachine(
    entity="dunning_process",
    states=DunningStatus,
    events=DunningEvent,
    transitions={
        **{(state, _E.RETRY_FAILED): state for state in _LIVE},
        **{(state, _E.REMIND): state for state in _LIVE},
        (_S.ACTIVE, _E.FINAL_NOTICE): _S.WARNED,
        (_S.ACTIVE, _E.SUSPEND): _S.SUSPENDED,
        (_S.WARNED, _E.SUSPEND): _S.SUSPENDED,
        **{(state, _E.WRITE_OFF): _S.WRITTEN_OFF for state in _LIVE},
        **{(state, _E.PAID): _S.RECOVERED for state in _LIVE},
        **{(state, _E.VOIDED): _S.CLOSED for state in _LIVE},
        **{(state, _E.MARKED_UNCOLLECTIBLE): _S.WRITTEN_OFF for state in _LIVE},
    },
    terminal=frozenset({_S.RECOVERED, _S.WRITTEN_OFF, _S.CLOSED}),
)

#: statuses of a process still in collections
LIVE_STATUSES: tuple[DunningStatus, ...] = _LIVE

#: the event an action is when it runs its ordinary course (a retry's may also be ``paid``)
ACTION_EVENTS: Mapping[Action, DunningEvent] = {
    Action.RETRY: _E.RETRY_FAILED,
    Action.REMIND: _E.REMIND,
    Action.FINAL_NOTICE: _E.FINAL_NOTICE,
    Action.SUSPEND: _E.SUSPEND,
    Action.WRITE_OFF: _E.WRITE_OFF,
}

#: how a process ends when its invoice reaches a status outside the engine
INVOICE_ENDINGS: Mapping[str, DunningEvent] = {
    "paid": _E.PAID,
    "void": _E.VOIDED,
    "uncollectible": _E.MARKED_UNCOLLECTIBLE,
}


def allowed(status: DunningStatus, action: Action) -> bool:
    """Whether a process in ``status`` may take ``action``."""
    return DUNNING_LIFECYCLE.can(status, ACTION_EVENTS[action])
