"""The dunning process's lifecycle is a table: each declared transition, and each pair it refuses."""

from __future__ import annotations

from itertools import product

import pytest

from billing_core.dunning.lifecycle import (
    ACTION_EVENTS,
    DUNNING_LIFECYCLE,
    INVOICE_ENDINGS,
    LIVE_STATUSES,
    MESSAGES,
    Action,
    DunningEvent,
    DunningStatus,
    allowed,
)
from billing_core.errors import InvalidTransition

S, E = DunningStatus, DunningEvent

#: the lifecycle written out once more, so that a change to the table is a decision
EXPECTED = {
    (S.ACTIVE, E.RETRY_FAILED): S.ACTIVE,
    (S.ACTIVE, E.REMIND): S.ACTIVE,
    (S.ACTIVE, E.FINAL_NOTICE): S.WARNED,
    (S.ACTIVE, E.SUSPEND): S.SUSPENDED,
    (S.ACTIVE, E.WRITE_OFF): S.WRITTEN_OFF,
    (S.ACTIVE, E.PAID): S.RECOVERED,
    (S.ACTIVE, E.VOIDED): S.CLOSED,
    (S.ACTIVE, E.MARKED_UNCOLLECTIBLE): S.WRITTEN_OFF,
    (S.WARNED, E.RETRY_FAILED): S.WARNED,
    (S.WARNED, E.REMIND): S.WARNED,
    (S.WARNED, E.SUSPEND): S.SUSPENDED,
    (S.WARNED, E.WRITE_OFF): S.WRITTEN_OFF,
    (S.WARNED, E.PAID): S.RECOVERED,
    (S.WARNED, E.VOIDED): S.CLOSED,
    (S.WARNED, E.MARKED_UNCOLLECTIBLE): S.WRITTEN_OFF,
    (S.SUSPENDED, E.RETRY_FAILED): S.SUSPENDED,
    (S.SUSPENDED, E.REMIND): S.SUSPENDED,
    (S.SUSPENDED, E.WRITE_OFF): S.WRITTEN_OFF,
    (S.SUSPENDED, E.PAID): S.RECOVERED,
    (S.SUSPENDED, E.VOIDED): S.CLOSED,
    (S.SUSPENDED, E.MARKED_UNCOLLECTIBLE): S.WRITTEN_OFF,
}


def test_the_lifecycle_is_exactly_as_designed() -> None:
    assert dict(DUNNING_LIFECYCLE.transitions) == EXPECTED
    assert DUNNING_LIFECYCLE.terminal == {S.RECOVERED, S.WRITTEN_OFF, S.CLOSED}
    assert LIVE_STATUSES == (S.ACTIVE, S.WARNED, S.SUSPENDED)
    assert [s for s in S if s.live] == list(LIVE_STATUSES)


@pytest.mark.parametrize(("state", "event", "target"), [(s, e, t) for (s, e), t in EXPECTED.items()])
def test_declared_transition(state: S, event: E, target: S) -> None:
    assert DUNNING_LIFECYCLE.next(state, event, entity_id=7) is target
    assert state in DUNNING_LIFECYCLE.sources(event)
    assert event in DUNNING_LIFECYCLE.allowed_events(state)


@pytest.mark.parametrize(("state", "event"), [(s, e) for s, e in product(S, E) if (s, e) not in EXPECTED])
def test_undeclared_transition_is_refused_with_a_clear_error(state: S, event: E) -> None:
    with pytest.raises(InvalidTransition) as info:
        DUNNING_LIFECYCLE.next(state, event, entity_id=7)
    assert info.value.field == "dunning_process.status"
    assert info.value.got == state.value
    assert f"cannot {event} dunning_process 7 while it is {state}" in str(info.value)


def test_ended_processes_take_no_action_and_live_ones_end_every_way() -> None:
    for state in DUNNING_LIFECYCLE.terminal:
        assert DUNNING_LIFECYCLE.allowed_events(state) == []
        assert not any(allowed(state, action) for action in Action)
    for state in LIVE_STATUSES:
        for ending in (E.PAID, E.VOIDED, E.MARKED_UNCOLLECTIBLE, E.WRITE_OFF):
            assert DUNNING_LIFECYCLE.can(state, ending)


def test_which_actions_each_live_status_may_take() -> None:
    table = {state: {a for a in Action if allowed(state, a)} for state in LIVE_STATUSES}
    assert table == {
        S.ACTIVE: set(Action),
        S.WARNED: {Action.RETRY, Action.REMIND, Action.SUSPEND, Action.WRITE_OFF},
        S.SUSPENDED: {Action.RETRY, Action.REMIND, Action.WRITE_OFF},
    }
    assert set(ACTION_EVENTS) == set(Action)
    assert {Action.REMIND, Action.FINAL_NOTICE} == MESSAGES
    assert INVOICE_ENDINGS == {"paid": E.PAID, "void": E.VOIDED, "uncollectible": E.MARKED_UNCOLLECTIBLE}
