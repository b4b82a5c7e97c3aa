"""Every lifecycle is a table: each declared transition, and each pair it does not declare, is tested."""

from __future__ import annotations

from itertools import product
from typing import Any

import pytest

from billing_core.disputes import DISPUTE_LIFECYCLE
from billing_core.errors import InvalidTransition
from billing_core.invoices import INVOICE_LIFECYCLE
from billing_core.payments import ATTEMPT_LIFECYCLE
from billing_core.state_machine import StateMachine
from billing_core.subscriptions import SUBSCRIPTION_LIFECYCLE, SubscriptionEvent, SubscriptionStatus

MACHINES: list[StateMachine[Any, Any]] = [
    SUBSCRIPTION_LIFECYCLE,
    INVOICE_LIFECYCLE,
    DISPUTE_LIFECYCLE,
    ATTEMPT_LIFECYCLE,
]


def declared() -> list[tuple[StateMachine[Any, Any], Any, Any, Any]]:
    return [(m, s, e, t) for m in MACHINES for (s, e), t in m.transitions.items()]


def undeclared() -> list[tuple[StateMachine[Any, Any], Any, Any]]:
    return [
        (m, s, e) for m in MACHINES for s, e in product(m.states, m.events) if (s, e) not in m.transitions
    ]


@pytest.mark.parametrize(
    ("machine", "state", "event", "target"), declared(), ids=lambda v: getattr(v, "entity", str(v))
)
def test_declared_transition(machine: StateMachine[Any, Any], state: Any, event: Any, target: Any) -> None:
    assert machine.can(state, event)
    assert machine.next(state, event, entity_id=7) is target
    assert state in machine.sources(event)
    assert event in machine.allowed_events(state)


@pytest.mark.parametrize(
    ("machine", "state", "event"), undeclared(), ids=lambda v: getattr(v, "entity", str(v))
)
def test_undeclared_transition_is_refused_with_a_clear_error(
    machine: StateMachine[Any, Any], state: Any, event: Any
) -> None:
    assert not machine.can(state, event)
    with pytest.raises(InvalidTransition) as info:
        machine.next(state, event, entity_id=7)
    error = info.value
    assert error.field == f"{machine.entity}.status"
    assert error.got == str(state)
    assert f"cannot {event} {machine.entity} 7 while it is {state}" in str(error)
    for source in machine.sources(event):
        assert str(source) in str(error.expected)


S, E = SubscriptionStatus, SubscriptionEvent

#: the subscription lifecycle written out once more, so that a change to the table is a decision
EXPECTED_SUBSCRIPTION = {
    (S.TRIALING, E.PAYMENT_SUCCEEDED): S.ACTIVE,
    (S.TRIALING, E.PAYMENT_FAILED): S.PAST_DUE,
    (S.TRIALING, E.RENEW): S.TRIALING,
    (S.TRIALING, E.CHANGE_PLAN): S.TRIALING,
    (S.TRIALING, E.CANCEL): S.CANCELED,
    (S.TRIALING, E.SCHEDULE_CANCEL): S.TRIALING,
    (S.ACTIVE, E.PAYMENT_SUCCEEDED): S.ACTIVE,
    (S.ACTIVE, E.PAYMENT_FAILED): S.PAST_DUE,
    (S.ACTIVE, E.RENEW): S.ACTIVE,
    (S.ACTIVE, E.CHANGE_PLAN): S.ACTIVE,
    (S.ACTIVE, E.PAUSE): S.PAUSED,
    (S.ACTIVE, E.CANCEL): S.CANCELED,
    (S.ACTIVE, E.SCHEDULE_CANCEL): S.ACTIVE,
    (S.PAST_DUE, E.PAYMENT_SUCCEEDED): S.ACTIVE,
    (S.PAST_DUE, E.PAYMENT_FAILED): S.PAST_DUE,
    (S.PAST_DUE, E.RENEW): S.PAST_DUE,
    (S.PAST_DUE, E.CHANGE_PLAN): S.PAST_DUE,
    (S.PAST_DUE, E.DUNNING_EXHAUSTED): S.UNPAID,
    (S.PAST_DUE, E.CANCEL): S.CANCELED,
    (S.PAST_DUE, E.SCHEDULE_CANCEL): S.PAST_DUE,
    (S.UNPAID, E.PAYMENT_SUCCEEDED): S.ACTIVE,
    (S.UNPAID, E.PAYMENT_FAILED): S.UNPAID,
    (S.UNPAID, E.CANCEL): S.CANCELED,
    (S.PAUSED, E.RESUME): S.ACTIVE,
    (S.PAUSED, E.CANCEL): S.CANCELED,
    (S.PAUSED, E.PAYMENT_SUCCEEDED): S.PAUSED,
    (S.PAUSED, E.PAYMENT_FAILED): S.PAUSED,
}


def test_subscription_lifecycle_is_exactly_as_designed() -> None:
    assert dict(SUBSCRIPTION_LIFECYCLE.transitions) == EXPECTED_SUBSCRIPTION
    assert set(SubscriptionStatus) == {"trialing", "active", "past_due", "paused", "canceled", "unpaid"}
    assert SUBSCRIPTION_LIFECYCLE.allowed_events(S.CANCELED) == []


def test_a_canceled_subscription_cannot_change_plan() -> None:
    with pytest.raises(InvalidTransition) as info:
        SUBSCRIPTION_LIFECYCLE.next(S.CANCELED, E.CHANGE_PLAN, entity_id=42)
    assert info.value.to_dict()["field"] == "subscription.status"
    assert info.value.to_dict()["got"] == "canceled"


def test_every_state_is_reachable_and_only_terminal_states_are_dead_ends() -> None:
    for machine in MACHINES:
        targets = {t for t in machine.transitions.values()} | {s for s, _ in machine.transitions}
        assert set(machine.states) == targets, machine.entity
        for state in machine.states:
            if state not in machine.terminal and machine.allowed_events(state) == []:
                # a state without exits must be declared terminal
                pytest.fail(f"{machine.entity}: {state} has no way out and is not terminal")
