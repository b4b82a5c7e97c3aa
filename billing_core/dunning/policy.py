"""Dunning policies: which action comes next for a process, and when.

The engine asks a :class:`DunningPolicy` for many processes at once (``decide(states) ->
decisions``), so that a model behind a prediction API can answer a whole chunk in one call:
after every step, for the next action and when it is due; and again when that instant comes,
on the process as it is then (the stored decision only says when to look again). A
:class:`DunningState` carries what such a model needs: the amount and currency, the last decline
code and its type, attempts and reminders so far (by channel), the day of the process, the
customer's time zone and the card's expiry. A :class:`Decision` is an action, a channel for
messages, and the instant it is due; ``Decision()`` means "nothing more for now" (the process
waits for a payment or a new card).

:class:`StaticPolicy` is a configurable schedule. Its defaults follow common practice:

* soft declines (``insufficient_funds``, ``processing_error``, ``try_again_later``) and invoices
  never attempted: up to 8 retries on days 1, 2, 4, 6, 8, 10, 12 and 14 (Stripe's default is
  8 tries within 2 weeks; Recurly stops after 7 declines, 20 attempts or 60 days);
* hard declines (``stolen_card``, ``lost_card``, ``fraudulent``, ``do_not_honor``) are never
  retried on the same card, and ``expired_card`` waits for a new one: when the customer adds a
  card, it is charged at once, whatever the earlier decline;
* reminders on days 1, 3, 7 and 14 (by email; each reminder's channel is configurable);
* a final notice on day 18, suspension of the invoice's subscription on day 21 (never sooner
  than 3 days after the final notice), write-off on day 60.

Days count from the start of the process (the failed payment, or the due date of an invoice
that was never attempted). A run that comes late does not fire a backlog: of the messages
whose day has passed, only the latest is sent, and of the retries, only one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Protocol

from billing_core.clock import zone
from billing_core.dunning.lifecycle import MESSAGES, Action, Channel, DunningStatus, allowed
from billing_core.errors import InvalidInput
from billing_core.payments import DECLINE_TYPES, DeclineCode, DeclineType

DAY = timedelta(days=1)


class DunningState(NamedTuple):
    """A process as a policy sees it, at the moment of the decision (``now``). Immutable.

    A tuple, so that a model-driven policy can turn a batch into a table at once
    (``pandas.DataFrame(states, columns=DunningState._fields)``).
    """

    process_id: int
    invoice_id: int
    customer_id: int
    subscription_id: int | None
    status: DunningStatus
    reason: str  # payment_failed or overdue
    started_at: datetime
    now: datetime
    amount_remaining_minor: int
    currency: str
    decline_code: DeclineCode | None  # the last decline on the invoice, if any
    attempts: int  # payment attempts on the invoice so far, the billing run's included
    retries: int  # of which the dunning engine made
    reminders_email: int
    reminders_sms: int
    reminders_call: int
    last_retry_at: datetime | None
    last_reminder_at: datetime | None  # the last reminder or final notice
    final_notice_at: datetime | None
    customer_timezone: str
    has_card: bool  # the customer has a default card
    new_card: bool  # ... and it is not the card last declined
    card_exp_month: int | None
    card_exp_year: int | None
    subscription_status: str | None

    @property
    def decline_type(self) -> DeclineType | None:
        return DECLINE_TYPES[self.decline_code] if self.decline_code is not None else None

    @property
    def day(self) -> float:
        """Days since the process started (fractional)."""
        return (self.now - self.started_at) / DAY

    @property
    def reminders(self) -> int:
        return self.reminders_email + self.reminders_sms + self.reminders_call

    def reminders_by_channel(self) -> dict[Channel, int]:
        return {
            Channel.EMAIL: self.reminders_email,
            Channel.SMS: self.reminders_sms,
            Channel.CALL: self.reminders_call,
        }


class Decision(NamedTuple):
    """The next action, its channel (messages only) and when it is due; all None: nothing for now."""

    action: Action | None = None
    channel: Channel | None = None
    at: datetime | None = None


WAIT = Decision()


class DunningPolicy(Protocol):
    """Decides the next action of many processes at once.

    ``name`` is recorded with every action the policy chose (``dunning_actions.policy``).
    ``decide`` returns one decision per state, in order. It may be called with states of any
    status; for a terminal one it must return ``Decision()``.
    """

    @property
    def name(self) -> str: ...

    def decide(self, states: Sequence[DunningState]) -> list[Decision]: ...


#: the order in which actions due at the same instant are taken
_PRIORITY = {
    Action.RETRY: 0,
    Action.REMIND: 1,
    Action.FINAL_NOTICE: 2,
    Action.SUSPEND: 3,
    Action.WRITE_OFF: 4,
}
_LIVE = frozenset(state for state in DunningStatus if state.live)
_FINAL_FROM = frozenset(state for state in _LIVE if allowed(state, Action.FINAL_NOTICE))
_SUSPEND_FROM = frozenset(state for state in _LIVE if allowed(state, Action.SUSPEND))
_SOFT = frozenset(code for code, kind in DECLINE_TYPES.items() if kind is DeclineType.SOFT)


@dataclass(frozen=True)
class StaticPolicy:
    """A fixed schedule, counted in days from the start of the process.

    ``retry_days``: when to retry after a soft decline (or an invoice never attempted), at most
    one retry per entry. ``reminders``: ``(day, channel)`` pairs. ``final_notice_day``,
    ``suspend_day``, ``write_off_day``: ``None`` leaves that step out. ``new_card_retry_delay``:
    how soon a new card is charged. ``local_hour``: if set, every step is placed at that hour of
    the customer's own day (run the engine hourly then); by default steps fall at the start
    instant plus whole days.
    """

    name: str = "static-v1"
    retry_days: tuple[float, ...] = (1, 2, 4, 6, 8, 10, 12, 14)
    reminders: tuple[tuple[float, Channel], ...] = field(
        default=((1, Channel.EMAIL), (3, Channel.EMAIL), (7, Channel.EMAIL), (14, Channel.EMAIL))
    )
    final_notice_day: float | None = 18
    final_notice_channel: Channel = Channel.EMAIL
    suspend_day: float | None = 21
    write_off_day: float | None = 60
    new_card_retry_delay: timedelta = timedelta(0)
    local_hour: int | None = None
    _retry_offsets: tuple[timedelta, ...] = field(init=False, repr=False, compare=False)
    _reminder_offsets: tuple[tuple[timedelta, Channel], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name) <= 64:
            raise InvalidInput("policy.name", "a name of 1 to 64 characters", self.name)
        _increasing("policy.retry_days", self.retry_days)
        _increasing("policy.reminders", [day for day, _ in self.reminders])
        for index, (_day, channel) in enumerate(self.reminders):
            if not isinstance(channel, Channel):
                raise InvalidInput(f"policy.reminders[{index}]", "a channel: email, sms or call", channel)
        if not isinstance(self.final_notice_channel, Channel):
            raise InvalidInput(
                "policy.final_notice_channel", "a channel: email, sms or call", self.final_notice_channel
            )
        previous = 0.0
        for name, day in (
            ("policy.final_notice_day", self.final_notice_day),
            ("policy.suspend_day", self.suspend_day),
            ("policy.write_off_day", self.write_off_day),
        ):
            if day is None:
                continue
            if isinstance(day, bool) or not isinstance(day, int | float) or day <= previous:
                raise InvalidInput(
                    name, f"a day after {previous:g} (final notice, suspension, write-off in order)", day
                )
            previous = float(day)
        if not isinstance(self.new_card_retry_delay, timedelta) or self.new_card_retry_delay < timedelta(0):
            raise InvalidInput("policy.new_card_retry_delay", "a duration >= 0", self.new_card_retry_delay)
        hour = self.local_hour
        if hour is not None and (isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23):
            raise InvalidInput("policy.local_hour", "an hour from 0 to 23, or None", hour)
        # the schedule as offsets from the start, computed once
        object.__setattr__(self, "_retry_offsets", tuple(day * DAY for day in self.retry_days))
        object.__setattr__(self, "_reminder_offsets", tuple((day * DAY, ch) for day, ch in self.reminders))

    def decide(self, states: Sequence[DunningState]) -> list[Decision]:
        return [self.decide_one(state) for state in states]

    def decide_one(self, s: DunningState) -> Decision:
        status = s.status
        if status not in _LIVE:
            return WAIT
        now = s.now
        best: Decision = WAIT
        best_key: tuple[datetime, int] | None = None

        retry_at = self._retry_at(s)
        if retry_at is not None:
            best, best_key = Decision(Action.RETRY, None, retry_at), (retry_at, 0)

        # messages: reminders, then the final notice; of those whose day has passed, only the latest
        latest: tuple[datetime, Action, Channel] | None = None  # the latest message already due
        following: tuple[datetime, Action, Channel] | None = None  # else the first one to come
        after = s.last_reminder_at
        start = s.started_at
        local = self.local_hour is not None
        for offset, channel in self._reminder_offsets:
            at = self._at(s, offset) if local else start + offset
            if after is not None and at <= after:
                continue
            if at <= now:
                latest = (at, Action.REMIND, channel)
            elif following is None:
                following = (at, Action.REMIND, channel)
        final_at: datetime | None = None
        if self.final_notice_day is not None and status in _FINAL_FROM:
            final_at = self._at(s, self.final_notice_day * DAY)
            if final_at <= now:
                if latest is None or final_at >= latest[0]:
                    latest = (final_at, Action.FINAL_NOTICE, self.final_notice_channel)
            elif following is None or final_at < following[0]:
                following = (final_at, Action.FINAL_NOTICE, self.final_notice_channel)
        message = latest or following
        if message is not None:
            key = (message[0], _PRIORITY[message[1]])
            if best_key is None or key < best_key:
                best, best_key = Decision(message[1], message[2], message[0]), key

        if self.suspend_day is not None and status in _SUSPEND_FROM:
            at = self._at(s, self.suspend_day * DAY)
            if self.final_notice_day is not None:
                if final_at is not None:
                    at = max(at, final_at)  # the final notice always goes first
                elif s.final_notice_at is not None:  # and the customer has time to act on it
                    at = max(at, s.final_notice_at + (self.suspend_day - self.final_notice_day) * DAY)
            if best_key is None or (at, 3) < best_key:
                best, best_key = Decision(Action.SUSPEND, None, at), (at, 3)
        if self.write_off_day is not None:
            at = self._at(s, self.write_off_day * DAY)
            if best_key is None or (at, 4) < best_key:
                best = Decision(Action.WRITE_OFF, None, at)
        return best

    def _retry_at(self, s: DunningState) -> datetime | None:
        if not s.has_card:
            return None
        if s.new_card:
            return s.now + self.new_card_retry_delay
        if s.decline_code is not None and s.decline_code not in _SOFT:
            return None  # hard declines and expired cards wait for a new card
        if s.retries >= len(self.retry_days):
            return None
        last, now, start = s.last_retry_at, s.now, s.started_at
        local = self.local_hour is not None
        chosen = None
        for offset in self._retry_offsets:
            at = self._at(s, offset) if local else start + offset
            if last is not None and at <= last:
                continue
            if at > now:
                return chosen or at  # one retry for the days a late run missed, then the schedule
            chosen = at
        return chosen

    def _at(self, s: DunningState, offset: timedelta) -> datetime:
        at = s.started_at + offset
        if self.local_hour is None:  # pragma: no cover - decide_one adds the offset itself then
            return at
        local = at.astimezone(zone(s.customer_timezone))
        placed = local.replace(hour=self.local_hour, minute=0, second=0, microsecond=0)
        return placed.astimezone(UTC)


def _increasing(name: str, days: Sequence[object]) -> None:
    previous: float | None = None
    for index, day in enumerate(days):
        number = isinstance(day, int | float) and not isinstance(day, bool)
        if not number or day < 0 or (previous is not None and day <= previous):  # type: ignore[operator]
            after = "" if previous is None else f" after {previous:g}"
            raise InvalidInput(f"{name}[{index}]", f"a day >= 0{after} (days in increasing order)", day)
        previous = float(day)  # type: ignore[arg-type]


def check_decisions(states: Sequence[DunningState], decisions: Sequence[Decision], policy: str) -> None:
    """Refuse a policy's answer that the engine cannot carry out, naming the decision at fault."""
    if len(decisions) != len(states):
        raise InvalidInput(
            f"{policy}.decide", f"one decision per state ({len(states)})", f"{len(decisions)} decisions"
        )
    for index, (state, decision) in enumerate(zip(states, decisions, strict=True)):
        where = f"{policy}.decide[{index}]"
        if not isinstance(decision, Decision):
            raise InvalidInput(where, "a Decision(action, channel, at)", decision)
        action, channel, at = decision
        if action is None:
            if channel is not None or at is not None:
                raise InvalidInput(
                    where, "Decision() with no channel and no instant when no action", decision
                )
            continue
        if not isinstance(action, Action):
            raise InvalidInput(f"{where}.action", "an Action: " + ", ".join(Action), action)
        if not allowed(state.status, action):
            raise InvalidInput(
                f"{where}.action",
                f"an action a {state.status} process may take",
                action.value,
                hint=f"process {state.process_id}",
            )
        if action in MESSAGES:
            if not isinstance(channel, Channel):
                raise InvalidInput(f"{where}.channel", "a channel for a message: email, sms or call", channel)
        elif channel is not None:
            raise InvalidInput(f"{where}.channel", f"no channel for {action.value}", channel)
        if action is Action.RETRY and not state.has_card:
            raise InvalidInput(f"{where}.action", "no retry for a customer without a card", action.value)
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise InvalidInput(f"{where}.at", "a tz-aware instant", at)
