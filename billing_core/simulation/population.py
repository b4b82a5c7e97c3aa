"""Signups: who arrives each day, through which channel, in which market, on which plan.

:func:`draw_signups` returns one day's new customers with everything the billing core records
about them (market, plan, card, email domain, device, IP address) and everything it never sees
(hidden traits, whether the signup is a fraudster). Counts per channel are Poisson with a mean
that grows over the years (``annual_signup_growth``) and follows the week and the year
(``weekday_signup_factors``, ``month_signup_factors``).

**Customer keys.** A customer's key is ``day * KEY_DAY_FACTOR + index`` (index within the day;
card-testing accounts from ``CARD_TESTING_KEY_OFFSET``). Keys are the world's stable identities:
every draw about a customer is keyed by them, never by a database id. The runner keeps a map from
key to the customer's id in the billing database.

**Markets** reuse :data:`billing_core.book.MARKETS` (currency shares, countries and time zones)
and :data:`billing_core.book.LANGUAGES`. **Plans** are :data:`~billing_core.simulation.params.PLANS`
(names of the book's catalog), chosen with shares that depend on the channel; sales-led and
partner accounts choose bigger plans and more often pay by invoice on net terms.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from billing_core.book import LANGUAGES, MARKETS
from billing_core.errors import InvalidInput
from billing_core.simulation import cards as card_module
from billing_core.simulation import fraud, timeline
from billing_core.simulation.cards import Cards
from billing_core.simulation.network import STOLEN_CARD
from billing_core.simulation.params import CHANNELS, CURRENCIES, PLANS, WorldParams
from billing_core.simulation.rng import BoolArray, FloatArray, IntArray, RandomSource
from billing_core.simulation.traits import CALIBRATION_SEED, Traits, draw_traits

KEY_DAY_FACTOR = 1_000_000
CARD_TESTING_KEY_OFFSET = 900_000
PLAN_NAMES: tuple[str, ...] = tuple(plan.name for plan in PLANS)
SEATS_PLAN = PLAN_NAMES.index("seats")


@dataclass(frozen=True)
class Signups:
    """New customers (arrays share their first axis)."""

    customer_key: IntArray
    day: IntArray
    signup_hour: IntArray  # local hour
    channel: IntArray  # index into CHANNELS
    currency: npt.NDArray[np.str_]
    country: npt.NDArray[np.str_]
    timezone: npt.NDArray[np.str_]
    language: npt.NDArray[np.str_]
    plan: IntArray  # index into PLANS
    seats: IntArray  # quantity on the plan (seats on the per-seat plan, else 1)
    metered_addon: BoolArray  # also takes the metered add-on
    pays_by_invoice: BoolArray  # net terms instead of automatic card charges
    net_terms_days: IntArray  # 0 for card payers
    email_domain: npt.NDArray[np.str_]
    email_kind: IntArray  # cards.EMAIL_CONSUMER, EMAIL_BUSINESS or EMAIL_DISPOSABLE
    device_id: npt.NDArray[np.str_]
    ip_address: npt.NDArray[np.str_]
    ip_country: npt.NDArray[np.str_]
    traits: Traits
    card: Cards
    fraud_kind: IntArray  # index into fraud.FRAUD_KINDS
    fraud_probability: FloatArray  # the probability the fraud label was drawn from
    is_fraud: BoolArray
    chargeback_day: IntArray  # day the stolen card's owner charges back, -1 if none

    def __len__(self) -> int:
        return len(self.customer_key)

    @property
    def plan_name(self) -> npt.NDArray[np.str_]:
        return np.asarray(PLAN_NAMES)[self.plan]

    @property
    def channel_name(self) -> npt.NDArray[np.str_]:
        return np.asarray(CHANNELS)[self.channel]

    @property
    def currency_index(self) -> IntArray:
        return np.asarray([CURRENCIES.index(c) for c in self.currency.tolist()], dtype=np.int64)

    def take(self, index: npt.ArrayLike) -> Signups:
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = value.take(index) if isinstance(value, (Traits, Cards)) else value[index]
        return Signups(**values)

    @staticmethod
    def concat(parts: list[Signups]) -> Signups:
        values: dict[str, Any] = {}
        for f in fields(Signups):
            items = [getattr(p, f.name) for p in parts]
            if f.name == "traits":
                values[f.name] = Traits.concat(items)
            elif f.name == "card":
                values[f.name] = Cards.concat(items)
            else:
                values[f.name] = np.concatenate(items)
        return Signups(**values)

    def columns(self) -> dict[str, npt.NDArray[np.generic]]:
        """Flat columns: the customer's attributes, traits and card (``card_*``)."""
        out: dict[str, npt.NDArray[np.generic]] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Traits):
                out.update(value.columns())
            elif isinstance(value, Cards):
                out.update(
                    {
                        f"card_{g.name}": getattr(value, g.name)
                        for g in fields(value)
                        if g.name != "customer_key"
                    }
                )
            else:
                out[f.name] = value
        out["plan_name"] = self.plan_name
        out["channel_name"] = self.channel_name
        return out

    def to_frame(self) -> Any:
        """A pandas DataFrame of :meth:`columns` (pandas is imported only here)."""
        import pandas as pd

        return pd.DataFrame(self.columns())


