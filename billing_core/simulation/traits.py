"""Each customer's hidden traits: what drives their behaviour but is never recorded by billing.

================  ======================================================================
trait             drives
================  ======================================================================
financial_health  insufficient funds, paying invoices on time, responding to reminders
engagement        usage, voluntary churn (it drifts day by day: see usage.drift_engagement)
price_sensitivity churn after a price increase
responsiveness    response to a reminder, per channel (email, sms, call)
preferred_hour    the local hour a message is most welcome
honesty           disputes and friendly fraud (low honesty disputes valid charges)
payday_cycle      weekly, biweekly, semi_monthly or monthly pay, and its phase
================  ======================================================================

Traits in [0, 1] are logit-normal: ``sigmoid(mean + sd * z)`` with ``(mean, sd)`` from
:class:`WorldParams`. All are keyed by the customer's key, so a customer has the same traits in
every run of the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from billing_core.simulation.params import WorldParams
from billing_core.simulation.rng import FloatArray, IntArray, RandomSource, sigmoid
from billing_core.simulation.timeline import BIWEEKLY, WEEKLY

#: the seed of the fixed sample the world calibrates its intercepts on (never a run's seed)
CALIBRATION_SEED = 20_240_601
FRIDAY = 4


@dataclass(frozen=True, slots=True)
class Traits:
    """Hidden traits of a batch of customers (arrays share their first axis)."""

    financial_health: FloatArray
    engagement: FloatArray
    price_sensitivity: FloatArray
    responsiveness: FloatArray  # (n, 3): email, sms, call
    preferred_hour: IntArray
    honesty: FloatArray
    payday_cycle: IntArray  # index into timeline.PAYDAY_CYCLES
    payday_phase: IntArray

    def __len__(self) -> int:
        return len(self.financial_health)

    def take(self, index: npt.ArrayLike) -> Traits:
        """The traits of a subset (an index array or a boolean mask)."""
        return Traits(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Traits]) -> Traits:
        return Traits(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Traits)})

    def columns(self) -> dict[str, npt.NDArray[np.generic]]:
        """Flat columns (responsiveness split per channel), e.g. for the truth tables."""
        out: dict[str, npt.NDArray[np.generic]] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "responsiveness":
                for i, channel in enumerate(("email", "sms", "call")):
                    out[f"responsiveness_{channel}"] = value[:, i]
            else:
                out[f.name] = value
        return out


def _logit_normal(rng: RandomSource, stream: str, key: IntArray, mean_sd: tuple[float, float]) -> FloatArray:
    mean, sd = mean_sd
    return sigmoid(mean + sd * rng.normals(stream, key))


def draw_traits(params: WorldParams, rng: RandomSource, customer_key: npt.ArrayLike) -> Traits:
    """The hidden traits of the customers ``customer_key``."""
    key = np.asarray(customer_key, dtype=np.int64)
    responsiveness = np.stack(
        [
            _logit_normal(rng, "trait.responsiveness_email", key, params.responsiveness_email),
            _logit_normal(rng, "trait.responsiveness_sms", key, params.responsiveness_sms),
            _logit_normal(rng, "trait.responsiveness_call", key, params.responsiveness_call),
        ],
        axis=-1,
    )
    evening = rng.uniforms("trait.hour_kind", key) < params.preferred_hour_evening_share
    office_mean, office_sd = params.preferred_hour_office
    evening_mean, evening_sd = params.preferred_hour_evening
    z = rng.normals("trait.hour", key)
    hour = np.where(evening, evening_mean + evening_sd * z, office_mean + office_sd * z)
    cycle = rng.choice(params.payday_cycle_shares, "trait.payday_cycle", key)
    weekday = np.where(
        rng.uniforms("trait.payday_weekday_kind", key) < 0.7,
        FRIDAY,
        rng.integers(0, 5, "trait.payday_weekday", key),
    )
    phase = np.where(
        cycle == WEEKLY,
        weekday,
        np.where(cycle == BIWEEKLY, rng.integers(0, 14, "trait.payday_phase", key), 0),
    )
    return Traits(
        financial_health=_logit_normal(rng, "trait.financial_health", key, params.financial_health),
        engagement=_logit_normal(rng, "trait.engagement", key, params.engagement),
        price_sensitivity=_logit_normal(rng, "trait.price_sensitivity", key, params.price_sensitivity),
        responsiveness=responsiveness,
        preferred_hour=(np.round(hour).astype(np.int64) % 24),
        honesty=_logit_normal(rng, "trait.honesty", key, params.honesty),
        payday_cycle=cycle,
        payday_phase=phase.astype(np.int64),
    )


@lru_cache(maxsize=16)
def trait_sample(params: WorldParams, size: int = 20_000) -> Traits:
    """A fixed sample of the trait distribution, independent of any run's seed (for calibration)."""
    return draw_traits(params, RandomSource(CALIBRATION_SEED), np.arange(size, dtype=np.int64))
