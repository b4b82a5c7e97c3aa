"""The world's aggregate rates against the public figures they are grounded in.

A roll-forward of two years (a tenth of the default signups, about 10,000 customers) under the
reference policy of :mod:`billing_core.simulation.calibration`. Tolerances cover the sampling
noise of that size and the approximations of the calibration (intercepts are solved on fixed
samples, not on the roll-forward itself).
"""

from __future__ import annotations

import pytest

from billing_core.simulation.calibration import CalibrationReport, roll_forward
from billing_core.simulation.params import WorldParams

PARAMS = WorldParams()


@pytest.fixture(scope="module")
def baseline() -> CalibrationReport:
    return roll_forward(PARAMS, seed=1)


def test_yearly_churn_is_near_the_ibm_telco_figure(baseline: CalibrationReport) -> None:
    assert baseline.cohort > 3_000
    assert baseline.annual_churn == pytest.approx(PARAMS.annual_churn, abs=0.04)  # 26.5%


def test_about_a_quarter_of_churn_is_involuntary(baseline: CalibrationReport) -> None:
    assert baseline.involuntary_share == pytest.approx(
        PARAMS.involuntary_churn_share, abs=0.08
    )  # Stripe: 25%


def test_decline_rates_are_several_percent_and_mostly_insufficient_funds(baseline: CalibrationReport) -> None:
    assert 0.04 < baseline.first_attempt_decline_rate < 0.08
    assert 0.05 < baseline.attempt_decline_rate < 0.14  # Recurly: 5-14% (B2B), 6-18% (B2C)
    shares = baseline.decline_code_shares
    assert max(shares, key=lambda code: shares[code]) == "insufficient_funds"
    assert 0.6 < baseline.recovered_share < 0.95


def test_about_the_surveyed_share_of_invoices_is_paid_late(baseline: CalibrationReport) -> None:
    assert baseline.late_share == pytest.approx(PARAMS.late_share, abs=0.04)  # Atradius: 38.4%


def test_fraud_is_near_the_published_share_of_payments(baseline: CalibrationReport) -> None:
    assert 0.001 <= baseline.fraud_payment_share <= 0.0025  # ULB sample: 0.172%
    assert baseline.signup_fraud_rate == pytest.approx(PARAMS.stolen_card_signup_rate, abs=0.002)
    assert baseline.card_testing_attempts > 0


def test_dispute_rate_is_the_configured_one(baseline: CalibrationReport) -> None:
    assert baseline.dispute_rate == pytest.approx(
        PARAMS.dispute_rate + PARAMS.friendly_fraud_rate, abs=0.0015
    )


def test_the_roll_forward_is_deterministic() -> None:
    one = roll_forward(PARAMS, seed=3, months=6, signup_scale=0.03)
    two = roll_forward(PARAMS, seed=3, months=6, signup_scale=0.03)
    assert one == two
