"""The static policy's schedule, worked through without a database, and the checks on any policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing_core.dunning.lifecycle import ACTION_EVENTS, DUNNING_LIFECYCLE, Action, Channel, DunningStatus
from billing_core.dunning.policy import WAIT, Decision, DunningState, StaticPolicy, check_decisions
from billing_core.errors import InvalidInput
from billing_core.payments import DeclineCode

START = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def state(**changes: Any) -> DunningState:
    values: dict[str, Any] = {
        "process_id": 1,
        "invoice_id": 10,
        "customer_id": 100,
        "subscription_id": 1000,
        "status": DunningStatus.ACTIVE,
        "reason": "payment_failed",
        "started_at": START,
        "now": START,
        "amount_remaining_minor": 49_00,
        "currency": "USD",
        "decline_code": DeclineCode.INSUFFICIENT_FUNDS,
        "attempts": 1,
        "retries": 0,
        "reminders_email": 0,
        "reminders_sms": 0,
        "reminders_call": 0,
        "last_retry_at": None,
        "last_reminder_at": None,
        "final_notice_at": None,
        "customer_timezone": "UTC",
        "has_card": True,
        "new_card": False,
        "card_exp_month": 12,
        "card_exp_year": 2030,
        "subscription_status": "past_due",
    }
    values.update(changes)
    return DunningState(**values)


def follow(
    policy: StaticPolicy, s: DunningState, *, until_day: float = 90
) -> list[tuple[float, str, str | None]]:
    """Walk a process through the policy's decisions as the engine would, every retry declined.

    Returns (day, action, channel) for each step.
    """
    steps: list[tuple[float, str, str | None]] = []
    while s.status.live:
        action, channel, at = policy.decide_one(s)
        if action is None or at is None or at > START + until_day * DAY:
            break
        now = max(at, s.now)
        s = s._replace(now=now)
        steps.append(((now - START) / DAY, action.value, channel.value if channel else None))
        status = DUNNING_LIFECYCLE.next(s.status, ACTION_EVENTS[action])
        changes: dict[str, Any] = {"status": status}
        if action is Action.RETRY:
            changes.update(retries=s.retries + 1, attempts=s.attempts + 1, last_retry_at=now, new_card=False)
        elif action is Action.REMIND:
            field = f"reminders_{channel}"
            changes.update({field: getattr(s, field) + 1, "last_reminder_at": now})
        elif action is Action.FINAL_NOTICE:
            changes.update(last_reminder_at=now, final_notice_at=now)
        s = s._replace(**changes)
    return steps


DEFAULT_MESSAGES_AND_ENDING = [
    (18, "final_notice", "email"),
    (21, "suspend", None),
    (60, "write_off", None),
]


def test_soft_decline_eight_retries_in_fourteen_days_then_notice_suspension_write_off() -> None:
    assert follow(StaticPolicy(), state()) == [
        (1, "retry", None),
        (1, "remind", "email"),
        (2, "retry", None),
        (3, "remind", "email"),
        (4, "retry", None),
        (6, "retry", None),
        (7, "remind", "email"),
        (8, "retry", None),
        (10, "retry", None),
        (12, "retry", None),
        (14, "retry", None),
        (14, "remind", "email"),
        *DEFAULT_MESSAGES_AND_ENDING,
    ]


@pytest.mark.parametrize(
    "code",
    [DeclineCode.STOLEN_CARD, DeclineCode.LOST_CARD, DeclineCode.FRAUDULENT, DeclineCode.DO_NOT_HONOR,
     DeclineCode.EXPIRED_CARD],
)  # fmt: skip
def test_hard_declines_and_expired_cards_are_never_retried_on_the_same_card(code: DeclineCode) -> None:
    assert follow(StaticPolicy(), state(decline_code=code)) == [
        (1, "remind", "email"),
        (3, "remind", "email"),
        (7, "remind", "email"),
        (14, "remind", "email"),
        *DEFAULT_MESSAGES_AND_ENDING,
    ]


@pytest.mark.parametrize(
    "code", [DeclineCode.STOLEN_CARD, DeclineCode.EXPIRED_CARD, DeclineCode.INSUFFICIENT_FUNDS]
)
def test_a_new_card_is_charged_at_once_whatever_the_last_decline(code: DeclineCode) -> None:
    now = START + 5.5 * DAY
    s = state(decline_code=code, new_card=True, now=now, last_reminder_at=START + 3 * DAY, reminders_email=2)
    assert StaticPolicy().decide_one(s) == Decision(Action.RETRY, None, now)
    later = StaticPolicy(new_card_retry_delay=timedelta(hours=2)).decide_one(s)
    assert later == Decision(Action.RETRY, None, now + timedelta(hours=2))


def test_an_invoice_without_a_card_gets_messages_only() -> None:
    s = state(
        reason="overdue",
        decline_code=None,
        attempts=0,
        has_card=False,
        card_exp_month=None,
        card_exp_year=None,
    )
    assert [step for step in follow(StaticPolicy(), s) if step[1] == "retry"] == []
    with_card = state(reason="overdue", decline_code=None, attempts=0)
    assert follow(StaticPolicy(), with_card)[0] == (1, "retry", None)  # never attempted: the soft schedule


def test_a_late_run_catches_up_with_one_retry_and_the_latest_message() -> None:
    policy = StaticPolicy()
    # the engine last ran on day 1; now it is day 9 (retries of days 2-8 and reminders of days 3 and 7 missed)
    s = state(
        now=START + 9 * DAY,
        retries=1,
        last_retry_at=START + DAY,
        reminders_email=1,
        last_reminder_at=START + DAY,
    )
    # the reminder of day 7 (not those of days 3 and 7), then one retry (for the days 2 to 8)
    assert policy.decide_one(s) == Decision(Action.REMIND, Channel.EMAIL, START + 7 * DAY)
    after_reminder = s._replace(reminders_email=2, last_reminder_at=s.now)
    assert policy.decide_one(after_reminder) == Decision(Action.RETRY, None, START + 8 * DAY)
    after_retry = after_reminder._replace(retries=2, last_retry_at=s.now)
    assert policy.decide_one(after_retry) == Decision(Action.RETRY, None, START + 10 * DAY)
    assert follow(policy, after_retry)[:3] == [(10, "retry", None), (12, "retry", None), (14, "retry", None)]


def test_suspension_always_follows_a_final_notice_by_the_notice_period() -> None:
    policy = StaticPolicy()
    late = state(now=START + 25 * DAY, retries=8, last_retry_at=START + 14 * DAY, reminders_email=4,
                 last_reminder_at=START + 14 * DAY)  # fmt: skip
    assert policy.decide_one(late) == Decision(Action.FINAL_NOTICE, Channel.EMAIL, START + 18 * DAY)
    warned = late._replace(status=DunningStatus.WARNED, final_notice_at=late.now, last_reminder_at=late.now)
    assert policy.decide_one(warned) == Decision(Action.SUSPEND, None, START + 28 * DAY)  # 25 + (21 - 18)


def test_channels_and_days_are_configurable_and_steps_can_be_left_out() -> None:
    policy = StaticPolicy(
        name="sms-then-call",
        retry_days=(3,),
        reminders=((2, Channel.EMAIL), (5, Channel.SMS), (9, Channel.CALL)),
        final_notice_day=None,
        suspend_day=None,
        write_off_day=30,
    )
    assert follow(policy, state()) == [
        (2, "remind", "email"),
        (3, "retry", None),
        (5, "remind", "sms"),
        (9, "remind", "call"),
        (30, "write_off", None),
    ]


def test_local_hour_places_steps_in_the_customers_day() -> None:
    policy = StaticPolicy(local_hour=10)
    s = state(customer_timezone="Europe/Berlin", started_at=datetime(2026, 3, 27, 15, 0, tzinfo=UTC),
              now=datetime(2026, 3, 27, 15, 0, tzinfo=UTC))  # fmt: skip
    # day 1 is 28 March in Berlin, 10:00 CET = 09:00 UTC
    assert policy.decide_one(s).at == datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    # day 2 is 29 March, after the switch to summer time: 10:00 CEST = 08:00 UTC
    after = s._replace( now=datetime(2026, 3, 28, 9, 0, tzinfo=UTC), retries=1,
                                last_retry_at=datetime(2026, 3, 28, 9, 0, tzinfo=UTC),
                                reminders_email=1, last_reminder_at=datetime(2026, 3, 28, 9, 0, tzinfo=UTC))  # fmt: skip
    assert policy.decide_one(after) == Decision(Action.RETRY, None, datetime(2026, 3, 29, 8, 0, tzinfo=UTC))


def test_ended_processes_get_no_decision_and_decide_answers_in_order() -> None:
    policy = StaticPolicy()
    for status in (DunningStatus.RECOVERED, DunningStatus.WRITTEN_OFF, DunningStatus.CLOSED):
        assert policy.decide_one(state(status=status)) == WAIT
    states = [state(process_id=1), state(process_id=2, decline_code=DeclineCode.FRAUDULENT)]
    assert [d.action for d in policy.decide(states)] == [Action.RETRY, Action.REMIND]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"retry_days": (2, 1)}, "policy.retry_days[1]"),
        ({"retry_days": (-1,)}, "policy.retry_days[0]"),
        ({"reminders": ((3, Channel.EMAIL), (3, Channel.SMS))}, "policy.reminders[1]"),
        ({"reminders": ((3, "pigeon"),)}, "policy.reminders[0]"),
        ({"suspend_day": 10, "final_notice_day": 18}, "policy.suspend_day"),
        ({"write_off_day": 20}, "policy.write_off_day"),
        ({"local_hour": 24}, "policy.local_hour"),
        ({"name": ""}, "policy.name"),
        ({"new_card_retry_delay": timedelta(hours=-1)}, "policy.new_card_retry_delay"),
        ({"final_notice_channel": "fax"}, "policy.final_notice_channel"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        StaticPolicy(**changes)
    assert info.value.field == field


def test_decisions_the_engine_cannot_carry_out_are_refused() -> None:
    s = state()
    at = START + DAY
    check_decisions([s], [Decision(Action.REMIND, Channel.SMS, at)], "p")
    check_decisions([s], [WAIT], "p")
    cases = [
        ([], "p.decide"),
        ([Decision(Action.REMIND, None, at)], "p.decide[0].channel"),
        ([Decision(Action.SUSPEND, Channel.EMAIL, at)], "p.decide[0].channel"),
        ([Decision(Action.RETRY, None, datetime(2026, 3, 2))], "p.decide[0].at"),  # noqa: DTZ001
        ([Decision(None, None, at)], "p.decide[0]"),
        (["retry"], "p.decide[0]"),
    ]
    for decisions, field in cases:
        with pytest.raises(InvalidInput) as info:
            check_decisions([s], decisions, "p")  # type: ignore[arg-type]
        assert info.value.field == field
    with pytest.raises(InvalidInput) as info:
        check_decisions(
            [state(status=DunningStatus.SUSPENDED)], [Decision(Action.FINAL_NOTICE, Channel.EMAIL, at)], "p"
        )
    assert info.value.field == "p.decide[0].action"
    with pytest.raises(InvalidInput):
        check_decisions([state(has_card=False)], [Decision(Action.RETRY, None, at)], "p")


def test_state_derives_day_decline_type_and_reminders() -> None:
    s = state(now=START + 2.5 * DAY, reminders_email=2, reminders_sms=1, decline_code=DeclineCode.LOST_CARD)
    assert s.day == 2.5
    assert s.reminders == 3
    assert s.reminders_by_channel() == {Channel.EMAIL: 2, Channel.SMS: 1, Channel.CALL: 0}
    assert s.decline_type == "hard"
    assert state(decline_code=None).decline_type is None
