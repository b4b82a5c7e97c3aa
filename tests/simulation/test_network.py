"""The card network: probabilities, hard and expired declines, payday, retries, calibration."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from billing_core.payments import DeclineCode, DeclineType
from billing_core.simulation import network, timeline
from billing_core.simulation.network import attempt_charges
from billing_core.simulation.params import WorldParams
from billing_core.simulation.rng import RandomSource

PARAMS = WorldParams()
RNG = RandomSource(21)
N = 60_000
KEYS = np.arange(N)


def _charge(params: WorldParams = PARAMS, **overrides: Any) -> network.ChargeOutcome:
    values: dict[str, Any] = {
        "customer_key": KEYS,
        "period_index": 2,
        "attempt_number": 0,
        "day": 100,
        "hour": 10,
        "amount_usd": 49.0,
        "financial_health": 0.75,
        "payday_cycle": timeline.SEMI_MONTHLY,
        "payday_phase": 0,
    }
    values.update(overrides)
    return attempt_charges(params, RNG, **values)


def _day_of_month(dom: int, month: int = 3) -> int:
    return int(timeline.month_start_day(PARAMS.start, month)) + dom - 1


def test_codes_are_the_billing_cores() -> None:
    assert set(network.DECLINE_CODES) == set(DeclineCode)
    for code in network.SOFT_CODES:
        assert network.DECLINE_CODES[code].decline_type is DeclineType.SOFT
    for code in network.HARD_CODES:
        assert network.DECLINE_CODES[code].decline_type is DeclineType.HARD
    assert network.code_index(None) == network.NO_DECLINE
    assert network.decode([network.NO_DECLINE, network.INSUFFICIENT_FUNDS]) == [
        None,
        DeclineCode.INSUFFICIENT_FUNDS,
    ]


def test_same_keys_same_outcomes_and_probabilities_are_valid() -> None:
    a, b = _charge(), _charge()
    assert np.array_equal(a.succeeded, b.succeeded)
    assert np.array_equal(a.decline_code, b.decline_code)
    health = np.random.default_rng(0).uniform(0.01, 0.99, N)
    out = _charge(financial_health=health, amount_usd=np.geomspace(1, 5000, N), hour=np.arange(N) % 24)
    assert np.all((out.p_success >= 0) & (out.p_success <= 1))
    assert np.all(out.decline_code[out.succeeded] == network.NO_DECLINE)
    assert np.all(out.decline_code[~out.succeeded] >= 0)


def test_success_frequency_matches_the_recorded_probability() -> None:
    health = np.random.default_rng(1).uniform(0.02, 0.98, N)
    out = _charge(financial_health=health, day=_day_of_month(14), amount_usd=300.0)
    bins = np.digitize(out.p_success, np.quantile(out.p_success, np.linspace(0, 1, 11)[1:-1]))
    for b in range(10):
        mask = bins == b
        p = out.p_success[mask].mean()
        assert out.succeeded[mask].mean() == pytest.approx(
            p, abs=4 * np.sqrt(p * (1 - p) / mask.sum()) + 1e-3
        )


def test_lower_financial_health_means_more_declines() -> None:
    p = [_charge(financial_health=h).p_success.mean() for h in (0.1, 0.3, 0.6, 0.9)]
    assert p == sorted(p)
    assert p[0] < p[-1] - 0.05


def test_insufficient_funds_likelier_just_before_payday() -> None:
    semi = [1 - _charge(day=_day_of_month(d)).p_success.mean() for d in (14, 16)]  # 15th is payday
    assert semi[0] > 1.5 * semi[1]
    monthly = [
        1 - _charge(day=_day_of_month(d), payday_cycle=timeline.MONTHLY).p_success.mean()
        for d in (int(timeline.days(PARAMS.start, _day_of_month(1)).days_in_month) - 1, 2)
    ]
    assert monthly[0] > 1.5 * monthly[1]


def test_hard_declines_never_succeed_on_the_same_card() -> None:
    for code in network.HARD_CODES:
        out = _charge(
            attempt_number=3, blocked_code=int(code), previous_code=int(code), financial_health=0.99
        )
        assert not out.succeeded.any()
        assert np.all(out.p_success == 0)
        assert np.all(out.decline_code == code)
    dead = _charge(card_death_day=50, card_death_code=network.LOST_CARD)
    assert not dead.succeeded.any()
    assert np.all(dead.decline_code == network.LOST_CARD)
    assert dead.card_unusable.all()


def test_expired_cards_always_fail_until_replaced() -> None:
    out = _charge(card_expired=True, financial_health=0.99)
    assert not out.succeeded.any()
    assert np.all(out.decline_code == network.EXPIRED_CARD)
    assert _charge(card_expired=False, financial_health=0.99).succeeded.mean() > 0.95


def test_first_attempt_declines_are_realistic() -> None:
    health = RandomSource(2).uniforms("h", KEYS)
    out = _charge(financial_health=health, day=np.arange(N) % 60 + 60)
    codes = np.bincount(out.decline_code[~out.succeeded].astype(int), minlength=8)
    soft = codes[network.SOFT_CODES]
    assert soft.argmax() == 0  # insufficient funds is the most common soft decline
    assert codes[network.SOFT_CODES].sum() > codes[network.HARD_CODES].sum()
    assert 0.01 < 1 - out.succeeded.mean() < 0.2


def test_retry_after_insufficient_funds_depends_on_payday_delay_and_hour() -> None:
    retry = {"attempt_number": 1, "previous_code": network.INSUFFICIENT_FUNDS}
    # failure on the 13th; retry on the 14th (no payday) or the 16th (after the 15th)
    before = _charge(**retry, day=_day_of_month(14), days_since_previous=1, days_since_first_failure=1)
    after = _charge(**retry, day=_day_of_month(16), days_since_previous=3, days_since_first_failure=3)
    assert after.p_success.mean() > before.p_success.mean() + 0.1
    late = _charge(**retry, day=_day_of_month(14), days_since_previous=1, days_since_first_failure=10)
    assert late.p_success.mean() > before.p_success.mean()
    night = _charge(**retry, day=_day_of_month(14), days_since_previous=1, days_since_first_failure=1, hour=2)
    evening = _charge(
        **retry, day=_day_of_month(14), days_since_previous=1, days_since_first_failure=1, hour=20
    )
    assert night.p_success.mean() > before.p_success.mean() > evening.p_success.mean()
    third = _charge(
        **{**retry, "attempt_number": 4},
        day=_day_of_month(14),
        days_since_previous=1,
        days_since_first_failure=1,
    )
    assert third.p_success.mean() < before.p_success.mean()


def test_transient_errors_usually_clear_on_retry() -> None:
    for code in (network.PROCESSING_ERROR, network.TRY_AGAIN_LATER):
        out = _charge(attempt_number=1, previous_code=code, days_since_previous=0.2)
        assert out.p_success.mean() > 0.6


def test_common_random_numbers_make_outcomes_monotone() -> None:
    # the same attempt with a higher probability of success never turns a success into a failure
    worse = _charge(financial_health=0.3)
    better = _charge(financial_health=0.8)
    assert np.all(better.p_success >= worse.p_success)
    assert np.all(better.succeeded[worse.succeeded])


def test_stolen_cards_trip_the_issuers_fraud_screen() -> None:
    out = _charge(stolen_card=True)
    clean = _charge(stolen_card=False)
    fraud_share = np.mean(out.decline_code == network.FRAUDULENT)
    assert fraud_share > 10 * max(np.mean(clean.decline_code == network.FRAUDULENT), 1e-4)


def test_recession_raises_declines_after_the_switch_month_only() -> None:
    recession = WorldParams.for_scenario("recession", 6)
    for month, changed in ((3, False), (8, True)):
        day = int(timeline.month_start_day(PARAMS.start, month)) + 9
        base = _charge(day=day).p_success.mean()
        hit = _charge(recession, day=day).p_success.mean()
        assert (hit < base - 0.01) if changed else hit == pytest.approx(base)


def test_usd_amounts_use_the_books_price_scales() -> None:
    usd = network.usd_amount([49_00, 45_00, 7350, 14_700], ["USD", "EUR", "JPY", "KWD"])
    assert np.allclose(usd, [49.0, 50.0, 49.0, 49.0])
