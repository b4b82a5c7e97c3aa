"""Lifecycles declared as data: one table of ``(state, event) -> next state`` per entity.

Every allowed transition of an invoice, a subscription, a payment attempt, a dispute (and, in the
dunning engine, a dunning process) is one row of a table. Code asks the table; tests walk it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from billing_core.errors import InvalidTransition

S = TypeVar("S", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class StateMachine(Generic[S, E]):
    """A named transition table."""

    entity: str
    states: type[S]
    events: type[E]
    transitions: Mapping[tuple[S, E], S]
    terminal: frozenset[S] = frozenset()

    def __post_init__(self) -> None:
        for (state, event), target in self.transitions.items():
            if state in self.terminal:
                raise ValueError(f"{self.entity}: terminal state {state} has transition {event}")
            if not isinstance(state, self.states) or not isinstance(target, self.states):
                raise TypeError(f"{self.entity}: {state}->{target} are not {self.states.__name__}")
            if not isinstance(event, self.events):
                raise TypeError(f"{self.entity}: {event} is not {self.events.__name__}")

    def next(self, state: S, event: E, *, entity_id: object = "?") -> S:
        """The state after ``event``; a clear error if ``state`` does not allow it."""
        target = self.transitions.get((state, event))
        if target is None:
            raise InvalidTransition(
                entity=self.entity,
                entity_id=entity_id,
                state=str(state),
                action=str(event),
                allowed_from=[str(s) for s in self.sources(event)],
            )
        return target

    def can(self, state: S, event: E) -> bool:
        return (state, event) in self.transitions

    def sources(self, event: E) -> list[S]:
        """The states from which ``event`` is allowed."""
        return [state for (state, ev) in self.transitions if ev == event]

    def allowed_events(self, state: S) -> list[E]:
        return [ev for (st, ev) in self.transitions if st == state]
