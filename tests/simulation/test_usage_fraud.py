"""Daily usage and fraud: stolen cards, card testing, account takeover, payment truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from billing_core.simulation import behaviour, fraud, network, population, timeline, usage
from billing_core.simulation.params import WorldParams
from billing_core.simulation.rng import RandomSource

PARAMS = WorldParams()
RNG = RandomSource(13)
N = 20_000
KEYS = np.arange(N)


def _usage(day: int, **overrides: Any) -> np.ndarray:
    values: dict[str, Any] = {
        "customer_key": KEYS,
        "day": day,
        "scale": 1000.0,
        "engagement": 0.5,
        "tenure_days": 200,
    }
    values.update(overrides)
    return usage.daily_usage(PARAMS, RNG, **values)


def test_usage_is_deterministic_non_negative_and_follows_the_week() -> None:
    assert np.array_equal(_usage(30), _usage(30))
    assert _usage(30).dtype == np.int64
    assert _usage(30).min() >= 0
    days = np.arange(28, 42)
    weekday = timeline.days(PARAMS.start, days).weekday
    means = np.array([_usage(int(d)).mean() for d in days])
    assert means[weekday < 5].mean() > 1.3 * means[weekday >= 5].mean()
    expected = usage.expected_usage(PARAMS, day=30, scale=1000.0, engagement=0.5, tenure_days=200)
    assert _usage(30).mean() == pytest.approx(float(expected), rel=0.02)


def test_usage_declines_before_voluntary_churn_and_spikes_after_a_takeover() -> None:
    settled = _usage(30).mean()
    assert _usage(30, churn_progress=0.5).mean() < 0.75 * settled
    assert _usage(30, churn_progress=1.0).mean() < 0.35 * settled
    assert _usage(30, days_since_takeover=0).mean() > 5 * settled
    assert _usage(30, days_since_takeover=PARAMS.takeover_spike_days).mean() == pytest.approx(
        settled, rel=0.02
    )
    progress = behaviour.churn_progress(
        day=[10, 20, 30, 40], decided_day=[10, 10, 10, -1], cancel_day=[30, 30, 30, -1]
    )
    assert progress.tolist() == [0.0, 0.5, 1.0, 0.0]


def test_usage_scales_with_plan_seats_and_engagement() -> None:
    scale = usage.usage_scale(
        PARAMS, plan=[0, 2, 4, 4], seats=[1, 1, 2, 10], metered_addon=[False, False, False, True]
    )
    assert scale[1] > scale[0]
    assert scale[3] > 5 * scale[2]
    assert _usage(30, engagement=0.9).mean() > _usage(30, engagement=0.1).mean()


def test_engagement_drifts_within_bounds_around_the_customers_level() -> None:
    anchor = np.full(N, 0.6)
    engagement = anchor.copy()
    for day in range(120):
        engagement = usage.drift_engagement(
            PARAMS, RNG, customer_key=KEYS, day=day, engagement=engagement, anchor=anchor
        )
    assert np.all((engagement > 0) & (engagement < 1))
    assert engagement.std() > 0.05  # it moves
    assert abs(np.median(engagement) - 0.6) < 0.05  # around the customer's own level


def test_signup_fraud_meets_its_rate_and_fraud_wave_multiplies_it() -> None:
    sample = population.account_sample(PARAMS)
    assert sample.fraud_probability.mean() == pytest.approx(PARAMS.stolen_card_signup_rate, rel=0.1)
    wave = WorldParams.for_scenario("fraud_wave", 0)
    p = fraud.signup_fraud_probability(
        wave,
        month=1,
        channel=sample.channel,
        plan=sample.plan,
        disposable=sample.email_kind == 2,
        ip_mismatch=sample.ip_country != sample.country,
        night=sample.signup_hour < fraud.NIGHT_HOURS,
    )
    assert p.mean() == pytest.approx(PARAMS.stolen_card_signup_rate * wave.fraud_wave_multiplier, rel=0.1)


def test_fraudulent_signups_look_riskier_and_are_calibrated() -> None:
    signups = population.draw_signups_between(PARAMS, 0, 300, RandomSource(4))
    fraudsters = signups.is_fraud
    assert fraudsters.mean() == pytest.approx(
        signups.fraud_probability.mean(), abs=4 * np.sqrt(0.006 / len(signups))
    )
    disposable = signups.email_kind == 2
    assert disposable[fraudsters].mean() > 4 * disposable[~fraudsters].mean()
    # a stolen card dies with stolen_card on its chargeback day, 7 to 120 days after the signup
    delay = signups.chargeback_day[fraudsters] - signups.day[fraudsters]
    assert delay.min() >= 7
    assert delay.max() <= 120
    card = signups.card
    assert np.all(card.stolen == fraudsters)
    assert np.all(card.death_day[fraudsters] <= signups.chargeback_day[fraudsters])
    assert np.all(signups.chargeback_day[~fraudsters] == -1)


def test_card_testing_bursts_share_a_bin_and_make_many_small_attempts() -> None:
    params = PARAMS.replace(card_testing_bursts_per_day=3.0)
    bursts = fraud.draw_card_testing(params, RandomSource(5), 40)
    accounts = bursts.accounts
    assert len(bursts) > len(accounts) > 0
    assert np.all(accounts.is_fraud)
    assert np.all(accounts.fraud_probability == 1)
    assert np.all(accounts.fraud_kind == fraud.CARD_TESTING)
    for b in np.unique(bursts.burst):
        mine = bursts.burst == b
        assert len(np.unique(accounts.card.bin[mine])) == 1
        assert len(np.unique(accounts.ip_address[mine])) <= 3
        seconds = bursts.attempt_second[np.isin(bursts.attempt_account, np.nonzero(mine)[0])]
        assert seconds.max() - seconds.min() <= params.card_testing_minutes[1] * 60
    assert np.all(bursts.amount_usd <= params.card_testing_amount_usd[1])
    assert np.all(np.diff(bursts.attempt_second) >= 0)
    assert np.all(bursts.decline_code[bursts.succeeded] == network.NO_DECLINE)
    assert np.all(bursts.decline_code[~bursts.succeeded] >= 0)
    keys = accounts.customer_key % population.KEY_DAY_FACTOR
    assert np.all(keys >= population.CARD_TESTING_KEY_OFFSET)
    assert len(fraud.draw_card_testing(PARAMS.replace(card_testing_bursts_per_day=0.0), RNG, 40)) == 0


def test_takeovers_are_rare_daily_draws_with_stolen_cards() -> None:
    p = fraud.takeover_probability(PARAMS, 0)
    assert p == pytest.approx(PARAMS.takeover_rate_per_year / 365, rel=0.01)
    draw = fraud.draw_takeovers(PARAMS, RNG, customer_key=np.arange(2_000_000), day=5, month=0)
    assert draw.taken_over.mean() == pytest.approx(float(p), rel=0.3)
    signups = population.draw_signups(PARAMS, 1, RNG)
    cards = fraud.takeover_cards(
        PARAMS, RNG, previous=signups.card, day=60, currency_index=signups.currency_index
    )
    assert np.all(cards.stolen)
    assert np.all(cards.card_version == 1)
    assert np.all(cards.death_code[cards.death_day <= 60 + 120] >= 0)


def test_payment_fraud_truth_combines_its_draws() -> None:
    truth = fraud.payment_fraud(
        signup_probability=[0.01, 0.01, 0.01, 0.01],
        stolen_signup=[False, True, False, False],
        takeover_probability=[0.0, 0.0, 1e-5, 0.0],
        on_takeover_card=[False, False, True, False],
        friendly_probability=[0.001, 0.001, 0.001, 0.2],
        friendly_fraud=[False, False, False, True],
    )
    assert truth.is_fraud.tolist() == [False, True, True, True]
    assert [fraud.FRAUD_KINDS[k] for k in truth.kind] == [
        "none",
        "stolen_card",
        "account_takeover",
        "friendly_fraud",
    ]
    assert truth.p_fraud[0] == pytest.approx(1 - 0.99 * 0.999)
