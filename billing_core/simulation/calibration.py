"""A fast roll-forward of the world under a fixed reference policy, to check its aggregate rates.

This is not the runner: there is no billing database, no invoice arithmetic and no real dunning
engine. It strings the world's functions together month by month over a cohort (card payers are
charged on their billing day; invoice payers pay on net terms; engagement drifts daily; churn is
decided at month starts) under a **reference policy** close to common defaults:

* retries of soft declines 1, 3, 5 and 7 days after the first failure, at 10:00 local time
  (hard declines and expired cards are not retried);
* email reminders on the day of the failure and 3 and 7 days after;
* the subscription is canceled (involuntary churn) if the invoice is still unpaid 14 days after the
  failure. A customer who acts on a reminder pays, replacing the card if it cannot be charged.

:func:`roll_forward` reports the rates that public figures pin down (yearly churn and its
involuntary share, decline rates, late invoices, fraud share of payments, dispute rate), so tests
and docs/simulator.md can compare the world with its sources.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from billing_core.errors import InvalidInput
from billing_core.simulation import behaviour, fraud, network, timeline
from billing_core.simulation.cards import Cards, expires_before
from billing_core.simulation.params import EMAIL, PLANS, WorldParams
from billing_core.simulation.population import Signups, draw_signups_between, replacement_cards
from billing_core.simulation.rng import IntArray, RandomSource
from billing_core.simulation.usage import drift_engagement

REFERENCE_RETRY_DAYS = (1, 3, 5, 7)
REFERENCE_REMINDER_DAYS = (0, 3, 7)
REFERENCE_CUTOFF_DAYS = 14
CHARGE_HOUR = 10
ACTIVE, VOLUNTARY, INVOLUNTARY, FRAUD_ENDED = range(4)


@dataclass(frozen=True)
class CalibrationReport:
    customers: int
    months: int
    cohort: int  # non-fraud customers active at the start of the measured year
    annual_churn: float
    voluntary_annual_churn: float
    involuntary_annual_churn: float
    involuntary_share: float
    first_attempt_decline_rate: float
    attempt_decline_rate: float
    decline_code_shares: dict[str, float]  # first attempts
    recovered_share: float  # failed first attempts paid within the cutoff
    late_share: float
    fraud_payment_share: float  # successful payments that are fraudulent (card testing aside)
    card_testing_attempts: int
    dispute_rate: float  # disputes per paid invoice
    signup_fraud_rate: float

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _assign(cards: Cards, index: IntArray, new: Cards) -> None:
    for f in fields(cards):
        getattr(cards, f.name)[index] = getattr(new, f.name)


def roll_forward(
    params: WorldParams,
    *,
    seed: int = 0,
    months: int = 24,
    signup_scale: float = 0.1,
    measure_from_month: int = 12,
) -> CalibrationReport:
    """Roll the world forward ``months`` months with ``signup_scale`` of its signups."""
    if months < 1:
        raise InvalidInput("months", "at least 1 month", months)
    if not 0 < signup_scale <= 1:
        raise InvalidInput("signup_scale", "a share of the signups in (0, 1]", signup_scale)
    rng = RandomSource(seed)
    world = params.replace(
        signups_per_day=params.signups_per_day * signup_scale,
        card_testing_bursts_per_day=params.card_testing_bursts_per_day * signup_scale,
    )
    book: Signups | None = None
    status = np.zeros(0, dtype=np.int64)
    end_day = np.zeros(0, dtype=np.int64)
    pending = np.zeros(0, dtype=np.int64)
    engagement = np.zeros(0)
    history: list[np.ndarray[Any, Any]] = []
    blocked = np.zeros(0, dtype=np.int64)
    card: Cards | None = None
    counts = dict.fromkeys(
        (
            "first",
            "first_declined",
            "attempts",
            "declines",
            "failed",
            "recovered",
            "net_terms",
            "late",
            "paid",
            "fraud_paid",
            "disputes",
            "card_testing",
        ),
        0,
    )
    codes = np.zeros(len(network.DECLINE_CODES), dtype=np.int64)
    cohort_mask: np.ndarray[Any, Any] | None = None
    year_start = timeline.month_start_day(params.start, measure_from_month)
    year_end = timeline.month_start_day(params.start, measure_from_month + 12)

    for m in range(months):
        ms = int(timeline.month_start_day(params.start, m))
        me = int(timeline.month_start_day(params.start, m + 1))
        new = draw_signups_between(world, ms, me, rng)
        book = new if book is None else Signups.concat([book, new])
        card = new.card if card is None else Cards.concat([card, new.card])
        n_new = len(new)
        status = np.concatenate([status, np.zeros(n_new, dtype=np.int64)])
        end_day = np.concatenate([end_day, np.full(n_new, -1, dtype=np.int64)])
        pending = np.concatenate([pending, np.full(n_new, -1, dtype=np.int64)])
        engagement = np.concatenate([engagement, new.traits.engagement])
        history = [np.concatenate([h, new.traits.engagement]) for h in history]
        history.append(engagement.copy())
        blocked = np.concatenate([blocked, np.full(n_new, network.NO_DECLINE, dtype=np.int64)])
        for d in range(ms, me):
            counts["card_testing"] += len(fraud.draw_card_testing(world, rng, d))
        keys = book.customer_key
        signup_month = timeline.days(params.start, book.day).month_index
        if m == measure_from_month:
            cohort_mask = (status == ACTIVE) & (book.day < ms) & ~book.is_fraud

        # fraud ends: the stolen card's owner charged back
        ended = (status == ACTIVE) & book.is_fraud & (book.chargeback_day < ms)
        status[ended], end_day[ended] = FRAUD_ENDED, book.chargeback_day[ended]

        # voluntary churn decisions at the month start
        eligible = np.nonzero((status == ACTIVE) & (book.day < ms) & ~book.is_fraud & (pending < 0))[0]
        if len(eligible):
            ago = history[max(0, len(history) - 4)][eligible]
            decision = behaviour.voluntary_churn(
                params,
                rng,
                customer_key=keys[eligible],
                month=m,
                tenure_months=m - signup_month[eligible],
                engagement=engagement[eligible],
                engagement_90d_ago=ago,
                price_sensitivity=book.traits.price_sensitivity[eligible],
            )
            pending[eligible[decision.decides]] = decision.cancel_day[decision.decides]

        # billing: period k of a customer falls on their signup day of the month, k months later
        period = m - signup_month
        dom = timeline.days(params.start, book.day).day_of_month
        dim = timeline.days(params.start, ms).days_in_month
        bill_day = np.where(period == 0, book.day, ms + np.minimum(dom, dim) - 1)
        annual = np.asarray([PLANS[p].interval == "year" for p in book.plan.tolist()], dtype=bool)
        due = (
            (status == ACTIVE)
            & (period >= 0)
            & (~annual | (period % 12 == 0))
            & ((pending < 0) | (pending > bill_day))
        )
        monthly_usd = np.asarray([PLANS[p].usd_minor / 100 for p in book.plan.tolist()]) * book.seats
        stolen_now = card.stolen & (card.death_day > bill_day)

        # account updaters replace expiring cards before the charge
        expired = expires_before(params.start, bill_day, card.exp_month, card.exp_year)
        auto = np.nonzero(due & expired & card.auto_update & ~book.pays_by_invoice)[0]
        if len(auto):
            _assign(
                card,
                auto,
                replacement_cards(
                    params,
                    rng,
                    previous=card.take(auto),
                    day=bill_day[auto],
                    currency_index=book.currency_index[auto],
                ),
            )
            blocked[auto] = network.NO_DECLINE

        paid_index: list[np.ndarray[Any, Any]] = []
        # invoice payers
        inv = np.nonzero(due & book.pays_by_invoice)[0]
        if len(inv):
            pay = behaviour.invoice_payment(
                params,
                rng,
                customer_key=keys[inv],
                period_index=period[inv],
                issue_day=bill_day[inv],
                due_day=bill_day[inv] + book.net_terms_days[inv],
                financial_health=book.traits.financial_health[inv],
                amount_usd=monthly_usd[inv],
            )
            counts["net_terms"] += len(inv)
            counts["late"] += int((~pay.paid_by_due).sum())
            paid_index.append(inv)

        # card payers: first attempts
        cp = np.nonzero(due & ~book.pays_by_invoice)[0]
        if len(cp):
            paid_cards, failed = _collect(
                params, rng, book, card, blocked, cp, period, bill_day, monthly_usd, counts, codes
            )
            paid_index.append(paid_cards)
            lost = failed
            status[lost] = INVOLUNTARY
            end_day[lost] = bill_day[lost] + REFERENCE_CUTOFF_DAYS
            fraud_lost = lost[book.is_fraud[lost]]
            status[fraud_lost] = FRAUD_ENDED

        paid = np.concatenate(paid_index) if paid_index else np.zeros(0, dtype=np.int64)
        if len(paid):
            counts["paid"] += len(paid)
            dispute = behaviour.dispute_draw(
                params,
                rng,
                customer_key=keys[paid],
                period_index=period[paid],
                paid_day=bill_day[paid],
                honesty=book.traits.honesty[paid],
            )
            counts["disputes"] += int(dispute.disputes.sum())
            fraudulent = stolen_now[paid] | dispute.friendly_fraud
            counts["fraud_paid"] += int(fraudulent.sum())

        # account takeovers during the month (monthly draw of the daily hazard)
        live = np.nonzero((status == ACTIVE) & ~book.is_fraud & (book.day < ms))[0]
        if len(live):
            p_day = float(fraud.takeover_probability(params, m))
            hit = rng.uniforms("calibration.takeover", keys[live], m) < 1.0 - (1.0 - p_day) ** (me - ms)
            taken = live[hit]
            if len(taken):
                when = ms + rng.integers(0, me - ms, "calibration.takeover_day", keys[taken], m)
                _assign(
                    card,
                    taken,
                    fraud.takeover_cards(
                        params,
                        rng,
                        previous=card.take(taken),
                        day=when,
                        currency_index=book.currency_index[taken],
                    ),
                )
                blocked[taken] = network.NO_DECLINE

        # voluntary cancels this month
        leaving = (status == ACTIVE) & (pending >= ms) & (pending < me)
        status[leaving], end_day[leaving] = VOLUNTARY, pending[leaving]

        # engagement drifts day by day
        alive = np.nonzero(status == ACTIVE)[0]
        for d in range(ms, me):
            engagement[alive] = drift_engagement(
                params,
                rng,
                customer_key=keys[alive],
                day=d,
                engagement=engagement[alive],
                anchor=book.traits.engagement[alive],
            )
        history[-1] = engagement.copy()

    if book is None or card is None:  # months >= 1 always draws a (possibly empty) batch
        raise InvalidInput("months", "at least 1 month", months)
    cohort = np.zeros(len(book), dtype=bool)
    if cohort_mask is not None:
        cohort[: len(cohort_mask)] = cohort_mask
    within = cohort & (end_day >= year_start) & (end_day < year_end)
    size = max(int(cohort.sum()), 1)
    voluntary = float((within & (status == VOLUNTARY)).sum()) / size
    involuntary = float((within & (status == INVOLUNTARY)).sum()) / size
    declined = max(int(codes.sum()), 1)
    return CalibrationReport(
        customers=len(book),
        months=months,
        cohort=int(cohort.sum()),
        annual_churn=voluntary + involuntary,
        voluntary_annual_churn=voluntary,
        involuntary_annual_churn=involuntary,
        involuntary_share=involuntary / max(voluntary + involuntary, 1e-12),
        first_attempt_decline_rate=counts["first_declined"] / max(counts["first"], 1),
        attempt_decline_rate=counts["declines"] / max(counts["attempts"], 1),
        decline_code_shares={str(c): float(codes[i] / declined) for i, c in enumerate(network.DECLINE_CODES)},
        recovered_share=counts["recovered"] / max(counts["failed"], 1),
        late_share=counts["late"] / max(counts["net_terms"], 1),
        fraud_payment_share=counts["fraud_paid"] / max(counts["paid"], 1),
        card_testing_attempts=counts["card_testing"],
        dispute_rate=counts["disputes"] / max(counts["paid"], 1),
        signup_fraud_rate=float(book.is_fraud.mean()) if len(book) else 0.0,
    )


def _collect(
    params: WorldParams,
    rng: RandomSource,
    book: Signups,
    card: Cards,
    blocked: IntArray,
    index: IntArray,
    period: IntArray,
    bill_day: IntArray,
    amount_usd: np.ndarray[Any, Any],
    counts: dict[str, int],
    codes: IntArray,
) -> tuple[IntArray, IntArray]:
    """Charge ``index`` on their bill day under the reference policy: (paid, lost) indexes."""
    traits = book.traits

    def charge(
        idx: IntArray,
        attempt: int,
        day: IntArray,
        previous: IntArray,
        since_previous: npt.ArrayLike,
        since_first: npt.ArrayLike,
    ) -> network.ChargeOutcome:
        out = network.attempt_charges(
            params,
            rng,
            customer_key=book.customer_key[idx],
            period_index=period[idx],
            attempt_number=attempt,
            day=day,
            hour=CHARGE_HOUR,
            amount_usd=amount_usd[idx],
            financial_health=traits.financial_health[idx],
            payday_cycle=traits.payday_cycle[idx],
            payday_phase=traits.payday_phase[idx],
            card_expired=expires_before(params.start, day, card.exp_month[idx], card.exp_year[idx]),
            card_death_day=card.death_day[idx],
            card_death_code=card.death_code[idx],
            blocked_code=blocked[idx],
            previous_code=previous,
            days_since_previous=since_previous,
            days_since_first_failure=since_first,
            stolen_card=card.stolen[idx],
        )
        counts["attempts"] += len(idx)
        counts["declines"] += int((~out.succeeded).sum())
        hard = out.card_unusable & (out.decline_code != network.EXPIRED_CARD)
        blocked[idx[hard]] = out.decline_code[hard]
        return out

    first = charge(index, 0, bill_day[index], np.full(len(index), network.NO_DECLINE), 0.0, 0.0)
    counts["first"] += len(index)
    counts["first_declined"] += int((~first.succeeded).sum())
    codes += np.bincount(first.decline_code[~first.succeeded].astype(np.int64), minlength=len(codes))
    failed = index[~first.succeeded]
    counts["failed"] += len(failed)
    if not len(failed):
        return index, failed
    previous = first.decline_code[~first.succeeded].astype(np.int64)
    unusable = first.card_unusable[~first.succeeded]
    by_retry = np.zeros(len(failed), dtype=bool)
    act = np.full(len(failed), np.inf)
    fraudster = book.is_fraud[failed]
    events = sorted(
        [(t, 0, j) for j, t in enumerate(REFERENCE_REMINDER_DAYS)]
        + [(t, 1, j) for j, t in enumerate(REFERENCE_RETRY_DAYS)]
    )
    last_try = np.zeros(len(failed))
    for t, kind, j in events:
        live = np.nonzero(~by_retry & (act > t))[0]
        if not len(live):
            break
        who = failed[live]
        if kind == 0:
            response = behaviour.reminder_response(
                params,
                rng,
                customer_key=book.customer_key[who],
                period_index=period[who],
                reminder_number=j,
                channel=EMAIL,
                local_hour=CHARGE_HOUR,
                preferred_hour=traits.preferred_hour[who],
                responsiveness=traits.responsiveness[who],
                financial_health=traits.financial_health[who],
                day=bill_day[who] + t,
                horizon_days=float(REFERENCE_CUTOFF_DAYS - t),
            )
            acts = response.responds & ~fraudster[live]
            act[live] = np.minimum(act[live], np.where(acts, t + response.delay_days, np.inf))
        else:
            usable = live[~unusable[live]]
            if not len(usable):
                continue
            who = failed[usable]
            out = charge(
                who, j + 1, bill_day[who] + t, previous[usable], float(t) - last_try[usable], float(t)
            )
            by_retry[usable[out.succeeded]] = True
            previous[usable] = np.where(out.succeeded, previous[usable], out.decline_code)
            unusable[usable] |= out.card_unusable
            last_try[usable] = t
    acted = ~by_retry & (act <= REFERENCE_CUTOFF_DAYS)
    replace = np.nonzero(acted & unusable)[0]
    if len(replace):
        who = failed[replace]
        day = (bill_day[who] + np.ceil(act[replace])).astype(np.int64)
        new = replacement_cards(
            params, rng, previous=card.take(who), day=day, currency_index=book.currency_index[who]
        )
        for f in fields(card):
            getattr(card, f.name)[who] = getattr(new, f.name)
        blocked[who] = network.NO_DECLINE
    paid = by_retry | acted
    counts["recovered"] += int(paid.sum())
    return np.concatenate([index[first.succeeded], failed[paid]]), failed[~paid]
