"""Daily usage (metered units, e.g. API calls) per customer.

A customer's expected usage on a day is::

    scale(plan, seats, add-on)                      usage_per_day x seats (x add-on factor)
      x (0.2 + 1.6 x engagement)                    engagement drifts: drift_engagement
      x onboarding ramp x growth with tenure
      x weekday factor x yearly season x holidays
      x (1 - churn_usage_drop x churn_progress)     a churn-bound customer fades out
      x takeover spike                              an account takeover spikes, then decays

and the day's count is that times log-normal noise, rounded stochastically. Engagement is a
bounded random walk on the logit scale, pulled gently back to the customer's own level.
``churn_progress`` is 0 until the customer decides to leave (behaviour.voluntary_churn) and
grows linearly to 1 on the day they cancel, so usage declines over the weeks before voluntary
churn. Every draw is keyed by ``(customer_key, day)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from billing_core.simulation import timeline
from billing_core.simulation.params import PLANS, WorldParams
from billing_core.simulation.rng import FloatArray, IntArray, RandomSource, logit, sigmoid


def usage_scale(
    params: WorldParams, *, plan: npt.ArrayLike, seats: npt.ArrayLike, metered_addon: npt.ArrayLike
) -> FloatArray:
    """Expected daily units of an average, settled customer on ``plan``."""
    plan_i = np.asarray(plan, dtype=np.int64)
    per_seat = np.asarray([p.per_seat for p in PLANS])[plan_i]
    base = np.asarray(params.usage_per_day, dtype=np.float64)[plan_i]
    base = np.where(per_seat, base * np.asarray(seats, dtype=np.float64), base)
    return np.asarray(
        base * np.where(np.asarray(metered_addon, dtype=np.bool_), params.metered_addon_usage_factor, 1.0),
        dtype=np.float64,
    )


def drift_engagement(
    params: WorldParams,
    rng: RandomSource,
    *,
    customer_key: npt.ArrayLike,
    day: int,
    engagement: npt.ArrayLike,
    anchor: npt.ArrayLike,
) -> FloatArray:
    """Engagement after one day's step, pulled towards ``anchor`` (the customer's own level)."""
    key = np.asarray(customer_key, dtype=np.int64)
    current = logit(engagement)
    home = logit(anchor)
    step = params.engagement_step_sd * rng.normals("usage.engagement", key, day)
    return sigmoid(current + params.engagement_reversion * (home - current) + step)


def seasonality(params: WorldParams, day: npt.ArrayLike) -> FloatArray:
    """Weekly, yearly and holiday factors of ``day``."""
    cal = timeline.days(params.start, day)
    weekly = np.asarray(params.weekday_usage_factors, dtype=np.float64)[cal.weekday]
    yearly = 1.0 + params.yearly_usage_amplitude * np.sin(2 * np.pi * (cal.day_of_year - 80) / 365.25)
    holiday = ((cal.month == 12) & (cal.day_of_month >= 24)) | ((cal.month == 1) & (cal.day_of_month == 1))
    return np.asarray(weekly * yearly * np.where(holiday, params.holiday_usage_factor, 1.0), dtype=np.float64)


def takeover_factor(params: WorldParams, days_since_takeover: npt.ArrayLike) -> FloatArray:
    """Usage multiplier after an account takeover (1 when there is none: pass -1)."""
    since = np.asarray(days_since_takeover, dtype=np.float64)
    inside = (since >= 0) & (since < params.takeover_spike_days)
    spike = 1.0 + (params.takeover_spike_multiplier - 1.0) * np.exp(
        -np.maximum(since, 0) / max(params.takeover_spike_days / 2, 1)
    )
    return np.asarray(np.where(inside, spike, 1.0), dtype=np.float64)


def expected_usage(
    params: WorldParams,
    *,
    day: npt.ArrayLike,
    scale: npt.ArrayLike,
    engagement: npt.ArrayLike,
    tenure_days: npt.ArrayLike,
    churn_progress: npt.ArrayLike = 0.0,
    days_since_takeover: npt.ArrayLike = -1,
) -> FloatArray:
    """The mean of :func:`daily_usage` (before noise)."""
    tenure = np.maximum(np.asarray(tenure_days, dtype=np.float64), 0.0)
    ramp = 1.0 - 0.7 * np.exp(-tenure / params.onboarding_days)
    growth = (1.0 + params.usage_growth_per_year) ** (tenure / 365.0)
    progress = np.clip(np.asarray(churn_progress, dtype=np.float64), 0.0, 1.0)
    return np.asarray(
        np.asarray(scale, dtype=np.float64)
        * (0.2 + 1.6 * np.asarray(engagement, dtype=np.float64))
        * ramp
        * growth
        * seasonality(params, day)
        * (1.0 - params.churn_usage_drop * progress)
        * takeover_factor(params, days_since_takeover),
        dtype=np.float64,
    )


def daily_usage(
    params: WorldParams,
    rng: RandomSource,
    *,
    customer_key: npt.ArrayLike,
    day: int,
    scale: npt.ArrayLike,
    engagement: npt.ArrayLike,
    tenure_days: npt.ArrayLike,
    churn_progress: npt.ArrayLike = 0.0,
    days_since_takeover: npt.ArrayLike = -1,
) -> IntArray:
    """Units each customer uses on ``day`` (integers, at least 0)."""
    key = np.asarray(customer_key, dtype=np.int64)
    mean = expected_usage(
        params,
        day=day,
        scale=scale,
        engagement=engagement,
        tenure_days=tenure_days,
        churn_progress=churn_progress,
        days_since_takeover=days_since_takeover,
    )
    sd = params.usage_noise_sd
    noisy = mean * np.exp(sd * rng.normals("usage.noise", key, day) - 0.5 * sd * sd)
    return np.floor(noisy + rng.uniforms("usage.round", key, day)).astype(np.int64)
