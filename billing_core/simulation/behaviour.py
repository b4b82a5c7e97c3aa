"""How customers behave: responding to reminders, leaving, paying invoices, disputing charges.

Every function returns the probability it drew from beside the draw (the ground truth).

**Reminders** (:func:`reminder_response`). After a reminder on ``channel`` the customer eventually
pays (or updates the card) with a probability that rises with their responsiveness to that channel
and their financial health, falls with every reminder they already got on the invoice (fatigue),
falls at night (strongly for SMS and calls) and rises near their preferred hour. The time to act is
exponential with a per-channel mean (texts are acted on within hours, emails within a day or two).
``channel="none"`` is the control: a customer who gets no reminder still acts sometimes.

**Voluntary churn** (:func:`voluntary_churn`). At each month start a customer decides to leave with
a probability that rises with low engagement, with a fall of engagement over the last 90 days,
with a recent price increase times their price sensitivity, with unresolved disputes, and for new
customers; the intercept is solved so that the population's voluntary churn a year is
``annual_churn x (1 - involuntary_churn_share)``. A customer who decides cancels ``churn_lead_days``
later (uniform); usage fades in between (usage.daily_usage's ``churn_progress``). The probabilities
of canceling within 30 and 90 days of the month start are returned; the 90-day one holds the
customer's state constant over the next months (scenario switches and tenure included).

**Invoices on net terms** (:func:`invoice_payment`). Paid by the due date with a probability that
rises with financial health and longer terms and falls with the amount; the intercept is solved so
that ``late_share`` of invoices are paid late. An on-time invoice is paid on a day between a fifth
of the terms and the due date (most near the due date); a late one log-normally many days late.

**Disputes** (:func:`dispute_draw`). A paid invoice is disputed with a probability that rises as
honesty falls, and sharply when the runner reports an incident (a known cause: canceled but
charged, a refund not yet received...). Friendly fraud (fraud.friendly_fraud_probability) is drawn
on the same uniform: a friendly fraudster disputes as ``unrecognised_or_fraudulent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from billing_core.disputes import DisputeCategory
from billing_core.errors import InvalidInput
from billing_core.simulation import fraud, timeline
from billing_core.simulation.network import solve_intercept
from billing_core.simulation.params import NO_REMINDER, REMINDER_CHANNELS, WorldParams
from billing_core.simulation.rng import BoolArray, FloatArray, IntArray, RandomSource, logit, sigmoid
from billing_core.simulation.traits import trait_sample

DISPUTE_CATEGORIES: tuple[DisputeCategory, ...] = tuple(DisputeCategory)
UNRECOGNISED = DISPUTE_CATEGORIES.index(DisputeCategory.UNRECOGNISED_OR_FRAUDULENT)
NO_INCIDENT = -1
REFERENCE_INVOICE_USD = 500.0


def channel_index(channel: str | npt.ArrayLike) -> IntArray:
    """Indexes into REMINDER_CHANNELS from names (or pass indexes through)."""
    values = np.asarray(channel)
    if values.dtype.kind in "iu":
        if np.any((values < 0) | (values >= len(REMINDER_CHANNELS))):
            raise InvalidInput("channel", f"indexes below {len(REMINDER_CHANNELS)}", values)
        return values.astype(np.int64)
    out = np.empty(values.shape, dtype=np.int64)
    for i, name in enumerate(values.ravel().tolist()):
        if name not in REMINDER_CHANNELS:
            raise InvalidInput("channel", "one of " + ", ".join(REMINDER_CHANNELS), name)
        out.flat[i] = REMINDER_CHANNELS.index(name)
    return out


# -- reminders ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReminderResponse:
    p_respond: FloatArray  # probability of acting within the horizon (ground truth)
    p_eventual: FloatArray  # probability of ever acting on this reminder
    responds: BoolArray  # acts within the horizon
    delay_days: FloatArray  # days from the reminder to acting (inf if never)


def reminder_response_probability(
    params: WorldParams,
    *,
    channel: npt.ArrayLike,
    local_hour: npt.ArrayLike,
    preferred_hour: npt.ArrayLike,
    responsiveness: npt.ArrayLike,
    financial_health: npt.ArrayLike,
    reminders_before: npt.ArrayLike,
    month: npt.ArrayLike = 0,
) -> FloatArray:
    """The probability of ever acting on a reminder (see :func:`reminder_response`)."""
    c = channel_index(channel)
    resp = np.asarray(responsiveness, dtype=np.float64)
    if resp.ndim == 0 or resp.shape[-1] != 3:
        raise InvalidInput("responsiveness", "an (n, 3) array: email, sms, call", resp.shape)
    c = np.broadcast_to(c, np.broadcast_shapes(c.shape, resp.shape[:-1]))
    resp = np.broadcast_to(resp, (*c.shape, 3))
    chosen = np.take_along_axis(resp, np.minimum(c, 2)[..., None], axis=-1)[..., 0]
    means = np.asarray(
        [params.responsiveness_email[0], params.responsiveness_sms[0], params.responsiveness_call[0]]
    )
    resp_term = params.reminder_responsiveness_coef * (logit(chosen) - means[np.minimum(c, 2)])
    hl = logit(financial_health) + params.health_shift(month)
    health_term = params.reminder_health_coef * (hl - params.financial_health[0])
    hour = np.asarray(local_hour, dtype=np.int64) % 24
    night = (hour >= 22) | (hour < 7)
    distance = np.abs(hour - np.asarray(preferred_hour, dtype=np.int64)) % 24
    distance = np.minimum(distance, 24 - distance)
    hour_term = (
        params.reminder_hour_coef * (1.0 - distance / 12.0)
        - np.asarray(params.reminder_night_penalty)[c] * night
    )
    is_reminder = c != NO_REMINDER
    value = (
        np.asarray(params.reminder_base_logit)[c]
        + np.where(is_reminder, resp_term + hour_term, 0.0)
        + health_term
        - params.reminder_fatigue * np.asarray(reminders_before, dtype=np.float64)
    )
    return sigmoid(value)


def reminder_response(
    params: WorldParams,
    rng: RandomSource,
    *,
    customer_key: npt.ArrayLike,
    period_index: npt.ArrayLike,
    reminder_number: npt.ArrayLike,
    channel: npt.ArrayLike,
    local_hour: npt.ArrayLike,
    preferred_hour: npt.ArrayLike,
    responsiveness: npt.ArrayLike,
    financial_health: npt.ArrayLike,
    day: npt.ArrayLike,
    reminders_before: npt.ArrayLike | None = None,
    horizon_days: float = 7.0,
) -> ReminderResponse:
    """Whether (and when) each customer acts on a reminder sent on ``day``.

    ``reminder_number`` counts the reminders on this invoice (0 for the first); fatigue counts
    ``reminders_before`` (by default the same number). Draws are keyed by
    ``(customer_key, period_index, reminder_number)``, so the same reminder under another channel
    or hour faces the same uniforms.
    """
    key = np.asarray(customer_key, dtype=np.int64)
    number = np.asarray(reminder_number, dtype=np.int64)
    before = number if reminders_before is None else np.asarray(reminders_before, dtype=np.int64)
    month = timeline.days(params.start, day).month_index
    c = channel_index(channel)
    p_eventual = reminder_response_probability(
        params,
        channel=c,
        local_hour=local_hour,
        preferred_hour=preferred_hour,
        responsiveness=responsiveness,
        financial_health=financial_health,
        reminders_before=before,
        month=month,
    )
    mean_days = np.asarray(params.reminder_response_days, dtype=np.float64)[c]
    p_respond = p_eventual * -np.expm1(-horizon_days / mean_days)
    decides = rng.uniforms("behaviour.reminder", key, period_index, number) < p_eventual
    delay = mean_days * rng.exponentials("behaviour.reminder_delay", key, period_index, number)
    delay = np.where(decides, delay, np.inf)
    return ReminderResponse(
        p_respond=np.asarray(p_respond, dtype=np.float64),
        p_eventual=p_eventual,
        responds=np.asarray(delay <= horizon_days, dtype=np.bool_),
        delay_days=np.asarray(delay, dtype=np.float64),
    )


# -- voluntary churn ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChurnDraw:
    p_decide: FloatArray  # probability of deciding to leave at this month start
    p_churn_30d: FloatArray  # probability of canceling within 30 days of the month start (truth)
    p_churn_90d: FloatArray  # ... within 90 days, holding the customer's state constant (truth)
    decides: BoolArray  # decided at this month start
    cancel_day: IntArray  # day the customer cancels (the pending one, or a new one), -1 if none


def _churn_shape(
    params: WorldParams,
    *,
    tenure_months: npt.ArrayLike,
    engagement: npt.ArrayLike,
    engagement_90d_ago: npt.ArrayLike,
    price_sensitivity: npt.ArrayLike,
    price_increase: npt.ArrayLike,
    unresolved_disputes: npt.ArrayLike,
) -> FloatArray:
    e = logit(engagement)
    drop = np.maximum(logit(engagement_90d_ago) - e, 0.0)
    tenure = np.maximum(np.asarray(tenure_months, dtype=np.float64), 0.0)
    return np.asarray(
        -params.churn_engagement_coef * (e - params.engagement[0])
        + params.churn_engagement_drop_coef * drop
        + params.churn_price_coef
        * np.asarray(price_sensitivity, dtype=np.float64)
        * np.asarray(price_increase, dtype=np.float64)
        + params.churn_dispute_coef * np.asarray(unresolved_disputes, dtype=np.float64)
        + params.churn_tenure_coef * np.exp(-tenure / params.churn_tenure_months),
        dtype=np.float64,
    )


@lru_cache(maxsize=64)
def calibrated_churn_intercept(params: WorldParams) -> float:
    """The intercept that makes the mean monthly decision rate meet the voluntary churn target.

    The mean runs over the trait sample with tenures spread evenly over the first two years (the
    book of a world that started empty two years ago), no price increase and no dispute.
    """
    sample = trait_sample(params)
    n = len(sample)
    tenure = np.arange(n) % 24
    shape = _churn_shape(
        params,
        tenure_months=tenure,
        engagement=sample.engagement,
        engagement_90d_ago=sample.engagement,
        price_sensitivity=sample.price_sensitivity,
        price_increase=0.0,
        unresolved_disputes=0,
    )
    monthly = 1.0 - (1.0 - params.voluntary_annual_churn) ** (1.0 / 12.0)
    return solve_intercept(shape, monthly)


def churn_decision_probability(
    params: WorldParams,
    *,
    month: npt.ArrayLike,
    tenure_months: npt.ArrayLike,
    engagement: npt.ArrayLike,
    engagement_90d_ago: npt.ArrayLike,
    price_sensitivity: npt.ArrayLike,
    unresolved_disputes: npt.ArrayLike = 0,
    price_increase: npt.ArrayLike | None = None,
) -> FloatArray:
    """The probability of deciding to leave at the start of ``month``."""
    shock = (
        params.price_shock(month) if price_increase is None else np.asarray(price_increase, dtype=np.float64)
    )
    shape = _churn_shape(
        params,
        tenure_months=tenure_months,
        engagement=engagement,
        engagement_90d_ago=engagement_90d_ago,
        price_sensitivity=price_sensitivity,
        price_increase=shock,
        unresolved_disputes=unresolved_disputes,
    )
    recession = np.where(params.active("recession", month), params.recession_churn_shift, 0.0)
    return sigmoid(calibrated_churn_intercept(params) + shape + recession)


def _lead_cdf(params: WorldParams, within: npt.ArrayLike) -> FloatArray:
    """P(lead < within) for the uniform integer lead in churn_lead_days."""
    lo, hi = params.churn_lead_days
    w = np.asarray(within, dtype=np.float64)
    return np.asarray(np.clip((w - lo) / (hi - lo + 1), 0.0, 1.0), dtype=np.float64)


def voluntary_churn(
    params: WorldParams,
    rng: RandomSource,
    *,
    customer_key: npt.ArrayLike,
    month: int,
    tenure_months: npt.ArrayLike,
    engagement: npt.ArrayLike,
    engagement_90d_ago: npt.ArrayLike,
    price_sensitivity: npt.ArrayLike,
    unresolved_disputes: npt.ArrayLike = 0,
    pending_cancel_day: npt.ArrayLike = -1,
    price_increase: npt.ArrayLike | None = None,
) -> ChurnDraw:
    """Draw each active customer's decision to leave at the start of ``month``.

    Call once per customer per month, at the month start. ``pending_cancel_day`` is the cancel day
    of a customer who decided earlier (-1 if none): they do not decide again, and their truth is
    exact (1 if the day falls within the window, else 0).
    """
    key = np.asarray(customer_key, dtype=np.int64)
    pending = np.broadcast_to(np.asarray(pending_cancel_day, dtype=np.int64), key.shape)
    starts = timeline.month_start_day(params.start, np.arange(month, month + 4))
    start = int(starts[0])
    q = []
    for j in range(3):
        q.append(
            churn_decision_probability(
                params,
                month=month + j,
                tenure_months=np.asarray(tenure_months, dtype=np.float64) + j,
                engagement=engagement,
                engagement_90d_ago=engagement_90d_ago,
                price_sensitivity=price_sensitivity,
                unresolved_disputes=unresolved_disputes,
                price_increase=price_increase,
            )
            * np.ones(key.shape)
        )
    p30 = q[0] * _lead_cdf(params, 30)
    survive = np.ones(key.shape)
    p90 = np.zeros(key.shape)
    for j in range(3):
        p90 = p90 + survive * q[j] * _lead_cdf(params, 90 - (int(starts[j]) - start))
        survive = survive * (1.0 - q[j])
    has_pending = pending >= 0
    p30 = np.where(has_pending, (pending < start + 30).astype(np.float64), p30)
    p90 = np.where(has_pending, (pending < start + 90).astype(np.float64), p90)
    decides = ~has_pending & (rng.uniforms("behaviour.churn", key, month) < q[0])
    lo, hi = params.churn_lead_days
    lead = rng.integers(lo, hi + 1, "behaviour.churn_lead", key, month)
    cancel_day = np.where(has_pending, pending, np.where(decides, start + lead, -1))
    return ChurnDraw(
        p_decide=np.where(has_pending, 0.0, q[0]),
        p_churn_30d=np.asarray(p30, dtype=np.float64),
        p_churn_90d=np.asarray(p90, dtype=np.float64),
        decides=np.asarray(decides, dtype=np.bool_),
        cancel_day=cancel_day.astype(np.int64),
    )


def churn_progress(
    *, day: npt.ArrayLike, decided_day: npt.ArrayLike, cancel_day: npt.ArrayLike
) -> FloatArray:
    """How far each customer is between deciding to leave and canceling (0 if not leaving)."""
    d = np.asarray(day, dtype=np.float64)
    start = np.asarray(decided_day, dtype=np.float64)
    end = np.asarray(cancel_day, dtype=np.float64)
    leaving = (end >= 0) & (start >= 0)
    span = np.maximum(end - start, 1.0)
    return np.asarray(np.where(leaving, np.clip((d - start) / span, 0.0, 1.0), 0.0), dtype=np.float64)


# -- invoices on net terms ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoicePayment:
    p_paid_by_due: FloatArray  # ground truth
    paid_by_due: BoolArray
    pay_day: IntArray  # day the customer pays, without reminders
    days_late: IntArray  # 0 when paid by the due date


@lru_cache(maxsize=64)
def calibrated_invoice_intercept(params: WorldParams) -> float:
    """The intercept that makes ``late_share`` of invoices late, over a fixed sample of accounts
    that pay by invoice (their financial health, invoice amounts and terms), in the baseline."""
    from billing_core.simulation.population import account_sample, invoice_amount_usd

    sample = account_sample(params)
    payers = sample.pays_by_invoice
    shape = _invoice_shape(
        params,
        health_logit=logit(sample.traits.financial_health[payers]),
        amount_usd=invoice_amount_usd(sample.plan[payers], sample.seats[payers]),
        terms=sample.net_terms_days[payers],
    )
    return solve_intercept(shape, 1.0 - params.late_share)


def _invoice_shape(
    params: WorldParams, *, health_logit: npt.ArrayLike, amount_usd: npt.ArrayLike, terms: npt.ArrayLike
) -> FloatArray:
    return np.asarray(
        params.invoice_health_coef * (np.asarray(health_logit, dtype=np.float64) - params.financial_health[0])
        - params.invoice_amount_coef
        * np.log(np.maximum(np.asarray(amount_usd, dtype=np.float64), 1.0) / REFERENCE_INVOICE_USD)
        + params.invoice_terms_coef * (np.asarray(terms, dtype=np.float64) - 30) / 30.0,
        dtype=np.float64,
    )


def invoice_payment(
    params: WorldParams,
    rng: RandomSource,
    *,
    customer_key: npt.ArrayLike,
    period_index: npt.ArrayLike,
    issue_day: npt.ArrayLike,
    due_day: npt.ArrayLike,
    financial_health: npt.ArrayLike,
    amount_usd: npt.ArrayLike,
) -> InvoicePayment:
    """When each invoice on net terms is paid, absent reminders (keyed by customer and period).

    A reminder can only bring the payment forward: the runner takes the earlier of ``pay_day``
    and the day the customer acts on a reminder.
    """
    key = np.asarray(customer_key, dtype=np.int64)
    issue = np.asarray(issue_day, dtype=np.int64)
    due = np.asarray(due_day, dtype=np.int64)
    terms = np.maximum(due - issue, 0)
    month = timeline.days(params.start, issue).month_index
    recession = params.active("recession", month)
    hl = logit(financial_health) + params.health_shift(month)
    value = (
        calibrated_invoice_intercept(params)
        + _invoice_shape(params, health_logit=hl, amount_usd=amount_usd, terms=terms)
        + np.where(recession, params.recession_late_shift, 0.0)
    )
    p = sigmoid(value)
    on_time = rng.uniforms("behaviour.invoice", key, period_index) < p
    u = rng.uniforms("behaviour.invoice_timing", key, period_index)
    early = np.floor(terms * 0.8 * u * u).astype(np.int64)
    z = rng.normals("behaviour.invoice_late", key, period_index)
    late = params.late_days_median * np.exp(params.late_days_log_sd * z)
    late = np.maximum(1, np.round(late * np.where(recession, params.recession_delay_multiplier, 1.0))).astype(
        np.int64
    )
    days_late = np.where(on_time, 0, late)
    return InvoicePayment(
        p_paid_by_due=p,
        paid_by_due=np.asarray(on_time, dtype=np.bool_),
        pay_day=np.where(on_time, due - early, due + late).astype(np.int64),
        days_late=days_late.astype(np.int64),
    )


# -- disputes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DisputeDraw:
    p_dispute: FloatArray  # probability of any dispute on this paid invoice (truth)
    p_friendly_fraud: FloatArray
    disputes: BoolArray
    friendly_fraud: BoolArray
    category: IntArray  # index into DISPUTE_CATEGORIES, -1 without a dispute
    open_day: IntArray  # day the dispute is opened, -1 without a dispute


@lru_cache(maxsize=64)
def calibrated_dispute_intercept(params: WorldParams) -> float:
    honesty = logit(trait_sample(params).honesty)
    shape = -params.dispute_honesty_coef * (honesty - params.honesty[0])
    return solve_intercept(shape, params.dispute_rate)


def dispute_key(customer_key: npt.ArrayLike, period_index: npt.ArrayLike) -> IntArray:
    """A stable key per (customer, billing period), for the dispute and its message."""
    return np.asarray(
        np.asarray(customer_key, dtype=np.int64) * 1_000 + np.asarray(period_index, dtype=np.int64) % 1_000
    )


def dispute_draw(
    params: WorldParams,
    rng: RandomSource,
    *,
    customer_key: npt.ArrayLike,
    period_index: npt.ArrayLike,
    paid_day: npt.ArrayLike,
    honesty: npt.ArrayLike,
    incident: npt.ArrayLike = NO_INCIDENT,
) -> DisputeDraw:
    """Whether each paid invoice is disputed, why (the true category), and when.

    ``incident`` is the category a known cause implies (e.g. the customer canceled before the
    period but was charged: ``canceled_but_charged``), or ``NO_INCIDENT``. An incident makes a
    dispute far likelier and of that category most of the time.
    """
    key = np.asarray(customer_key, dtype=np.int64)
    period = np.asarray(period_index, dtype=np.int64)
    paid = np.asarray(paid_day, dtype=np.int64)
    shape = np.broadcast_shapes(key.shape, period.shape, paid.shape, np.shape(honesty))
    known = np.broadcast_to(np.asarray(incident, dtype=np.int64), shape)
    month = timeline.days(params.start, paid).month_index
    centred = logit(honesty) - params.honesty[0]
    regular_logit = calibrated_dispute_intercept(params) - params.dispute_honesty_coef * centred
    p_regular = sigmoid(regular_logit + np.where(known >= 0, 4.0, 0.0))
    p_friendly = np.broadcast_to(
        fraud.friendly_fraud_probability(params, honesty=honesty, month=month), shape
    )
    p_dispute = 1.0 - (1.0 - p_regular) * (1.0 - p_friendly)
    u = rng.uniforms("behaviour.dispute", key, period)
    disputes = u < p_dispute
    friendly = u < p_friendly
    weights = np.broadcast_to(
        np.asarray(params.dispute_category_shares, dtype=np.float64), (*shape, 8)
    ).copy()
    rows = np.nonzero(known >= 0)
    weights[(*rows, known[rows])] *= params.dispute_context_boost
    category = rng.choice(weights, "behaviour.dispute_category", key, period)
    category = np.where(friendly, UNRECOGNISED, category)
    regular_delay = 1 + np.floor(10.0 * rng.exponentials("behaviour.dispute_delay", key, period)).astype(
        np.int64
    )
    friendly_delay = fraud.chargeback_delay_days(params, rng, "behaviour.friendly_delay", key, period)
    open_day = paid + np.where(friendly, friendly_delay, regular_delay)
    return DisputeDraw(
        p_dispute=np.asarray(p_dispute, dtype=np.float64),
        p_friendly_fraud=np.asarray(p_friendly, dtype=np.float64),
        disputes=np.asarray(disputes, dtype=np.bool_),
        friendly_fraud=np.asarray(friendly, dtype=np.bool_),
        category=np.where(disputes, category, -1).astype(np.int64),
        open_day=np.where(disputes, open_day, -1).astype(np.int64),
    )
