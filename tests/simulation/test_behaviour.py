"""Reminders, voluntary churn, invoices on net terms and disputes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from billing_core.disputes import DisputeCategory
from billing_core.errors import InvalidInput
from billing_core.simulation import behaviour, timeline
from billing_core.simulation.params import CALL, EMAIL, NO_REMINDER, SMS, WorldParams
from billing_core.simulation.population import account_sample, invoice_amount_usd
from billing_core.simulation.rng import RandomSource
from billing_core.simulation.traits import trait_sample

PARAMS = WorldParams()
RNG = RandomSource(8)
N = 40_000
KEYS = np.arange(N)
SAMPLE = trait_sample(PARAMS, N)


def _within(observed: float, p: float, n: int) -> bool:
    return abs(observed - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-3


# -- reminders ----------------------------------------------------------------------------------


def _remind(**overrides: Any) -> behaviour.ReminderResponse:
    values: dict[str, Any] = {
        "customer_key": KEYS,
        "period_index": 1,
        "reminder_number": 0,
        "channel": EMAIL,
        "local_hour": 11,
        "preferred_hour": SAMPLE.preferred_hour,
        "responsiveness": SAMPLE.responsiveness,
        "financial_health": SAMPLE.financial_health,
        "day": 60,
    }
    values.update(overrides)
    return behaviour.reminder_response(PARAMS, RNG, **values)


def test_response_frequency_matches_the_recorded_probability() -> None:
    for channel in (EMAIL, SMS, CALL, NO_REMINDER):
        out = _remind(channel=channel)
        assert np.all((out.p_respond >= 0) & (out.p_respond <= out.p_eventual) & (out.p_eventual <= 1))
        assert _within(out.responds.mean(), out.p_respond.mean(), N)
        assert np.all(out.delay_days[out.responds] <= 7)


def test_more_reminders_mean_lower_response() -> None:
    p = [_remind(reminder_number=k).p_respond.mean() for k in range(5)]
    assert p == sorted(p, reverse=True)
    assert p[0] > p[-1] + 0.1


def test_channels_hours_and_traits_shape_the_response() -> None:
    email, sms, call, none = (_remind(channel=c).p_eventual.mean() for c in (EMAIL, SMS, CALL, NO_REMINDER))
    assert call > sms > email > none
    assert _remind(channel=SMS, local_hour=3).p_eventual.mean() < sms - 0.1  # texts at night annoy
    assert _remind(channel="email").p_eventual.mean() == pytest.approx(email)
    poor, rich = (_remind(financial_health=np.full(N, h)).p_eventual.mean() for h in (0.2, 0.9))
    assert rich > poor
    shy, keen = (_remind(responsiveness=np.full((N, 3), r)).p_eventual.mean() for r in (0.2, 0.8))
    assert keen > shy
    with pytest.raises(InvalidInput) as error:
        _remind(channel="pigeon")
    assert error.value.field == "channel"


def test_a_reminder_faces_the_same_uniforms_on_any_channel() -> None:
    email, sms = _remind(channel=EMAIL), _remind(channel=SMS)
    higher = sms.p_eventual >= email.p_eventual
    decided_email = np.isfinite(email.delay_days)
    assert np.all(np.isfinite(sms.delay_days)[higher & decided_email])


# -- voluntary churn ----------------------------------------------------------------------------


def _churn(params: WorldParams = PARAMS, **overrides: Any) -> behaviour.ChurnDraw:
    values: dict[str, Any] = {
        "customer_key": KEYS,
        "month": 14,
        "tenure_months": np.arange(N) % 24,
        "engagement": SAMPLE.engagement,
        "engagement_90d_ago": SAMPLE.engagement,
        "price_sensitivity": SAMPLE.price_sensitivity,
    }
    values.update(overrides)
    return behaviour.voluntary_churn(params, RNG, **values)


def test_churn_probabilities_are_consistent() -> None:
    out = _churn()
    assert np.all((out.p_churn_30d >= 0) & (out.p_churn_30d <= out.p_churn_90d) & (out.p_churn_90d <= 1))
    lo, hi = PARAMS.churn_lead_days
    start = int(timeline.month_start_day(PARAMS.start, 14))
    lead = out.cancel_day[out.decides] - start
    assert lead.min() >= lo
    assert lead.max() <= hi
    assert np.all(out.cancel_day[~out.decides] == -1)


def test_churn_within_30_and_90_days_is_calibrated() -> None:
    """Simulate three months with the state held constant and compare with the recorded truth."""
    start = int(timeline.month_start_day(PARAMS.start, 14))
    tenure = np.arange(N) % 24
    first = _churn(tenure_months=tenure)
    cancel = first.cancel_day.copy()
    for j in (1, 2):
        nxt = _churn(month=14 + j, tenure_months=tenure + j, pending_cancel_day=cancel)
        cancel = np.where(cancel >= 0, cancel, nxt.cancel_day)
    churned_30 = (cancel >= 0) & (cancel < start + 30)
    churned_90 = (cancel >= 0) & (cancel < start + 90)
    assert _within(churned_30.mean(), first.p_churn_30d.mean(), N)
    assert _within(churned_90.mean(), first.p_churn_90d.mean(), N)


def test_pending_cancellations_have_exact_truth() -> None:
    start = int(timeline.month_start_day(PARAMS.start, 14))
    out = _churn(
        customer_key=KEYS[:3],
        tenure_months=5,
        engagement=0.5,
        engagement_90d_ago=0.5,
        price_sensitivity=0.5,
        pending_cancel_day=[start + 10, start + 60, -1],
    )
    assert out.p_churn_30d[:2].tolist() == [1.0, 0.0]
    assert out.p_churn_90d[:2].tolist() == [1.0, 1.0]
    assert not out.decides[:2].any()
    assert out.cancel_day[:2].tolist() == [start + 10, start + 60]


def test_monthly_decisions_meet_the_voluntary_churn_target() -> None:
    p = _churn().p_decide.mean()
    annual = 1 - (1 - p) ** 12
    assert annual == pytest.approx(PARAMS.voluntary_annual_churn, abs=0.01)


def test_churn_rises_with_disengagement_disputes_and_price_increases() -> None:
    base = _churn().p_decide.mean()
    assert _churn(engagement=SAMPLE.engagement * 0.5).p_decide.mean() > base
    assert _churn(engagement_90d_ago=np.minimum(SAMPLE.engagement * 1.5, 0.99)).p_decide.mean() > base
    assert _churn(unresolved_disputes=1).p_decide.mean() > base
    assert (
        _churn(tenure_months=np.full(N, 1)).p_decide.mean()
        > _churn(tenure_months=np.full(N, 30)).p_decide.mean()
    )
    priced = WorldParams.for_scenario("price_increase", 14)
    shock = _churn(priced).p_decide
    assert shock.mean() > base
    sensitive = SAMPLE.price_sensitivity > 0.5
    increase = shock / _churn().p_decide
    assert increase[sensitive].mean() > increase[~sensitive].mean()
    assert _churn(priced, month=14 + priced.price_shock_months).p_decide.mean() == pytest.approx(
        _churn(month=14 + priced.price_shock_months).p_decide.mean()
    )


# -- invoices on net terms ----------------------------------------------------------------------


def _invoices(params: WorldParams = PARAMS, issue_day: int = 100) -> behaviour.InvoicePayment:
    sample = account_sample(PARAMS)
    payers = np.nonzero(sample.pays_by_invoice)[0]
    return behaviour.invoice_payment(
        params,
        RNG,
        customer_key=sample.customer_key[payers],
        period_index=3,
        issue_day=issue_day,
        due_day=issue_day + sample.net_terms_days[payers],
        financial_health=sample.traits.financial_health[payers],
        amount_usd=invoice_amount_usd(sample.plan[payers], sample.seats[payers]),
    )


def test_about_the_cited_share_of_invoices_is_paid_late() -> None:
    out = _invoices()
    n = len(out.paid_by_due)
    assert 1 - out.p_paid_by_due.mean() == pytest.approx(PARAMS.late_share, abs=0.01)
    assert _within(out.paid_by_due.mean(), out.p_paid_by_due.mean(), n)
    assert np.all(out.days_late[out.paid_by_due] == 0)
    assert np.all(out.days_late[~out.paid_by_due] >= 1)


def test_recession_slows_payment_after_the_switch_only() -> None:
    recession = WorldParams.for_scenario("recession", 6)
    early, late = (int(timeline.month_start_day(PARAMS.start, m)) for m in (3, 8))
    assert _invoices(recession, early).p_paid_by_due.mean() == pytest.approx(
        _invoices(PARAMS, early).p_paid_by_due.mean()
    )
    hit, base = _invoices(recession, late), _invoices(PARAMS, late)
    assert hit.p_paid_by_due.mean() < base.p_paid_by_due.mean() - 0.05
    assert hit.days_late[~hit.paid_by_due].mean() > base.days_late[~base.paid_by_due].mean()


# -- disputes -----------------------------------------------------------------------------------


def _disputes(**overrides: Any) -> behaviour.DisputeDraw:
    values: dict[str, Any] = {
        "customer_key": KEYS,
        "period_index": 4,
        "paid_day": 120,
        "honesty": SAMPLE.honesty,
    }
    values.update(overrides)
    return behaviour.dispute_draw(PARAMS, RNG, **values)


def test_dispute_rate_and_calibration() -> None:
    out = _disputes()
    assert out.p_dispute.mean() == pytest.approx(PARAMS.dispute_rate + PARAMS.friendly_fraud_rate, rel=0.05)
    many = behaviour.dispute_draw(
        PARAMS, RNG, customer_key=np.arange(400_000), period_index=4, paid_day=120, honesty=0.5
    )
    assert _within(many.disputes.mean(), many.p_dispute.mean(), 400_000)
    assert np.all(many.category[~many.disputes] == -1)
    assert np.all(many.category[many.disputes] >= 0)
    assert np.all(many.open_day[many.disputes] > 120)


def test_low_honesty_disputes_more_and_friendly_fraud_claims_unrecognised() -> None:
    honest, dishonest = (_disputes(honesty=np.full(N, h)) for h in (0.99, 0.3))
    assert dishonest.p_dispute.mean() > 3 * honest.p_dispute.mean()
    assert dishonest.p_friendly_fraud.mean() > 3 * honest.p_friendly_fraud.mean()
    unrecognised = list(DisputeCategory).index(DisputeCategory.UNRECOGNISED_OR_FRAUDULENT)
    many = behaviour.dispute_draw(
        PARAMS, RNG, customer_key=np.arange(300_000), period_index=1, paid_day=50, honesty=0.2
    )
    assert many.friendly_fraud.any()
    assert np.all(many.category[many.friendly_fraud] == unrecognised)
    assert np.all(many.disputes[many.friendly_fraud])


def test_an_incident_makes_its_category_likely() -> None:
    canceled = list(DisputeCategory).index(DisputeCategory.CANCELED_BUT_CHARGED)
    out = _disputes(incident=canceled)
    assert out.p_dispute.mean() > 10 * _disputes().p_dispute.mean()
    assert np.mean(out.category[out.disputes] == canceled) > 0.8
