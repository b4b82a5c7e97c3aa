"""Fraud: stolen-card signups, card testing, account takeover and friendly fraud, with truth.

Four kinds (:data:`FRAUD_KINDS`):

* **stolen_card**: a fraudster signs up with someone else's card. Each signup's probability is a
  logistic function of what a signup shows (disposable email, an IP address in another country
  than the billing country, a night-time signup, the channel, the plan), with an intercept solved
  so that the mean rate is ``stolen_card_signup_rate``. The card's owner notices weeks later: the
  chargeback comes ``chargeback_delay_days`` after the signup (log-normal, 7 to 120 days), and the
  card dies with ``stolen_card`` that day. Every successful payment made on the card before then is
  charged back (a payment on the chargeback day or later cannot succeed: the card is dead).
* **card_testing**: bursts of fresh accounts sharing a BIN, and mostly a device and one to three
  IP addresses, making many small attempts within minutes (:func:`draw_card_testing`).
* **account_takeover**: an existing account is taken over (a small daily hazard): the payment
  method is changed to a stolen card and usage spikes (see usage.daily_usage) until the takeover is
  contained; payments on that card are fraudulent and charged back like a stolen card's.
* **friendly_fraud**: a real customer disputes a valid charge as unrecognised; likelier for low
  honesty (:func:`friendly_fraud_probability`, drawn with the disputes in behaviour.py).

Under the ``fraud_wave`` scenario every rate is multiplied by ``fraud_wave_multiplier``.

A payment's fraud probability (:func:`payment_fraud_probability`) combines the draws its label
depends on: the signup's (stolen card), the takeover's, and the friendly-fraud draw of its invoice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from billing_core.simulation.cards import Cards, draw_cards
from billing_core.simulation.network import (
    DO_NOT_HONOR,
    EXPIRED_CARD,
    FRAUDULENT,
    INSUFFICIENT_FUNDS,
    LOST_CARD,
    NO_DECLINE,
    STOLEN_CARD,
    solve_intercept,
)
from billing_core.simulation.params import CHANNELS, PLANS, WorldParams
from billing_core.simulation.rng import BoolArray, FloatArray, IntArray, RandomSource, logit, sigmoid
from billing_core.simulation.timeline import days
from billing_core.simulation.traits import trait_sample

if TYPE_CHECKING:
    from billing_core.simulation.population import Signups

FRAUD_KINDS: tuple[str, ...] = ("none", "stolen_card", "card_testing", "account_takeover", "friendly_fraud")
NOT_FRAUD, STOLEN_CARD_SIGNUP, CARD_TESTING, ACCOUNT_TAKEOVER, FRIENDLY_FRAUD = range(5)
NIGHT_HOURS = 6  # a signup before 6:00 local time counts as night
#: decline codes of tested card numbers that do not work (DECLINE_CODES indexes) and their shares
CARD_TESTING_DECLINES = np.array(
    [DO_NOT_HONOR, STOLEN_CARD, LOST_CARD, FRAUDULENT, INSUFFICIENT_FUNDS, EXPIRED_CARD]
)
CARD_TESTING_DECLINE_SHARES = (0.35, 0.15, 0.10, 0.15, 0.10, 0.15)  # assumption


def signup_fraud_shape(
    params: WorldParams,
    *,
    channel: npt.ArrayLike,
    plan: npt.ArrayLike,
    disposable: npt.ArrayLike,
    ip_mismatch: npt.ArrayLike,
    night: npt.ArrayLike,
) -> FloatArray:
    """The log-odds of a stolen-card signup, without the intercept."""
    return np.asarray(
        np.asarray(params.fraud_channel_coefs)[np.asarray(channel, dtype=np.int64)]
        + np.asarray(params.fraud_plan_coefs)[np.asarray(plan, dtype=np.int64)]
        + params.fraud_disposable_coef * np.asarray(disposable, dtype=np.float64)
        + params.fraud_ip_mismatch_coef * np.asarray(ip_mismatch, dtype=np.float64)
        + params.fraud_night_coef * np.asarray(night, dtype=np.float64),
        dtype=np.float64,
    )


@lru_cache(maxsize=64)
def calibrated_signup_intercept(params: WorldParams, rate: float) -> float:
    """The intercept that makes the mean signup fraud probability ``rate``.

    The mean is exact: it enumerates every combination of channel, plan, disposable email, IP
    mismatch and night signup with the probabilities the population draws them with.
    """
    hours = np.asarray(params.signup_hour_weights, dtype=np.float64)
    p_night = float(hours[:NIGHT_HOURS].sum() / hours.sum())
    channel_shares = np.asarray(params.channel_shares) / sum(params.channel_shares)
    plan_shares = np.asarray(params.plan_shares_by_channel, dtype=np.float64)
    plan_shares = plan_shares / plan_shares.sum(axis=1, keepdims=True)
    c, p, d, m, n = np.meshgrid(
        np.arange(len(CHANNELS)), np.arange(len(PLANS)), [0, 1], [0, 1], [0, 1], indexing="ij"
    )
    weight = (
        channel_shares[c]
        * plan_shares[c, p]
        * np.where(d == 1, params.disposable_email_share, 1 - params.disposable_email_share)
        * np.where(m == 1, params.ip_country_mismatch_share, 1 - params.ip_country_mismatch_share)
        * np.where(n == 1, p_night, 1 - p_night)
    ).ravel()
    shape = signup_fraud_shape(params, channel=c, plan=p, disposable=d, ip_mismatch=m, night=n).ravel()
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if float(np.sum(weight * sigmoid(mid + shape))) < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _per_month(params: WorldParams, month: npt.ArrayLike, base_rate: float) -> tuple[FloatArray, FloatArray]:
    """Rates per element after the fraud wave, and the distinct rates (for cached intercepts)."""
    rate = np.minimum(base_rate * params.fraud_multiplier(month), 0.5)
    return np.asarray(rate, dtype=np.float64), np.unique(rate)


def signup_fraud_probability(
    params: WorldParams,
    *,
    month: npt.ArrayLike,
    channel: npt.ArrayLike,
    plan: npt.ArrayLike,
    disposable: npt.ArrayLike,
    ip_mismatch: npt.ArrayLike,
    night: npt.ArrayLike,
) -> FloatArray:
    """The probability that each signup is a fraudster on a stolen card."""
    shape = signup_fraud_shape(
        params, channel=channel, plan=plan, disposable=disposable, ip_mismatch=ip_mismatch, night=night
    )
    rate, distinct = _per_month(
        params, np.broadcast_to(np.asarray(month), shape.shape), params.stolen_card_signup_rate
    )
    intercept = np.zeros(shape.shape, dtype=np.float64)
    for r in distinct:
        intercept[rate == r] = calibrated_signup_intercept(params, float(r))
    return sigmoid(intercept + shape)


def chargeback_delay_days(
    params: WorldParams, rng: RandomSource, stream: str, *keys: npt.ArrayLike
) -> IntArray:
    """Days from a fraudulent payment (or signup) to its chargeback: log-normal, 7 to 120 days."""
    z = rng.normals(stream, *keys)
    days = params.chargeback_delay_median_days * np.exp(params.chargeback_delay_log_sd * z)
    return np.clip(np.round(days), 7, 120).astype(np.int64)


def takeover_probability(params: WorldParams, month: npt.ArrayLike) -> FloatArray:
    """The daily probability that an account is taken over."""
    daily = params.takeover_rate_per_year / 365.0 * params.fraud_multiplier(month)
    return np.asarray(-np.expm1(-daily), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Takeovers:
    p_takeover: FloatArray
    taken_over: BoolArray


def draw_takeovers(
    params: WorldParams, rng: RandomSource, *, customer_key: npt.ArrayLike, day: int, month: int
) -> Takeovers:
    """Which of ``customer_key`` (active accounts) are taken over on ``day``."""
    key = np.asarray(customer_key, dtype=np.int64)
    p = np.broadcast_to(takeover_probability(params, month), key.shape).astype(np.float64)
    return Takeovers(p, rng.uniforms("fraud.takeover", key, day) < p)


@lru_cache(maxsize=64)
def _friendly_intercept(params: WorldParams, rate: float) -> float:
    honesty = logit(trait_sample(params).honesty)
    shape = -params.friendly_fraud_honesty_coef * (honesty - params.honesty[0])
    return solve_intercept(shape, rate)


def takeover_cards(
    params: WorldParams,
    rng: RandomSource,
    *,
    previous: Cards,
    day: npt.ArrayLike,
    currency_index: npt.ArrayLike,
) -> Cards:
    """The stolen cards attackers put on taken-over accounts.

    Each is the account's next card version; it dies with ``stolen_card`` when its owner charges
    back (``chargeback_delay_days`` after the takeover).
    """
    card = draw_cards(
        params,
        rng,
        customer_key=previous.customer_key,
        card_version=previous.card_version + 1,
        day=day,
        currency_index=currency_index,
    )
    chargeback = np.asarray(day, dtype=np.int64) + chargeback_delay_days(
        params, rng, "fraud.takeover_chargeback", previous.customer_key, previous.card_version + 1
    )
    return dataclasses.replace(
        card,
        death_day=np.minimum(card.death_day, chargeback),
        death_code=np.where(chargeback <= card.death_day, STOLEN_CARD, card.death_code),
        stolen=np.ones(len(card), dtype=np.bool_),
    )


def friendly_fraud_probability(
    params: WorldParams, *, honesty: npt.ArrayLike, month: npt.ArrayLike
) -> FloatArray:
    """The probability that a customer disputes a valid paid invoice as unrecognised."""
    centred = logit(honesty) - params.honesty[0]
    rate, distinct = _per_month(
        params, np.broadcast_to(np.asarray(month), centred.shape), params.friendly_fraud_rate
    )
    intercept = np.zeros(centred.shape, dtype=np.float64)
    for r in distinct:
        intercept[rate == r] = _friendly_intercept(params, float(r))
    return sigmoid(intercept - params.friendly_fraud_honesty_coef * centred)


def payment_fraud_probability(*components: npt.ArrayLike) -> FloatArray:
    """The probability that a payment is fraudulent, from independent components."""
    keep = np.ones(np.broadcast_shapes(*(np.shape(c) for c in components)), dtype=np.float64)
    for c in components:
        keep = keep * (1.0 - np.asarray(c, dtype=np.float64))
    return np.asarray(1.0 - keep, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class PaymentFraud:
    p_fraud: FloatArray
    is_fraud: BoolArray
    kind: IntArray  # index into FRAUD_KINDS


def payment_fraud(
    *,
    signup_probability: npt.ArrayLike,
    stolen_signup: npt.ArrayLike,
    takeover_probability: npt.ArrayLike = 0.0,
    on_takeover_card: npt.ArrayLike = False,
    friendly_probability: npt.ArrayLike = 0.0,
    friendly_fraud: npt.ArrayLike = False,
) -> PaymentFraud:
    """A successful payment's fraud truth: its probability, label and kind.

    ``signup_probability`` and ``stolen_signup`` are the customer's (a payment by a stolen-card
    signup before its chargeback is fraudulent); ``takeover_probability`` is the daily takeover
    probability of the day the card was put on a taken-over account, ``on_takeover_card`` whether
    the payment was made on such a card; ``friendly_probability`` and ``friendly_fraud`` come from
    the invoice's dispute draw (behaviour.dispute_draw), which the runner can make when the payment
    succeeds (it is keyed by customer and period).
    """
    stolen = np.asarray(stolen_signup, dtype=np.bool_)
    takeover = np.asarray(on_takeover_card, dtype=np.bool_)
    friendly = np.asarray(friendly_fraud, dtype=np.bool_)
    p = payment_fraud_probability(signup_probability, takeover_probability, friendly_probability)
    label = stolen | takeover | friendly
    kind = np.where(
        stolen,
        STOLEN_CARD_SIGNUP,
        np.where(takeover, ACCOUNT_TAKEOVER, np.where(friendly, FRIENDLY_FRAUD, NOT_FRAUD)),
    )
    shape = np.broadcast_shapes(p.shape, label.shape)
    return PaymentFraud(
        p_fraud=np.broadcast_to(p, shape).copy(),
        is_fraud=np.broadcast_to(label, shape).copy(),
        kind=np.broadcast_to(kind, shape).astype(np.int64),
    )


# -- card testing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardTesting:
    """One day's card-testing bursts: the fresh accounts and their attempts.

    Accounts are :class:`~billing_core.simulation.population.Signups` (fraud kind
    ``card_testing``, fraud probability 1). Attempts are arrays in time order; ``attempt_account``
    indexes ``accounts``. Amounts are tiny and in the account's currency's US dollar value.
    """

    accounts: Signups
    burst: IntArray  # per account
    attempt_account: IntArray
    attempt_number: IntArray  # per account: 0, 1, 2...
    attempt_second: IntArray  # seconds since the day's midnight UTC
    amount_usd: FloatArray
    p_success: FloatArray
    succeeded: BoolArray
    decline_code: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.attempt_account)


def draw_card_testing(params: WorldParams, rng: RandomSource, day: int) -> CardTesting:
    """The card-testing bursts of ``day``."""
    from billing_core.simulation.population import CARD_TESTING_KEY_OFFSET, KEY_DAY_FACTOR, draw_accounts

    month = int(days(params.start, day).month_index)
    lam = params.card_testing_bursts_per_day * float(params.fraud_multiplier(month))
    bursts = int(rng.poisson(lam, "fraud.card_testing.bursts", day))
    lo, hi = params.card_testing_accounts
    burst_ids = np.arange(bursts, dtype=np.int64)
    if bursts == 0:
        return _no_card_testing(params)
    sizes = rng.integers(lo, hi + 1, "fraud.card_testing.size", day, burst_ids)
    total = int(sizes.sum())
    burst_of = np.repeat(burst_ids, sizes)
    keys = day * KEY_DAY_FACTOR + CARD_TESTING_KEY_OFFSET + np.arange(total, dtype=np.int64)
    channel = np.where(rng.uniforms("fraud.card_testing.channel", keys) < 0.5, 0, 1).astype(np.int64)
    accounts = draw_accounts(params, rng, day=day, customer_key=keys, channel=channel)
    # shared identities: one BIN per burst, mostly one device, one to three IP addresses
    bkey = day * 1_000 + burst_of
    base = accounts
    shared_device = rng.uniforms("fraud.card_testing.device_shared", bkey) < 0.7
    device = np.where(
        shared_device,
        _ids(rng, "fraud.card_testing.device", bkey),
        base.device_id,
    )
    ip_slot = rng.integers(0, 3, "fraud.card_testing.ip_slot", keys)
    ip = _ips(rng, bkey, ip_slot)
    card_bins = _first_per_burst(base.card.bin, burst_of)
    disposable = rng.uniforms("fraud.card_testing.disposable", keys) < 0.5
    domains = np.where(disposable, "mailinator.com", base.email_domain)
    card = dataclasses.replace(base.card, bin=card_bins, stolen=np.ones(total, dtype=np.bool_))
    accounts = dataclasses.replace(
        base,
        device_id=device.astype(base.device_id.dtype),
        ip_address=ip,
        email_domain=domains.astype(base.email_domain.dtype),
        card=card,
        fraud_kind=np.full(total, CARD_TESTING, dtype=np.int64),
        fraud_probability=np.ones(total, dtype=np.float64),
        is_fraud=np.ones(total, dtype=np.bool_),
        chargeback_day=np.full(total, -1, dtype=np.int64),
    )
    # attempts
    alo, ahi = params.card_testing_attempts
    per_account = rng.integers(alo, ahi + 1, "fraud.card_testing.attempts", keys)
    attempt_account = np.repeat(np.arange(total, dtype=np.int64), per_account)
    starts = np.cumsum(per_account) - per_account
    attempt_number = np.arange(len(attempt_account), dtype=np.int64) - np.repeat(starts, per_account)
    akey = keys[attempt_account]
    mlo, mhi = params.card_testing_minutes
    burst_start = rng.integers(0, 86_400 - mhi * 60, "fraud.card_testing.start", day, burst_ids)
    span = rng.integers(mlo * 60, mhi * 60 + 1, "fraud.card_testing.span", day, burst_ids)
    a_burst = burst_of[attempt_account]
    offset = np.floor(rng.uniforms("fraud.card_testing.when", akey, attempt_number) * span[a_burst]).astype(
        np.int64
    )
    second = burst_start[a_burst] + offset
    amount_lo, amount_hi = params.card_testing_amount_usd
    amount = amount_lo + (amount_hi - amount_lo) * rng.uniforms(
        "fraud.card_testing.amount", akey, attempt_number
    )
    works = rng.uniforms("fraud.card_testing.works", keys) < params.card_testing_success  # per card
    p_success = np.where(works[attempt_account], 0.97, 0.0)
    succeeded = rng.uniforms("fraud.card_testing.outcome", akey, attempt_number) < p_success
    code = CARD_TESTING_DECLINES[rng.choice(CARD_TESTING_DECLINE_SHARES, "fraud.card_testing.code", keys)]
    decline = np.where(
        works[attempt_account], np.where(succeeded, NO_DECLINE, DO_NOT_HONOR), code[attempt_account]
    )
    order = np.argsort(second, kind="stable")
    return CardTesting(
        accounts=accounts,
        burst=burst_of,
        attempt_account=attempt_account[order],
        attempt_number=attempt_number[order],
        attempt_second=second[order],
        amount_usd=np.round(amount[order], 2),
        p_success=p_success[order],
        succeeded=succeeded[order],
        decline_code=decline[order].astype(np.int8),
    )


@lru_cache(maxsize=16)
def _no_card_testing(params: WorldParams) -> CardTesting:
    from billing_core.simulation.population import draw_accounts

    empty_int = np.zeros(0, dtype=np.int64)
    accounts = draw_accounts(params, RandomSource(0), day=0, customer_key=empty_int, channel=empty_int)
    return CardTesting(
        accounts=accounts,
        burst=empty_int,
        attempt_account=empty_int,
        attempt_number=empty_int,
        attempt_second=empty_int,
        amount_usd=np.zeros(0),
        p_success=np.zeros(0),
        succeeded=np.zeros(0, dtype=np.bool_),
        decline_code=np.zeros(0, dtype=np.int8),
    )


def _ids(rng: RandomSource, stream: str, key: IntArray) -> npt.NDArray[np.str_]:
    return np.asarray([f"dev_{h:016x}" for h in rng.hashes(stream, key).tolist()], dtype="<U20")


def _ips(rng: RandomSource, burst_key: IntArray, slot: IntArray) -> npt.NDArray[np.str_]:
    octets = rng.integers(
        1, 255, "fraud.card_testing.ip", burst_key[:, None], slot[:, None], np.arange(4)[None, :]
    )
    return np.asarray([".".join(map(str, row)) for row in octets.tolist()], dtype="<U15")


def _first_per_burst(values: npt.NDArray[np.str_], burst_of: IntArray) -> npt.NDArray[np.str_]:
    first_index = np.zeros(int(burst_of.max()) + 1, dtype=np.int64)
    seen: set[int] = set()
    for i, b in enumerate(burst_of.tolist()):
        if b not in seen:
            seen.add(b)
            first_index[b] = i
    return values[first_index[burst_of]]