def expected_signups(params: WorldParams, day: int) -> FloatArray:
    """The mean number of signups on ``day`` per channel (CHANNELS order)."""
    cal = timeline.days(params.start, day)
    growth = (1.0 + params.annual_signup_growth) ** (day / 365.0)
    season = params.weekday_signup_factors[int(cal.weekday)] * params.month_signup_factors[int(cal.month) - 1]
    shares = np.asarray(params.channel_shares, dtype=np.float64) / sum(params.channel_shares)
    return np.asarray(params.signups_per_day * growth * season * shares, dtype=np.float64)


def draw_signups(params: WorldParams, day: int, rng: RandomSource) -> Signups:
    """The customers who sign up on ``day`` (negative days are a warm-up before the start)."""
    if isinstance(day, bool) or not isinstance(day, (int, np.integer)):
        raise InvalidInput("day", "a day index (an integer)", day)
    return draw_signups_between(params, int(day), int(day) + 1, rng)


def draw_signups_between(params: WorldParams, first_day: int, end_day: int, rng: RandomSource) -> Signups:
    """The customers who sign up on days ``first_day <= day < end_day``, in one batch.

    The same as concatenating :func:`draw_signups` day by day (same keys, same draws).
    """
    if end_day < first_day:
        raise InvalidInput("end_day", f"a day of at least first_day ({first_day})", end_day)
    day_list = np.arange(first_day, end_day, dtype=np.int64)
    rates = (
        np.stack([expected_signups(params, int(d)) for d in day_list]) if len(day_list) else np.zeros((0, 5))
    )
    counts = rng.poisson(rates, "signups.count", day_list[:, None], np.arange(len(CHANNELS))[None, :])
    per_day = counts.sum(axis=1)
    if np.any(per_day >= CARD_TESTING_KEY_OFFSET):
        raise InvalidInput(
            "signups_per_day", f"fewer than {CARD_TESTING_KEY_OFFSET} signups a day", int(per_day.max())
        )
    total = int(per_day.sum())
    day_of = np.repeat(day_list, per_day)
    starts = np.cumsum(per_day) - per_day
    index = np.arange(total, dtype=np.int64) - np.repeat(starts, per_day)
    keys = day_of * KEY_DAY_FACTOR + index
    channel = np.repeat(np.tile(np.arange(len(CHANNELS), dtype=np.int64), len(day_list)), counts.ravel())
    return draw_accounts(params, rng, day=day_of, customer_key=keys, channel=channel)


