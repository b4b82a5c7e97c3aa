"""World parameters, scenarios and the calendar (days, months, paydays)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from billing_core.errors import InvalidInput
from billing_core.simulation import timeline
from billing_core.simulation.params import SCENARIOS, WorldParams

START = date(2025, 1, 1)


def test_unknown_scenario_raises_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as error:
        WorldParams.for_scenario("boom", 6)
    assert error.value.field == "scenario"
    with pytest.raises(InvalidInput) as error:
        WorldParams(scenario="boom")
    assert error.value.field == "scenario"
    with pytest.raises(InvalidInput) as error:
        WorldParams.for_scenario("recession", -1)
    assert error.value.field == "switch_month"


def test_bad_parameters_raise_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as error:
        WorldParams(channel_shares=(1.0, 1.0))
    assert error.value.field == "channel_shares"
    with pytest.raises(InvalidInput) as error:
        WorldParams(late_share=1.5)
    assert error.value.field == "late_share"
    with pytest.raises(InvalidInput) as error:
        WorldParams().replace(no_such_field=1)
    assert error.value.field == "no_such_field"


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenarios_switch_at_their_month(name: str) -> None:
    params = WorldParams.for_scenario(name, 6)
    months = np.arange(12)
    active = params.active(name, months)
    assert not active[:6].any()
    assert active[6:].all()
    if name == "baseline":  # the baseline changes nothing
        assert np.all(params.health_shift(months) == 0)
        assert np.all(params.fraud_multiplier(months) == 1)
        assert np.all(params.price_multiplier(months) == 1)
    if name == "recession":
        assert np.all(params.health_shift(months)[:6] == 0)
        assert np.all(params.health_shift(months)[6:] < 0)
    if name == "fraud_wave":
        assert np.all(params.fraud_multiplier(months)[6:] == params.fraud_wave_multiplier)
    if name == "price_increase":
        assert np.all(params.price_multiplier(months)[6:] == 1 + params.price_increase_share)
        shock = params.price_shock(months)
        assert np.all(shock[6 : 6 + params.price_shock_months] > 0)
        assert np.all(shock[6 + params.price_shock_months :] == 0)
    baseline = WorldParams()
    assert not baseline.active("recession", months).any()


def test_params_are_hashable_and_comparable() -> None:
    assert hash(WorldParams()) == hash(WorldParams())
    assert WorldParams() != WorldParams.for_scenario("recession", 3)


def test_calendar_matches_python_dates() -> None:
    day = np.arange(-40, 800)
    cal = timeline.days(START, day)
    for i in range(0, len(day), 37):
        d = START + timedelta(days=int(day[i]))
        assert (cal.year[i], cal.month[i], cal.day_of_month[i]) == (d.year, d.month, d.day)
        assert cal.weekday[i] == d.weekday()
        assert cal.day_of_year[i] == d.timetuple().tm_yday
        assert cal.month_index[i] == (d.year - START.year) * 12 + d.month - START.month
    assert list(timeline.month_start_day(START, [0, 1, 2, 12])) == [0, 31, 59, 365]


def _brute_paydays(cycle: int, phase: int, first: int, last: int) -> set[int]:
    out = set()
    for k in range(first, last + 1):
        d = START + timedelta(days=k)
        following = d + timedelta(days=1)
        if (
            (cycle == timeline.WEEKLY and d.weekday() == phase)
            or (cycle == timeline.BIWEEKLY and (k - phase) % 14 == 0)
            or (cycle == timeline.SEMI_MONTHLY and d.day in (1, 15))
            or (cycle == timeline.MONTHLY and following.month != d.month)
        ):
            out.add(k)
    return out


@pytest.mark.parametrize(("cycle", "phase"), [(0, 4), (1, 3), (2, 0), (3, 0)])
def test_paydays_agree_with_a_day_by_day_count(cycle: int, phase: int) -> None:
    days = np.arange(40, 140)
    paydays = _brute_paydays(cycle, phase, 0, 200)
    last = timeline.last_payday(START, days, cycle, phase)
    following = timeline.next_payday(START, days, cycle, phase)
    for i, d in enumerate(days.tolist()):
        assert last[i] == max(p for p in paydays if p <= d)
        assert following[i] == min(p for p in paydays if p >= d)
    position = timeline.cycle_position(START, days, cycle, phase)
    assert np.all((position >= 0) & (position < 1))
    assert np.all(position[np.isin(days, list(paydays))] == 0)
    between = timeline.payday_between(START, days - 3, days, cycle, phase)
    expected = [any(d - 3 < p <= d for p in paydays) for d in days.tolist()]
    assert between.tolist() == expected
