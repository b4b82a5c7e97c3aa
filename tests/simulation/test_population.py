"""Signups, traits, cards and identities."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from billing_core.book import LANGUAGES, MARKETS
from billing_core.customers import validate_card
from billing_core.simulation import cards, population, timeline
from billing_core.simulation.params import CHANNELS, CURRENCIES, PLANS, WorldParams
from billing_core.simulation.rng import RandomSource

PARAMS = WorldParams()


@pytest.fixture(scope="module")
def signups() -> population.Signups:
    return population.draw_signups_between(PARAMS, 0, 120, RandomSource(3))


def _equal(a: population.Signups, b: population.Signups) -> bool:
    left, right = a.columns(), b.columns()
    return left.keys() == right.keys() and all(np.array_equal(left[k], right[k]) for k in left)


def test_same_seed_same_signups_and_batches_match_days() -> None:
    one = population.draw_signups(PARAMS, 17, RandomSource(9))
    two = population.draw_signups(PARAMS, 17, RandomSource(9))
    assert len(one) > 0
    assert _equal(one, two)
    days = population.Signups.concat(
        [population.draw_signups(PARAMS, d, RandomSource(9)) for d in range(15, 20)]
    )
    assert _equal(days, population.draw_signups_between(PARAMS, 15, 20, RandomSource(9)))
    assert not _equal(one, population.draw_signups(PARAMS, 17, RandomSource(10)))


def test_counts_follow_growth_week_and_channels(signups: population.Signups) -> None:
    expected = sum(population.expected_signups(PARAMS, d).sum() for d in range(120))
    assert len(signups) == pytest.approx(expected, rel=0.03)
    weekday = timeline.days(PARAMS.start, signups.day).weekday
    per_day = np.bincount(weekday, minlength=7)
    assert per_day[:5].mean() > 1.3 * per_day[5:].mean()  # weekdays busier than weekends
    shares = np.bincount(signups.channel, minlength=len(CHANNELS)) / len(signups)
    assert np.allclose(shares, np.asarray(PARAMS.channel_shares) / sum(PARAMS.channel_shares), atol=0.015)
    assert len(np.unique(signups.customer_key)) == len(signups)


def test_markets_reuse_the_books_markets(signups: population.Signups) -> None:
    for code in CURRENCIES:
        mask = signups.currency == code
        assert mask.mean() == pytest.approx(MARKETS[code][0], abs=0.015)
        places = set(MARKETS[code][2])
        assert (
            set(zip(signups.country[mask].tolist(), signups.timezone[mask].tolist(), strict=True)) <= places
        )
    assert all(
        LANGUAGES[c] == lang
        for c, lang in zip(signups.country.tolist(), signups.language.tolist(), strict=True)
    )


def test_plans_depend_on_the_channel(signups: population.Signups) -> None:
    business = [p.name for p in PLANS].index("business")
    by_channel = [(signups.plan[signups.channel == c] == business).mean() for c in range(len(CHANNELS))]
    assert by_channel[CHANNELS.index("sales")] > 3 * by_channel[CHANNELS.index("organic")]
    sales = signups.channel == CHANNELS.index("sales")
    assert signups.pays_by_invoice[sales].mean() > 0.4 > signups.pays_by_invoice[~sales].mean()
    assert np.all(signups.net_terms_days[~signups.pays_by_invoice] == 0)
    assert set(signups.net_terms_days[signups.pays_by_invoice].tolist()) <= set(PARAMS.net_terms_days)
    seats = signups.plan == [p.name for p in PLANS].index("seats")
    assert np.all(signups.seats[seats] >= 2)
    assert np.all(signups.seats[~seats] == 1)


def test_traits_are_bounded_and_payday_cycles_follow_bls_shares(signups: population.Signups) -> None:
    t = signups.traits
    for values in (t.financial_health, t.engagement, t.price_sensitivity, t.honesty, t.responsiveness):
        assert np.all((values > 0) & (values < 1))
    assert np.all((t.preferred_hour >= 0) & (t.preferred_hour < 24))
    shares = np.bincount(t.payday_cycle, minlength=4) / len(t)
    assert np.allclose(shares, PARAMS.payday_cycle_shares, atol=0.015)
    assert np.all(t.payday_phase[t.payday_cycle == timeline.WEEKLY] < 5)
    assert np.all(t.payday_phase[t.payday_cycle == timeline.BIWEEKLY] < 14)


def test_cards_are_valid_for_the_billing_core(signups: population.Signups) -> None:
    card = signups.card
    for i in range(0, len(card), 97):
        validate_card(
            brand=str(card.brand[i]),
            bin=str(card.bin[i]),
            last4=str(card.last4[i]),
            exp_month=int(card.exp_month[i]),
            exp_year=int(card.exp_year[i]),
        )
    for brand, ranges in cards.BRAND_RANGES.items():
        bins = card.bin[card.brand == brand].astype(int)
        inside = np.zeros(len(bins), dtype=bool)
        for lo, hi in ranges:
            inside |= (bins >= lo) & (bins <= hi)
        assert inside.all(), brand
    jpy = signups.currency == "JPY"
    assert (card.brand[jpy] == "jcb").mean() > 0.25 > (card.brand[~jpy] == "jcb").mean()
    # BINs are shared (Zipf popularity): far fewer BINs than cards
    assert len(np.unique(card.bin)) < len(card) / 3
    assert len(np.unique(card.fingerprint)) == len(card)


def test_about_one_card_in_36_expires_each_month(signups: population.Signups) -> None:
    card = signups.card
    month_later = [
        cards.expires_before(
            PARAMS.start, timeline.month_start_day(PARAMS.start, m), card.exp_month, card.exp_year
        ).mean()
        for m in (12, 24)
    ]
    assert month_later[1] - month_later[0] == pytest.approx(12 / PARAMS.card_lifetime_months, abs=0.03)
    assert card.auto_update.mean() == pytest.approx(PARAMS.card_updater_share, abs=0.02)


def test_identities_are_unique_and_synthetic(signups: population.Signups) -> None:
    assert len(np.unique(signups.device_id)) == len(signups)
    octets = np.array([list(map(int, ip.split("."))) for ip in signups.ip_address.tolist()])
    assert octets.min() >= 0
    assert octets.max() <= 255
    assert np.mean(signups.ip_country != signups.country) == pytest.approx(
        PARAMS.ip_country_mismatch_share, abs=0.01
    )
    disposable = signups.email_kind == cards.EMAIL_DISPOSABLE
    assert disposable.mean() == pytest.approx(PARAMS.disposable_email_share, abs=0.005)
    assert set(signups.email_domain[disposable].tolist()) <= set(cards.DISPOSABLE_DOMAINS)


def test_replacement_cards_run_the_full_lifetime(signups: population.Signups) -> None:
    old = signups.card.take(np.arange(200))
    new = population.replacement_cards(
        PARAMS, RandomSource(3), previous=old, day=400, currency_index=signups.currency_index[:200]
    )
    assert np.all(new.card_version == old.card_version + 1)
    cal = timeline.days(PARAMS.start, 400)
    months = new.exp_year * 12 + new.exp_month - 1 - (cal.year * 12 + cal.month - 1)
    assert np.all(months == PARAMS.card_lifetime_months)
    assert 0.5 < np.mean(new.bin == old.bin) < 0.9  # mostly the same issuer


def test_frame_has_one_row_per_signup(signups: population.Signups) -> None:
    frame = signups.take(np.arange(50)).to_frame()
    assert len(frame) == 50
    assert {"customer_key", "plan_name", "financial_health", "card_bin", "fraud_probability"} <= set(
        frame.columns
    )


def test_a_world_can_start_with_a_warm_up() -> None:
    before = population.draw_signups_between(PARAMS, -30, 0, RandomSource(1))
    assert len(before) > 0
    assert np.all(before.day < 0)
    after = population.draw_signups_between(PARAMS, 0, 30, RandomSource(1))
    assert not set(before.customer_key.tolist()) & set(after.customer_key.tolist())


def test_signups_carry_no_shared_state() -> None:
    # the arrays of one batch are the batch's own: changing them does not change another draw
    first = population.draw_signups(PARAMS, 3, RandomSource(2))
    first.traits.financial_health[:] = 0.0
    again = population.draw_signups(PARAMS, 3, RandomSource(2))
    assert np.all(again.traits.financial_health > 0)
    assert dataclasses.is_dataclass(again)