def draw_accounts(
    params: WorldParams, rng: RandomSource, *, day: npt.ArrayLike, customer_key: IntArray, channel: IntArray
) -> Signups:
    """Everything about new accounts ``customer_key`` signing up on ``day`` through ``channel``."""
    key = np.asarray(customer_key, dtype=np.int64)
    n = len(key)
    day_arr = np.broadcast_to(np.asarray(day, dtype=np.int64), key.shape)
    month = timeline.days(params.start, day_arr).month_index
    currency_index = rng.choice(params.currency_shares, "signup.currency", key)
    currency = np.asarray(CURRENCIES)[currency_index]
    country = np.empty(n, dtype="<U2")
    tz = np.empty(n, dtype="<U32")
    for index, code in enumerate(CURRENCIES):
        mask = currency_index == index
        places = MARKETS[code][2]
        pick = rng.integers(0, len(places), "signup.place", key[mask])
        country[mask] = [places[i][0] for i in pick.tolist()]
        tz[mask] = [places[i][1] for i in pick.tolist()]
    language = np.asarray([LANGUAGES.get(c, "en") for c in country.tolist()], dtype="<U2")
    plan = rng.choice(
        np.asarray(params.plan_shares_by_channel, dtype=np.float64)[channel], "signup.plan", key
    )
    seats_raw = np.round(params.seats_median * np.exp(params.seats_log_sd * rng.normals("signup.seats", key)))
    seats = np.where(plan == SEATS_PLAN, np.maximum(seats_raw, 2), 1).astype(np.int64)
    metered = rng.uniforms("signup.metered", key) < params.metered_addon_share
    invoice = rng.uniforms("signup.invoice", key) < np.asarray(params.invoice_share_by_channel)[channel]
    terms = np.asarray(params.net_terms_days, dtype=np.int64)[
        rng.choice(params.net_terms_shares, "signup.terms", key)
    ]
    hour = rng.choice(params.signup_hour_weights, "signup.hour", key)
    domain, email_kind = card_module.email_domains(
        params, rng, customer_key=key, country=country, channel=channel
    )
    mismatch = rng.uniforms("signup.ip_mismatch", key) < params.ip_country_mismatch_share
    other = np.asarray(card_module.COUNTRIES)[
        rng.integers(0, len(card_module.COUNTRIES), "signup.ip_country", key)
    ]
    ip_country = np.where(mismatch & (other != country), other, country)
    mismatch = ip_country != country
    traits = draw_traits(params, rng, key)
    card = card_module.draw_cards(
        params, rng, customer_key=key, card_version=0, day=day_arr, currency_index=currency_index
    )
    p_fraud = fraud.signup_fraud_probability(
        params,
        month=month,
        channel=channel,
        plan=plan,
        disposable=email_kind == card_module.EMAIL_DISPOSABLE,
        ip_mismatch=mismatch,
        night=hour < fraud.NIGHT_HOURS,
    )
    is_fraud = rng.uniforms("fraud.signup", key) < p_fraud
    delay = fraud.chargeback_delay_days(params, rng, "fraud.signup_chargeback", key)
    chargeback_day = np.where(is_fraud, day_arr + delay, -1).astype(np.int64)
    natural_death = card.death_day
    card = Cards(
        **{
            **{f.name: getattr(card, f.name) for f in fields(card)},
            "death_day": np.where(is_fraud, np.minimum(natural_death, chargeback_day), natural_death),
            "death_code": np.where(
                is_fraud & (chargeback_day <= natural_death), STOLEN_CARD, card.death_code
            ),
            "stolen": is_fraud.copy(),
        }
    )
    return Signups(
        customer_key=key,
        day=day_arr.copy(),
        signup_hour=hour,
        channel=np.asarray(channel, dtype=np.int64),
        currency=currency.astype("<U3"),
        country=country,
        timezone=tz,
        language=language,
        plan=plan,
        seats=seats,
        metered_addon=metered,
        pays_by_invoice=invoice,
        net_terms_days=np.where(invoice, terms, 0).astype(np.int64),
        email_domain=domain,
        email_kind=email_kind,
        device_id=card_module.device_ids(rng, "signup.device", key),
        ip_address=card_module.ip_addresses(rng, ip_country, "signup.ip", key),
        ip_country=ip_country.astype("<U2"),
        traits=traits,
        card=card,
        fraud_kind=np.where(is_fraud, fraud.STOLEN_CARD_SIGNUP, fraud.NOT_FRAUD).astype(np.int64),
        fraud_probability=p_fraud,
        is_fraud=is_fraud,
        chargeback_day=chargeback_day,
    )


def replacement_cards(
    params: WorldParams,
    rng: RandomSource,
    *,
    previous: Cards,
    day: npt.ArrayLike,
    currency_index: npt.ArrayLike,
) -> Cards:
    """The next version of each card (a customer's update, or an account updater's).

    The replacement keeps the issuer (BIN) more often than not and runs the full card lifetime.
    """
    return card_module.draw_cards(
        params,
        rng,
        customer_key=previous.customer_key,
        card_version=previous.card_version + 1,
        day=day,
        currency_index=currency_index,
        previous_bin=previous.bin,
    )


def invoice_amount_usd(plan: npt.ArrayLike, seats: npt.ArrayLike) -> FloatArray:
    """The list price of one invoice of ``plan`` in US dollars (per-seat plans times ``seats``)."""
    plan_i = np.asarray(plan, dtype=np.int64)
    price = np.asarray([p.usd_minor / 100 for p in PLANS], dtype=np.float64)[plan_i]
    per_seat = np.asarray([p.per_seat for p in PLANS])[plan_i]
    return np.asarray(
        np.where(per_seat, price * np.asarray(seats, dtype=np.float64), price), dtype=np.float64
    )


@lru_cache(maxsize=16)
def account_sample(params: WorldParams, size: int = 20_000) -> Signups:
    """A fixed sample of accounts, independent of any run's seed (for calibration)."""
    source = RandomSource(CALIBRATION_SEED)
    keys = np.arange(size, dtype=np.int64)
    channel = source.choice(params.channel_shares, "sample.channel", keys)
    return draw_accounts(
        params.replace(scenario="baseline"), source, day=0, customer_key=keys, channel=channel
    )
