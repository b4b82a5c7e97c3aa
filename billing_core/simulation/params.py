"""The world's parameters: one frozen :class:`WorldParams`, every default with its source.

A default is either grounded in a public figure (the comment beside it names the source) or
marked ``assumption``. Targets that are published as population rates (the share of B2B invoices
paid late, the rate of insufficient-funds declines, voluntary churn, the fraud rate of signups,
the dispute rate) are given as rates; the world solves its own intercepts so that the population
average meets them (see ``calibrated_*`` functions in the modules that use them). Coefficients
that shape *who* is affected (financial health, payday, fatigue...) are assumptions. Nothing here
is tuned to make a model look good: the world is fixed before any model is trained on it.

Scenarios switch at a chosen month (``switch_month``, counted from the world's start month):

* ``baseline``: nothing changes;
* ``recession``: financial health drops, insufficient funds become likelier on top, invoices are
  paid later and less often on time, churn rises a little;
* ``price_increase``: prices rise by ``price_increase_share`` (the runner applies
  :meth:`WorldParams.price_multiplier` to the catalog), and for ``price_shock_months`` months
  voluntary churn rises with each customer's price sensitivity;
* ``fraud_wave``: every fraud rate is multiplied by ``fraud_wave_multiplier``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from billing_core.book import MARKETS
from billing_core.errors import InvalidInput
from billing_core.simulation.rng import BoolArray, FloatArray

SCENARIOS: tuple[str, ...] = ("baseline", "recession", "price_increase", "fraud_wave")
CHANNELS: tuple[str, ...] = ("organic", "paid_search", "partner", "sales", "referral")
REMINDER_CHANNELS: tuple[str, ...] = ("email", "sms", "call", "none")
EMAIL, SMS, CALL, NO_REMINDER = range(4)
CARD_BRANDS: tuple[str, ...] = ("visa", "mastercard", "amex", "discover", "jcb", "unionpay")
CURRENCIES: tuple[str, ...] = tuple(MARKETS)


@dataclass(frozen=True, slots=True)
class PlanSpec:
    """A plan of the world's catalog; the runner maps it to a real price per currency.

    The names match the plans :func:`billing_core.book.build_catalog` creates, so a runner can
    reuse that catalog. ``usd_minor`` is the list price in US cents per interval (per seat when
    ``per_seat``), used by the world for price sensitivity and usage, never to invoice.
    """

    name: str
    interval: str  # "month" or "year"
    usage_type: str  # "licensed" or "metered"
    usd_minor: int
    per_seat: bool = False

    @property
    def monthly_usd(self) -> float:
        months = 12 if self.interval == "year" else 1
        return self.usd_minor / 100 / months


PLANS: tuple[PlanSpec, ...] = (
    PlanSpec("basic", "month", "licensed", 19_00),
    PlanSpec("pro", "month", "licensed", 49_00),
    PlanSpec("business", "month", "licensed", 199_00),
    PlanSpec("pro_annual", "year", "licensed", 490_00),
    PlanSpec("seats", "month", "licensed", 12_00, per_seat=True),
)
#: the metered add-on some customers take beside their plan (``api_calls`` in the book's catalog)
METERED_ADDON = PlanSpec("api_calls", "month", "metered", 0)


def _market_shares() -> tuple[float, ...]:
    return tuple(float(share) for share, _, _ in MARKETS.values())


@dataclass(frozen=True)
class WorldParams:
    """Everything that shapes the world. Frozen and hashable; derive variants with :meth:`replace`."""

    # -- the world ------------------------------------------------------------------------------
    start: date = date(2025, 1, 1)  # assumption: any start date works; the calendar follows it
    scenario: str = "baseline"
    switch_month: int = 12  # the month (from the start month) a scenario takes effect

    # -- signups (population.py) ----------------------------------------------------------------
    signups_per_day: float = 110.0  # assumption: about 100,000 signups over 24 months
    annual_signup_growth: float = 0.25  # assumption
    # Monday..Sunday; assumption: business software is mostly bought on weekdays
    weekday_signup_factors: tuple[float, ...] = (1.15, 1.2, 1.15, 1.1, 1.0, 0.7, 0.7)
    # January..December; assumption: new-year budgets, slow summer and December
    month_signup_factors: tuple[float, ...] = (
        1.15,
        1.05,
        1.05,
        1.0,
        1.0,
        0.95,
        0.9,
        0.85,
        1.05,
        1.05,
        1.0,
        0.85,
    )
    channel_shares: tuple[float, ...] = (0.38, 0.25, 0.10, 0.09, 0.18)  # CHANNELS order; assumption
    currency_shares: tuple[float, ...] = _market_shares()  # billing_core.book.MARKETS
    # rows: CHANNELS; columns: PLANS (basic, pro, business, pro_annual, seats); assumption
    plan_shares_by_channel: tuple[tuple[float, ...], ...] = (
        (0.40, 0.30, 0.05, 0.15, 0.10),
        (0.45, 0.30, 0.04, 0.12, 0.09),
        (0.15, 0.30, 0.20, 0.10, 0.25),
        (0.02, 0.10, 0.40, 0.08, 0.40),
        (0.30, 0.35, 0.08, 0.15, 0.12),
    )
    seats_median: float = 6.0  # seats on the per-seat plan (log-normal, at least 2); assumption
    seats_log_sd: float = 0.8  # assumption
    metered_addon_share: float = 0.30  # customers who also take the metered add-on; assumption
    # share paying by invoice on net terms, per channel; assumption: sales-led accounts get terms
    invoice_share_by_channel: tuple[float, ...] = (0.02, 0.02, 0.25, 0.60, 0.05)
    net_terms_days: tuple[int, ...] = (15, 30, 45, 60)
    # Atradius Payment Practices Barometer, Americas 2014: average payment terms 28 days
    net_terms_shares: tuple[float, ...] = (0.20, 0.55, 0.10, 0.15)
    # local hour of a signup, 0..23; assumption: office hours with an evening shoulder
    signup_hour_weights: tuple[float, ...] = (
        0.6, 0.4, 0.3, 0.3, 0.3, 0.5, 1.0, 2.0, 4.0, 6.0, 7.0, 7.0,
        6.5, 6.5, 7.0, 6.5, 6.0, 5.0, 4.0, 4.0, 3.5, 3.0, 2.0, 1.2,
    )  # fmt: skip

    # -- hidden traits (logit-normal: mean and sd on the logit scale) ---------------------------
    financial_health: tuple[float, float] = (1.2, 1.0)  # assumption
    engagement: tuple[float, float] = (0.5, 1.0)  # assumption
    price_sensitivity: tuple[float, float] = (-0.5, 1.0)  # assumption
    responsiveness_email: tuple[float, float] = (-0.3, 0.9)  # assumption
    responsiveness_sms: tuple[float, float] = (0.0, 0.9)  # assumption
    responsiveness_call: tuple[float, float] = (0.2, 0.9)  # assumption
    honesty: tuple[float, float] = (3.5, 1.2)  # propensity to be truthful (friendly fraud); assumption
    # preferred local hour for messages: office (mean, sd), evening (mean, sd), evening share; assumption
    preferred_hour_office: tuple[float, float] = (11.0, 2.5)
    preferred_hour_evening: tuple[float, float] = (20.0, 1.5)
    preferred_hour_evening_share: float = 0.25
    # weekly, biweekly, semi-monthly, monthly: BLS Current Employment Statistics, share of private
    # businesses by length of pay period, March 2013 (32.4%, 36.5%, 19.8%, 11.3%)
    payday_cycle_shares: tuple[float, ...] = (0.324, 0.365, 0.198, 0.113)

    # -- payment methods ------------------------------------------------------------------------
    # card brand shares (CARD_BRANDS order) per currency (CURRENCIES order); assumption, ordered
    # as the networks' purchase-volume shares are (Visa first, then Mastercard; JCB strong in Japan)
    card_brand_shares: tuple[tuple[float, ...], ...] = (
        (0.57, 0.27, 0.11, 0.05, 0.0, 0.0),  # USD
        (0.55, 0.40, 0.05, 0.0, 0.0, 0.0),  # EUR
        (0.60, 0.33, 0.07, 0.0, 0.0, 0.0),  # GBP
        (0.38, 0.17, 0.05, 0.0, 0.40, 0.0),  # JPY
        (0.60, 0.33, 0.05, 0.0, 0.0, 0.02),  # KWD
    )
    bins_per_brand: int = 400  # issuer BINs per brand in the world; assumption
    card_lifetime_months: int = 36  # cards are commonly issued for three years: ~1/36 expire a month
    # share of expiring cards replaced silently by the networks' account updaters; assumption
    card_updater_share: float = 0.5
    card_loss_rate_per_year: float = 0.05  # cards lost, stolen or closed per year; assumption
    # lost_card, stolen_card, do_not_honor (account closed); assumption
    card_loss_code_shares: tuple[float, ...] = (0.35, 0.25, 0.40)
    disposable_email_share: float = 0.015  # assumption
    business_email_share_by_channel: tuple[float, ...] = (0.35, 0.30, 0.75, 0.90, 0.45)  # assumption
    ip_country_mismatch_share: float = 0.03  # travel, VPNs; assumption

    # -- usage (usage.py) -----------------------------------------------------------------------
    # daily metered units (API calls) of a typical engaged customer per plan (PLANS order, per seat
    # for seats); assumption
    usage_per_day: tuple[float, ...] = (300.0, 1500.0, 8000.0, 1500.0, 400.0)
    metered_addon_usage_factor: float = 3.0  # customers who pay per call call more; assumption
    weekday_usage_factors: tuple[float, ...] = (1.12, 1.15, 1.15, 1.12, 1.05, 0.72, 0.69)  # assumption
    yearly_usage_amplitude: float = 0.08  # spring high, autumn low; assumption
    holiday_usage_factor: float = 0.6  # 24 December to 1 January; assumption
    usage_noise_sd: float = 0.35  # log-normal day-to-day noise; assumption
    usage_growth_per_year: float = 0.10  # a customer's usage grows with tenure; assumption
    onboarding_days: float = 21.0  # usage ramps up over the first weeks; assumption
    engagement_step_sd: float = 0.06  # daily random-walk step of engagement, logit scale; assumption
    engagement_reversion: float = 0.01  # daily pull back to the customer's own level; assumption
    churn_usage_drop: float = 0.75  # usage lost by the day a churning customer cancels; assumption
    takeover_spike_multiplier: float = 12.0  # usage on the first day after an account takeover; assumption
    takeover_spike_days: int = 5  # days until the takeover is contained; assumption

    # -- card network (network.py) --------------------------------------------------------------
    # Recurly Research (subscriber retention benchmarks): 7.2% of subscribers are at risk each month
    # from declines; with expired cards (~1/36 a month, half updated) and the rates below a first
    # attempt is declined about 6-7% of the time. Insufficient funds is the most common soft decline.
    insufficient_funds_rate: float = 0.035  # mean first-attempt rate; assumption within that total
    insufficient_funds_health_coef: float = 1.0  # logit per logit unit of financial health; assumption
    insufficient_funds_cycle_coef: float = 1.6  # logit, from payday to the day before the next; assumption
    insufficient_funds_amount_coef: float = 0.35  # logit per log(amount / 50 USD); assumption
    processing_error_rate: float = 0.004  # assumption
    try_again_later_rate: float = 0.006  # assumption
    do_not_honor_rate: float = 0.004  # issuer refusal that the billing core treats as hard; assumption
    do_not_honor_health_coef: float = 0.5  # assumption
    issuer_fraud_decline_rate: float = 0.0008  # issuer's own fraud screen; assumption
    # retry after insufficient funds (logit scale); assumption, shaped after Recurly's observation
    # that insufficient funds recovers best and most recoveries happen 2-12 days after the decline
    retry_funds_base: float = -1.0
    retry_funds_health_coef: float = 0.8
    retry_funds_payday_coef: float = 1.3  # a payday since the last attempt
    retry_funds_elapsed_coef: float = 0.35  # per log(1 + days since the first failure)
    # Stripe's Smart Retries documentation: debit payments in some countries do slightly better
    # just after midnight local time; assumption: +0.2 logit for attempts from 0:00 to 6:59
    retry_night_bonus: float = 0.2
    retry_evening_penalty: float = 0.1  # 17:00 to 23:59; assumption
    retry_attempt_decay: float = 0.25  # logit lost per earlier retry on the same invoice; assumption
    # retry after processing_error / try_again_later; assumption
    retry_transient_base: float = 1.1
    retry_transient_delay_coef: float = 0.15  # per log(1 + days since the last attempt)

    # -- reminders (behaviour.py) ---------------------------------------------------------------
    # base logit of paying (or updating the card) eventually after a reminder, per REMINDER_CHANNELS
    # (email, sms, call, none). Assumption; the order follows the marketing benchmarks usually quoted
    # (SMS response ~45% vs email ~6%), damped because a payment request is not a promotion.
    reminder_base_logit: tuple[float, ...] = (-0.3, 0.2, 0.6, -1.8)
    reminder_responsiveness_coef: float = 1.0  # assumption
    reminder_health_coef: float = 0.6  # assumption
    reminder_fatigue: float = 0.3  # logit lost per earlier reminder on the same invoice; assumption
    # logit penalty for a message at night (22:00-06:59 local), per channel; assumption
    reminder_night_penalty: tuple[float, ...] = (0.2, 1.0, 1.5, 0.0)
    reminder_hour_coef: float = 0.4  # bonus at the preferred hour, fading over 12 hours; assumption
    # mean days to act once a customer decides to; assumption: texts are read within minutes,
    # emails within hours (CTIA: 90 seconds vs 90 minutes to respond)
    reminder_response_days: tuple[float, ...] = (1.5, 0.5, 0.3, 4.0)

    # -- churn (behaviour.py) -------------------------------------------------------------------
    # IBM Telco customer churn sample: 1,869 of 7,043 customers churned (26.5%)
    annual_churn: float = 0.265
    # Stripe ("How we built it: Smart Retries"): 25% of lapsed subscriptions are due to payment failures
    involuntary_churn_share: float = 0.25
    churn_engagement_coef: float = 0.6  # logit per logit unit of engagement below average; assumption
    churn_engagement_drop_coef: float = 0.8  # per logit unit lost over the last 90 days; assumption
    churn_price_coef: float = 9.0  # per (price sensitivity x price increase share); assumption
    churn_dispute_coef: float = 0.8  # per unresolved dispute; assumption
    churn_tenure_coef: float = 0.9  # extra logit for new customers, fading over months; assumption
    churn_tenure_months: float = 4.0  # assumption
    churn_lead_days: tuple[int, int] = (7, 42)  # days between deciding to leave and canceling; assumption

    # -- invoices on net terms (behaviour.py) ---------------------------------------------------
    # Atradius Payment Practices Barometer, Americas 2014: 38.4% of B2B invoice value unpaid by the
    # due date (Western Europe 2018: 41.8%)
    late_share: float = 0.384
    invoice_health_coef: float = 0.9  # assumption
    invoice_amount_coef: float = 0.2  # logit per log(amount / 500 USD); assumption
    invoice_terms_coef: float = 0.3  # logit per 30 days of longer terms; assumption
    # days late of a late invoice: log-normal; assumption informed by the gap between average
    # terms (28 days) and DSO (48 days) in the same Atradius survey
    late_days_median: float = 12.0
    late_days_log_sd: float = 0.8

    # -- disputes (behaviour.py, disputes_text.py) ----------------------------------------------
    # disputes per paid invoice; assumption (card networks put merchants in monitoring programs
    # from about 0.9% disputes per transaction; a healthy subscription business stays well below)
    dispute_rate: float = 0.004
    dispute_honesty_coef: float = 0.8  # logit per logit unit of honesty below average; assumption
    # DisputeCategory order: duplicate_charge, unrecognised_or_fraudulent, service_not_received,
    # canceled_but_charged, wrong_amount, refund_not_received, quality, other; assumption
    dispute_category_shares: tuple[float, ...] = (0.12, 0.18, 0.10, 0.18, 0.12, 0.08, 0.12, 0.10)
    dispute_context_boost: float = 40.0  # weight multiplier of the category a known incident implies
    native_language_share: float = 0.85  # es/de customers who write in their language; assumption
    typo_rate: float = 0.03  # chance that a word of four letters or more has a typo; assumption

    # -- fraud (fraud.py) -----------------------------------------------------------------------
    # The ULB/Worldline credit card sample (Kaggle): 492 frauds in 284,807 card payments (0.172%).
    # The rates below put fraudulent payments near 0.1-0.2% of payments in the baseline.
    stolen_card_signup_rate: float = 0.006  # assumption
    # log-odds of a stolen-card signup per risk factor; assumption
    fraud_disposable_coef: float = 2.5
    fraud_ip_mismatch_coef: float = 2.0
    fraud_night_coef: float = 1.0  # signup between 0:00 and 5:59 local time
    fraud_channel_coefs: tuple[float, ...] = (0.0, 0.6, -0.6, -2.5, -0.8)  # CHANNELS order
    fraud_plan_coefs: tuple[float, ...] = (0.0, 0.2, 0.8, 0.3, 0.3)  # PLANS order
    chargeback_delay_median_days: float = 35.0  # assumption; networks allow up to 120 days
    chargeback_delay_log_sd: float = 0.5  # assumption
    friendly_fraud_rate: float = 0.0004  # per paid invoice; assumption
    friendly_fraud_honesty_coef: float = 1.2  # assumption
    takeover_rate_per_year: float = 0.002  # accounts taken over per year; assumption
    card_testing_bursts_per_day: float = 0.04  # assumption
    card_testing_accounts: tuple[int, int] = (5, 40)  # fresh accounts per burst; assumption
    card_testing_attempts: tuple[int, int] = (1, 6)  # attempts per account; assumption
    card_testing_minutes: tuple[int, int] = (2, 20)  # length of a burst; assumption
    card_testing_success: float = 0.3  # tested numbers that still work; assumption
    card_testing_amount_usd: tuple[float, float] = (0.5, 2.0)  # assumption

    # -- scenarios ------------------------------------------------------------------------------
    recession_health_shift: float = -0.8  # logit of financial health; assumption
    recession_funds_shift: float = 0.3  # extra logit of insufficient funds; assumption
    recession_late_shift: float = -0.5  # logit of paying invoices on time; assumption
    recession_delay_multiplier: float = 1.5  # days late; assumption
    recession_churn_shift: float = 0.15  # logit of churn; assumption
    price_increase_share: float = 0.10  # assumption
    price_shock_months: int = 3  # months the increase weighs on churn; assumption
    fraud_wave_multiplier: float = 4.0  # assumption

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise InvalidInput("scenario", "one of " + ", ".join(SCENARIOS), self.scenario)
        if (
            isinstance(self.switch_month, bool)
            or not isinstance(self.switch_month, int)
            or self.switch_month < 0
        ):
            raise InvalidInput("switch_month", "a month index of at least 0", self.switch_month)
        for name, size in (
            ("channel_shares", len(CHANNELS)),
            ("currency_shares", len(CURRENCIES)),
            ("payday_cycle_shares", 4),
            ("net_terms_shares", len(self.net_terms_days)),
            ("card_loss_code_shares", 3),
            ("dispute_category_shares", 8),
            ("signup_hour_weights", 24),
            ("weekday_signup_factors", 7),
            ("weekday_usage_factors", 7),
            ("month_signup_factors", 12),
            ("usage_per_day", len(PLANS)),
            ("reminder_night_penalty", len(REMINDER_CHANNELS)),
            ("reminder_response_days", len(REMINDER_CHANNELS)),
        ):
            _check_weights(name, getattr(self, name), size)
        if len(self.reminder_base_logit) != len(REMINDER_CHANNELS):
            raise InvalidInput(
                "reminder_base_logit", f"{len(REMINDER_CHANNELS)} values", len(self.reminder_base_logit)
            )
        for name, rows, cols in (
            ("plan_shares_by_channel", len(CHANNELS), len(PLANS)),
            ("card_brand_shares", len(CURRENCIES), len(CARD_BRANDS)),
        ):
            table = getattr(self, name)
            if len(table) != rows:
                raise InvalidInput(name, f"{rows} rows", len(table))
            for i, row in enumerate(table):
                _check_weights(f"{name}[{i}]", row, cols)
        for name in (
            "insufficient_funds_rate",
            "late_share",
            "annual_churn",
            "involuntary_churn_share",
            "dispute_rate",
            "stolen_card_signup_rate",
            "friendly_fraud_rate",
            "card_updater_share",
            "native_language_share",
            "typo_rate",
            "card_testing_success",
            "metered_addon_share",
        ):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InvalidInput(name, "a probability in [0, 1)", value)

    # -- scenarios ------------------------------------------------------------------------------

    @classmethod
    def for_scenario(cls, name: str, switch_month: int = 12, **overrides: Any) -> WorldParams:
        """The default world under scenario ``name``, switching at ``switch_month``."""
        if name not in SCENARIOS:
            raise InvalidInput("scenario", "one of " + ", ".join(SCENARIOS), name)
        return cls(scenario=name, switch_month=switch_month, **overrides)

    def replace(self, **changes: Any) -> WorldParams:
        """A copy with ``changes``; unknown names raise :class:`InvalidInput` naming the field."""
        names = {f.name for f in dataclasses.fields(self)}
        for key in changes:
            if key not in names:
                raise InvalidInput(key, "a WorldParams field", key)
        return dataclasses.replace(self, **changes)

    def active(self, scenario: str, month: npt.ArrayLike) -> BoolArray:
        """Whether ``scenario`` is in force in world month ``month`` (array-aware)."""
        m = np.asarray(month, dtype=np.int64)
        return np.asarray((self.scenario == scenario) & (m >= self.switch_month), dtype=np.bool_)

    def health_shift(self, month: npt.ArrayLike) -> FloatArray:
        """Shift of financial health's logit in ``month``."""
        return np.where(self.active("recession", month), self.recession_health_shift, 0.0)

    def fraud_multiplier(self, month: npt.ArrayLike) -> FloatArray:
        return np.where(self.active("fraud_wave", month), self.fraud_wave_multiplier, 1.0)

    def price_multiplier(self, month: npt.ArrayLike) -> FloatArray:
        """Factor on list prices in ``month`` (the runner applies it to the catalog)."""
        return np.where(self.active("price_increase", month), 1.0 + self.price_increase_share, 1.0)

    def price_shock(self, month: npt.ArrayLike) -> FloatArray:
        """The price increase share weighing on churn in ``month`` (0 outside the shock)."""
        m = np.asarray(month, dtype=np.int64)
        within = self.active("price_increase", m) & (m < self.switch_month + self.price_shock_months)
        return np.where(within, self.price_increase_share, 0.0)

    @property
    def voluntary_annual_churn(self) -> float:
        """Voluntary churn a year: the total less the involuntary share."""
        return self.annual_churn * (1.0 - self.involuntary_churn_share)


def _check_weights(name: str, values: tuple[float, ...], size: int) -> None:
    if len(values) != size:
        raise InvalidInput(name, f"{size} values", len(values))
    if any(v < 0 for v in values) or sum(values) <= 0:
        raise InvalidInput(name, "non-negative weights with a positive sum", values)
