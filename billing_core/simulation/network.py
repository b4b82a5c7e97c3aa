"""The card network: whether a charge attempt succeeds, and with which decline code if not.

:func:`attempt_charges` answers a batch of attempts at once and returns, beside each outcome, the
probability of success it was drawn from (the ground truth a retry model is judged against).

The model, per attempt:

* an **expired** card always fails with ``expired_card`` until the customer (or an account
  updater) replaces it; a card that has **died** (lost, stolen, closed: its ``death_day`` has
  passed) or was refused with a **hard** code before (``blocked_code``) fails with that code,
  forever: hard declines never succeed on the same card;
* otherwise each decline reason is a competing hazard; the attempt succeeds when none fires:

  - ``insufficient_funds`` depends on financial health, on how far the customer is through their
    pay cycle (likelier just before payday: the 1st and the 15th for semi-monthly pay, month end
    for monthly pay, a weekday for weekly and biweekly pay), on the amount and the local hour;
    on a **retry** after insufficient funds, the chance that funds arrived depends on whether a
    payday passed since the last attempt, on the days since the first failure, on financial
    health, on the hour, and it fades with each earlier retry;
  - ``processing_error`` and ``try_again_later`` are transient: a retry usually succeeds;
  - ``do_not_honor`` (likelier for weak finances) and ``fraudulent`` (the issuer's own screen,
    much likelier on a stolen card) are hard.

Under the ``recession`` scenario financial health drops and insufficient funds rises on top.

Every draw is keyed by ``(customer_key, period_index, attempt_number)``: two policies that make
the same attempt face the same uniform, and a higher probability of success with the same uniform
can only turn a decline into a success.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from billing_core.book import MARKETS
from billing_core.errors import InvalidInput
from billing_core.money import currency
from billing_core.payments import DeclineCode
from billing_core.simulation import timeline
from billing_core.simulation.params import WorldParams
from billing_core.simulation.rng import BoolArray, FloatArray, IntArray, RandomSource, logit, sigmoid

#: decline codes by index; arrays of codes hold these indexes, and NO_DECLINE (-1) for a success
DECLINE_CODES: tuple[DeclineCode, ...] = (
    DeclineCode.INSUFFICIENT_FUNDS,
    DeclineCode.PROCESSING_ERROR,
    DeclineCode.TRY_AGAIN_LATER,
    DeclineCode.DO_NOT_HONOR,
    DeclineCode.STOLEN_CARD,
    DeclineCode.LOST_CARD,
    DeclineCode.FRAUDULENT,
    DeclineCode.EXPIRED_CARD,
)
NO_DECLINE = -1
(
    INSUFFICIENT_FUNDS,
    PROCESSING_ERROR,
    TRY_AGAIN_LATER,
    DO_NOT_HONOR,
    STOLEN_CARD,
    LOST_CARD,
    FRAUDULENT,
    EXPIRED_CARD,
) = range(8)
SOFT_CODES = np.array([INSUFFICIENT_FUNDS, PROCESSING_ERROR, TRY_AGAIN_LATER])
HARD_CODES = np.array([DO_NOT_HONOR, STOLEN_CARD, LOST_CARD, FRAUDULENT])
REFERENCE_AMOUNT_USD = 50.0
NEVER = np.iinfo(np.int64).max // 4  # a death day that never comes


def code_index(code: DeclineCode | str | None) -> int:
    """The index of ``code`` in :data:`DECLINE_CODES` (``NO_DECLINE`` for ``None``)."""
    if code is None:
        return NO_DECLINE
    try:
        return DECLINE_CODES.index(DeclineCode(code))
    except ValueError as exc:
        raise InvalidInput("decline_code", "one of " + ", ".join(DECLINE_CODES), code) from exc


def decode(codes: npt.ArrayLike) -> list[DeclineCode | None]:
    """Decline codes (``None`` for a success) from an array of indexes."""
    return [None if c < 0 else DECLINE_CODES[c] for c in np.asarray(codes, dtype=np.int64).tolist()]


def is_hard(codes: npt.ArrayLike) -> BoolArray:
    return np.isin(np.asarray(codes), HARD_CODES)


def is_soft(codes: npt.ArrayLike) -> BoolArray:
    return np.isin(np.asarray(codes), SOFT_CODES)


def usd_amount(
    amount_minor: npt.ArrayLike, currency_codes: Sequence[str] | npt.NDArray[np.str_]
) -> FloatArray:
    """Amounts in US dollars (by the rough price scales of :data:`billing_core.book.MARKETS`)."""
    amounts = np.asarray(amount_minor, dtype=np.float64)
    codes = np.broadcast_to(np.asarray(currency_codes), amounts.shape)
    out = np.empty(amounts.shape, dtype=np.float64)
    for code in np.unique(codes):
        if str(code) not in MARKETS:
            raise InvalidInput("currency", "one of " + ", ".join(MARKETS), str(code))
        scale = float(MARKETS[str(code)][1]) * 10.0 ** currency(str(code)).exponent
        mask = codes == code
        out[mask] = amounts[mask] / scale
    return out


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    """The network's answers to a batch of attempts (arrays in the batch's order)."""

    p_success: FloatArray  # the probability the outcome was drawn from (ground truth)
    succeeded: BoolArray
    decline_code: npt.NDArray[np.int8]  # index into DECLINE_CODES, NO_DECLINE on success

    @property
    def card_unusable(self) -> BoolArray:
        """Declines that no retry on this card can fix: hard codes and expired cards."""
        return np.asarray(is_hard(self.decline_code) | (self.decline_code == EXPIRED_CARD), dtype=np.bool_)

    def codes(self) -> list[DeclineCode | None]:
        return decode(self.decline_code)

    def __len__(self) -> int:
        return len(self.p_success)


@lru_cache(maxsize=64)
def calibrated_funds_intercept(params: WorldParams) -> float:
    """The intercept that makes the mean first-attempt insufficient-funds rate the target.

    The mean runs over a fixed sample of card-paying accounts (their financial health and invoice
    amounts) and the whole pay cycle, at a daytime hour, in the baseline.
    """
    from billing_core.simulation.population import account_sample, invoice_amount_usd

    sample = account_sample(params)
    cards = ~sample.pays_by_invoice
    health = logit(sample.traits.financial_health[cards])
    amount = invoice_amount_usd(sample.plan[cards], sample.seats[cards])
    position = (np.arange(12) + 0.5) / 12
    shape = -params.insufficient_funds_health_coef * (health - params.financial_health[0])
    shape = shape + params.insufficient_funds_amount_coef * np.log(amount / REFERENCE_AMOUNT_USD)
    shape = shape[:, None] + params.insufficient_funds_cycle_coef * (position[None, :] - 0.5)
    return solve_intercept(shape, params.insufficient_funds_rate)


def solve_intercept(shape: FloatArray, target: float) -> float:
    """``b`` such that ``mean(sigmoid(b + shape)) == target`` (bisection)."""
    lo, hi = -30.0, 30.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if float(np.mean(sigmoid(mid + shape))) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def hour_term(params: WorldParams, hour: npt.ArrayLike) -> FloatArray:
    """Logit bonus of a local hour for funds to be available (night bonus, evening penalty)."""
    h = np.asarray(hour, dtype=np.int64) % 24
    return np.asarray(
        np.where(h < 7, params.retry_night_bonus, np.where(h >= 17, -params.retry_evening_penalty, 0.0)),
        dtype=np.float64,
    )


def attempt_charges(
    params: WorldParams,
    rng: RandomSource,
    *,
    customer_key: npt.ArrayLike,
    period_index: npt.ArrayLike,
    attempt_number: npt.ArrayLike,
    day: npt.ArrayLike,
    hour: npt.ArrayLike,
    amount_usd: npt.ArrayLike,
    financial_health: npt.ArrayLike,
    payday_cycle: npt.ArrayLike,
    payday_phase: npt.ArrayLike,
    card_expired: npt.ArrayLike = False,
    card_death_day: npt.ArrayLike = NEVER,
    card_death_code: npt.ArrayLike = NO_DECLINE,
    blocked_code: npt.ArrayLike = NO_DECLINE,
    previous_code: npt.ArrayLike = NO_DECLINE,
    days_since_previous: npt.ArrayLike = 0.0,
    days_since_first_failure: npt.ArrayLike = 0.0,
    stolen_card: npt.ArrayLike = False,
) -> ChargeOutcome:
    """Answer a batch of charge attempts.

    ``attempt_number`` is 0 for an invoice's first attempt and counts every later attempt on
    that invoice. ``previous_code`` is the code of the invoice's last declined attempt *on this
    card*; pass ``NO_DECLINE`` after the customer replaced the card (the attempt is then answered
    as a first attempt on the new card). ``hour`` is the customer's local hour. ``blocked_code``
    is the hard code an earlier attempt on this card got (``NO_DECLINE`` if none): the runner
    keeps it per card from :attr:`ChargeOutcome.card_unusable`.
    """
    key = np.asarray(customer_key, dtype=np.int64)
    shape = np.broadcast_shapes(
        key.shape, np.shape(period_index), np.shape(attempt_number), np.shape(day), np.shape(amount_usd)
    )

    def ints(value: npt.ArrayLike) -> IntArray:
        return np.broadcast_to(np.asarray(value, dtype=np.int64), shape)

    def floats(value: npt.ArrayLike) -> FloatArray:
        return np.broadcast_to(np.asarray(value, dtype=np.float64), shape)

    def bools(value: npt.ArrayLike) -> BoolArray:
        return np.broadcast_to(np.asarray(value, dtype=np.bool_), shape)

    key_b = ints(key)
    period = ints(period_index)
    attempt = ints(attempt_number)
    d = ints(day)
    h = ints(hour)
    amount = np.maximum(floats(amount_usd), 0.01)
    health = floats(financial_health)
    cycle = ints(payday_cycle)
    phase = ints(payday_phase)
    expired = bools(card_expired)
    death_day = ints(card_death_day)
    death_code = ints(card_death_code)
    blocked = ints(blocked_code)
    previous = ints(previous_code)
    since_previous = np.maximum(floats(days_since_previous), 0.0)
    since_first = np.maximum(floats(days_since_first_failure), 0.0)
    stolen = bools(stolen_card)
    if np.any(attempt < 0):
        raise InvalidInput("attempt_number", "attempt numbers of at least 0", int(attempt.min()))

    month = timeline.days(params.start, d).month_index
    recession = params.active("recession", month)
    hl = logit(health) + params.health_shift(month)
    centred = hl - params.financial_health[0]
    night = hour_term(params, h)

    # first attempts (and attempts on a fresh card)
    position = timeline.cycle_position(params.start, d, cycle, phase)
    funds_logit = (
        calibrated_funds_intercept(params)
        - params.insufficient_funds_health_coef * centred
        + params.insufficient_funds_cycle_coef * (position - 0.5)
        + params.insufficient_funds_amount_coef * np.log(amount / REFERENCE_AMOUNT_USD)
        + np.where(recession, params.recession_funds_shift, 0.0)
        - night
    )
    p_funds_first = sigmoid(funds_logit)

    # retries after a soft decline on the same card
    retry = (attempt >= 1) & is_soft(previous)
    payday_passed = timeline.payday_between(
        params.start, d - np.ceil(since_previous).astype(np.int64), d, cycle, phase
    )
    earlier_retries = np.maximum(attempt - 1, 0)
    funds_back = sigmoid(
        params.retry_funds_base
        + params.retry_funds_health_coef * centred
        + params.retry_funds_payday_coef * payday_passed
        + params.retry_funds_elapsed_coef * np.log1p(since_first)
        - params.retry_attempt_decay * earlier_retries
        + night
        - np.where(recession, params.recession_funds_shift, 0.0)
    )
    transient_ok = sigmoid(
        params.retry_transient_base
        + params.retry_transient_delay_coef * np.log1p(since_previous)
        - params.retry_attempt_decay * earlier_retries
        + 0.5 * night
    )

    hazards = np.zeros((*shape, len(DECLINE_CODES)), dtype=np.float64)

    def hazard(p: npt.ArrayLike) -> FloatArray:
        return np.asarray(
            -np.log1p(-np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0 - 1e-12)), dtype=np.float64
        )

    after_funds = retry & (previous == INSUFFICIENT_FUNDS)
    after_transient = retry & ~after_funds
    first = ~retry
    hazards[..., INSUFFICIENT_FUNDS] = np.where(
        first,
        hazard(p_funds_first),
        np.where(after_funds, hazard(1.0 - funds_back), 0.3 * hazard(1.0 - transient_ok)),
    )
    same_transient = np.where(after_transient, 0.7 * hazard(1.0 - transient_ok), 0.0)
    hazards[..., PROCESSING_ERROR] = np.where(
        first,
        hazard(params.processing_error_rate),
        np.where(previous == PROCESSING_ERROR, same_transient, 0.0),
    )
    hazards[..., TRY_AGAIN_LATER] = np.where(
        first, hazard(params.try_again_later_rate), np.where(previous == TRY_AGAIN_LATER, same_transient, 0.0)
    )
    hazards[..., DO_NOT_HONOR] = hazard(
        sigmoid(logit(params.do_not_honor_rate) - params.do_not_honor_health_coef * centred)
    )
    fraud_screen = (
        params.issuer_fraud_decline_rate
        * np.where(stolen, 40.0, 1.0)
        * (amount / REFERENCE_AMOUNT_USD) ** 0.3
    )
    hazards[..., FRAUDULENT] = hazard(np.minimum(fraud_screen, 0.9))

    p_success = np.exp(-hazards.sum(axis=-1))
    code = rng.choice(np.maximum(hazards, 1e-300), "network.code", key_b, period, attempt)

    dead_code = np.where(blocked >= 0, blocked, np.where(death_day <= d, death_code, NO_DECLINE))
    dead = dead_code >= 0
    p_success = np.where(expired | dead, 0.0, p_success)
    code = np.where(expired, EXPIRED_CARD, np.where(dead, dead_code, code))

    u = rng.uniforms("network.outcome", key_b, period, attempt)
    succeeded = u < p_success
    return ChargeOutcome(
        p_success=np.asarray(p_success, dtype=np.float64),
        succeeded=np.asarray(succeeded, dtype=np.bool_),
        decline_code=np.where(succeeded, NO_DECLINE, code).astype(np.int8),
    )
