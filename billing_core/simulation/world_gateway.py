"""A payment gateway whose answers come from the world's card network.

:class:`WorldGateway` implements :class:`billing_core.payments.PaymentGateway`. The billing core
asks it exactly as it would ask an acquirer (the billing run's first attempts, the dunning
engine's retries, a customer paying by hand); it answers from
:func:`billing_core.simulation.network.attempt_charges`, keyed by the world's identities:

* the idempotency key ``in_<invoice>_attempt_<n>`` names the invoice and the attempt; one query
  per batch reads the invoices it has not seen yet and maps each to the world's customer key and
  period index (:meth:`~billing_core.simulation.state.WorldState.load_invoices`); the attempt is
  the world's attempt ``n - 1``;
* the payment method names the world card (its version, death day, whether it is stolen), the
  request's instant gives the day and the customer's local hour, and the gateway remembers per
  invoice the last decline, on which card, and when the first one came;
* an attempt the customer makes themselves after deciding to pay (a reminder they acted on, an
  invoice on net terms) goes through; a card-testing account's tested card answers as the world
  drew it.

It keeps its memory (and the ground truth it records: every attempt's probability of success,
outcome and fraud truth) in this process, so it says ``process_safe = False``: the billing run
and the dunning engine ask it from their own process. The same key always gets the same answer.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from billing_core.payments import ChargeRequest, ChargeResult, RefundRequest, RefundResult
from billing_core.simulation import fraud, network
from billing_core.simulation.network import DECLINE_CODES, NO_DECLINE
from billing_core.simulation.state import (
    SIGNUP_STOLEN,
    TAKEOVER_CARD,
    InvoiceInfo,
    NetworkMemory,
    WorldState,
    zone_of,
)

_FINAL = "subscription_final"


def _reference(prefix: str, key: str) -> str:
    return f"{prefix}_{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}"


def parse_key(key: str) -> tuple[int, int]:
    """``in_<invoice>_attempt_<n>`` as ``(invoice id, n)``."""
    head, invoice, word, number = key.split("_")
    if head != "in" or word != "attempt":
        raise ValueError(f"not an attempt key: {key!r}")
    return int(invoice), int(number)


class WorldGateway:
    """A :class:`~billing_core.payments.PaymentGateway` backed by the world's card network."""

    process_safe = False

    def __init__(self, state: WorldState) -> None:
        self.state = state
        self._answers: dict[str, ChargeResult] = {}
        #: truth rows of attempts, waiting for their payment_attempts ids (columns)
        self.rows: dict[str, list[Any]] = {name: [] for name in _ROW_NAMES}
        self.seconds = 0.0  # time spent answering

    # -- PaymentGateway -----------------------------------------------------------------------

    def charge_many(self, requests: Sequence[ChargeRequest]) -> list[ChargeResult]:
        started = time.perf_counter()
        try:
            return self._charge_many(requests)
        finally:
            self.seconds += time.perf_counter() - started

    def _charge_many(self, requests: Sequence[ChargeRequest]) -> list[ChargeResult]:
        state = self.state
        results: list[ChargeResult | None] = [None] * len(requests)
        fresh: list[tuple[int, ChargeRequest, int, int]] = []
        for position, request in enumerate(requests):
            known = self._answers.get(request.idempotency_key)
            if known is not None:
                results[position] = known
                continue
            invoice_id, number = parse_key(request.idempotency_key)
            fresh.append((position, request, invoice_id, number))
        state.load_invoices(invoice_id for _, _, invoice_id, _ in fresh)
        network_batch: list[tuple[int, ChargeRequest, int, int, InvoiceInfo]] = []
        paying: list[tuple[int, ChargeRequest, int, int, InvoiceInfo]] = []
        for position, request, invoice_id, number in fresh:
            info = state.invoices[invoice_id]
            if info.idx < 0:
                results[position] = self._tested(request, invoice_id, number)
            elif request.idempotency_key in state.customer_payments:
                paying.append((position, request, invoice_id, number, info))
            else:
                network_batch.append((position, request, invoice_id, number, info))
        if paying:
            for position, result in self._customers_pay(paying):
                results[position] = result
        if network_batch:
            for position, result in self._network(network_batch):
                results[position] = result
        out: list[ChargeResult] = []
        for request, answer in zip(requests, results, strict=True):
            assert answer is not None
            self._answers[request.idempotency_key] = answer
            out.append(answer)
        return out

    def refund(self, request: RefundRequest) -> RefundResult:
        return RefundResult(request.idempotency_key, True, _reference("wre", request.idempotency_key))

    # -- answers --------------------------------------------------------------------------------

    def _network(
        self, batch: list[tuple[int, ChargeRequest, int, int, InvoiceInfo]]
    ) -> list[tuple[int, ChargeResult]]:
        state = self.state
        book = state.book
        n = len(batch)
        idx = np.empty(n, dtype=np.int64)
        period = np.empty(n, dtype=np.int64)
        attempt = np.empty(n, dtype=np.int64)
        day_f = np.empty(n, dtype=np.float64)
        hour = np.empty(n, dtype=np.int64)
        amount = np.empty(n, dtype=np.int64)
        currency: list[str] = []
        expired = np.empty(n, dtype=np.bool_)
        death_day = np.empty(n, dtype=np.int64)
        death_code = np.empty(n, dtype=np.int64)
        stolen = np.empty(n, dtype=np.bool_)
        blocked = np.empty(n, dtype=np.int64)
        previous = np.empty(n, dtype=np.int64)
        since_previous = np.empty(n, dtype=np.float64)
        since_first = np.empty(n, dtype=np.float64)
        kinds = np.empty(n, dtype=np.int64)
        card_p = np.empty(n, dtype=np.float64)
        final = np.empty(n, dtype=np.bool_)
        versions: list[tuple[int, int]] = []
        days: dict[Any, float] = {}
        hours: dict[tuple[Any, str], int] = {}  # a batch shares its instant: the local hour per time zone
        timezone = book.timezone
        for j, (_position, request, invoice_id, number, info) in enumerate(batch):
            card = state.cards[request.payment_method.id]
            i = info.idx
            at = request.attempted_at
            d = days.get(at)
            if d is None:
                d = days[at] = state.day_of(at)
            idx[j], period[j], attempt[j], day_f[j] = i, info.period, number - 1, d
            tz = timezone[i]
            h = hours.get((at, tz))
            if h is None:
                h = hours[(at, tz)] = at.astimezone(zone_of(str(tz))).hour
            hour[j] = h
            amount[j] = request.amount_minor
            currency.append(request.currency)
            expired[j] = request.payment_method.expires_before(request.attempted_at)
            death_day[j], death_code[j], stolen[j] = card.death_day, card.death_code, card.stolen
            version = (i, card.version)
            versions.append(version)
            blocked[j] = state.blocked.get(version, NO_DECLINE)
            memory = state.memory.get(invoice_id)
            if memory is None or memory.last_day < 0:
                previous[j], since_previous[j], since_first[j] = NO_DECLINE, 0.0, 0.0
            else:
                previous[j] = memory.last_code if memory.last_card == version else NO_DECLINE
                since_previous[j] = d - memory.last_day
                since_first[j] = d - memory.first_failure_day if memory.first_failure_day >= 0 else 0.0
            kinds[j], card_p[j] = card.kind, card.p_fraud
            final[j] = info.reason == _FINAL
        day = np.floor(day_f).astype(np.int64)
        traits = book.traits
        outcome = network.attempt_charges(
            state.params,
            state.rng,
            customer_key=book.customer_key[idx],
            period_index=period,
            attempt_number=attempt,
            day=day,
            hour=hour,
            amount_usd=network.usd_amount(amount, np.asarray(currency)),
            financial_health=traits.financial_health[idx],
            payday_cycle=traits.payday_cycle[idx],
            payday_phase=traits.payday_phase[idx],
            card_expired=expired,
            card_death_day=death_day,
            card_death_code=death_code,
            blocked_code=blocked,
            previous_code=previous,
            days_since_previous=since_previous,
            days_since_first_failure=since_first,
            stolen_card=stolen,
        )
        hard = network.is_hard(outcome.decline_code)
        on_stolen = kinds == SIGNUP_STOLEN
        on_takeover = kinds == TAKEOVER_CARD
        paid = outcome.succeeded & ~stolen
        friendly_p = np.zeros(n)
        friendly = np.zeros(n, dtype=np.bool_)
        if paid.any():
            draw = state.dispute_draw(idx[paid], period[paid], day[paid], final[paid])
            friendly_p[paid] = draw.p_friendly_fraud
            friendly[paid] = draw.friendly_fraud
        truth = fraud.payment_fraud(
            signup_probability=np.where(on_stolen, card_p, book.fraud_probability[idx]),
            stolen_signup=on_stolen,
            takeover_probability=np.where(on_takeover, card_p, 0.0),
            on_takeover_card=on_takeover,
            friendly_probability=friendly_p,
            friendly_fraud=friendly,
        )
        codes = network.decode(outcome.decline_code)
        declined = outcome.decline_code.tolist()
        out: list[tuple[int, ChargeResult]] = []
        memories = state.memory
        for j, (position, request, invoice_id, _number, _info) in enumerate(batch):
            code = codes[j]
            memory = memories.get(invoice_id)
            if memory is None:
                memory = memories[invoice_id] = NetworkMemory()
            memory.last_day = float(day_f[j])
            if code is not None:
                memory.last_code = declined[j]
                memory.last_card = versions[j]
                if memory.first_failure_day < 0:
                    memory.first_failure_day = memory.last_day
                if hard[j]:
                    state.blocked[versions[j]] = declined[j]
            key = request.idempotency_key
            out.append((position, ChargeResult(key, code is None, _reference("wch", key), code)))
        failed = outcome.succeeded == np.False_
        first = attempt == 0
        state.count("attempts", n)
        state.count("first_attempts", int(first.sum()))
        state.count("first_declines", int((first & failed).sum()))
        state.count("declines", int(failed.sum()))
        self._rows(
            key=book.customer_key[idx], period=period, attempt=attempt, invoice=[b[2] for b in batch],
            number=[b[3] for b in batch], day=day, hour=hour, p_success=outcome.p_success,
            succeeded=outcome.succeeded, code=[None if c is None else c.value for c in codes],
            p_fraud=truth.p_fraud, is_fraud=truth.is_fraud, kind=truth.kind,
        )  # fmt: skip
        return out

    def _customers_pay(
        self, batch: list[tuple[int, ChargeRequest, int, int, InvoiceInfo]]
    ) -> list[tuple[int, ChargeResult]]:
        """Customers who decided to pay (a reminder acted on, an invoice on net terms) pay."""
        state = self.state
        book = state.book
        idx = np.array([b[4].idx for b in batch], dtype=np.int64)
        period = np.array([b[4].period for b in batch], dtype=np.int64)
        day = np.array([int(np.floor(state.day_of(b[1].attempted_at))) for b in batch], dtype=np.int64)
        final = np.array([b[4].reason == _FINAL for b in batch])
        draw = state.dispute_draw(idx, period, day, final)
        truth = fraud.payment_fraud(
            signup_probability=book.fraud_probability[idx],
            stolen_signup=np.zeros(len(batch), dtype=np.bool_),
            friendly_probability=draw.p_friendly_fraud,
            friendly_fraud=draw.friendly_fraud,
        )
        hour = [
            b[1].attempted_at.astimezone(zone_of(str(book.timezone[i]))).hour
            for b, i in zip(batch, idx.tolist(), strict=True)
        ]
        n = len(batch)
        self._rows(
            key=book.customer_key[idx], period=period, attempt=[b[3] - 1 for b in batch], invoice=[b[2] for b in batch],
            number=[b[3] for b in batch], day=day, hour=hour, p_success=[1.0] * n, succeeded=[True] * n,
            code=[None] * n, p_fraud=truth.p_fraud, is_fraud=truth.is_fraud, kind=truth.kind,
        )  # fmt: skip
        state.count("attempts", n)
        state.count("customer_payments", n)
        return [
            (b[0], ChargeResult(b[1].idempotency_key, True, _reference("wch", b[1].idempotency_key)))
            for b in batch
        ]

    def _tested(self, request: ChargeRequest, invoice_id: int, number: int) -> ChargeResult:
        """A card-testing account's small charge: the tested card answers as the world drew it."""
        state = self.state
        tester = state.testers[request.customer_id]
        memory = state.memory.setdefault(invoice_id, NetworkMemory())
        if number == 1 and tester.answers:
            succeeded, code, p, world_attempt = tester.answers.pop(0)
            if not succeeded:
                memory.last_code = code
        else:  # the dunning engine retrying a tested card: it stays refused
            succeeded, code, p, world_attempt = False, memory.last_code, 0.0, number - 1
        day = int(np.floor(state.day_of(request.attempted_at)))
        decline = None if succeeded else DECLINE_CODES[code if code >= 0 else network.DO_NOT_HONOR]
        self._rows(
            key=[tester.key], period=[0], attempt=[world_attempt], invoice=[invoice_id], number=[number],
            day=[day], hour=[request.attempted_at.astimezone(zone_of(tester.tz_name)).hour], p_success=[p], succeeded=[succeeded],
            code=[None if decline is None else decline.value], p_fraud=[1.0], is_fraud=[True],
            kind=[fraud.CARD_TESTING],
        )  # fmt: skip
        state.count("attempts")
        state.count("card_testing_attempts")
        return ChargeResult(
            request.idempotency_key, succeeded, _reference("wch", request.idempotency_key), decline
        )

    def _rows(self, **columns: Any) -> None:
        rows = self.rows
        for name, values in columns.items():
            rows[name].extend(values.tolist() if isinstance(values, np.ndarray) else values)

    def take_rows(self) -> dict[str, list[Any]]:
        """The attempt truth rows recorded since the last call (and forget them)."""
        rows, self.rows = self.rows, {name: [] for name in _ROW_NAMES}
        return rows


_ROW_NAMES = (
    "key", "period", "attempt", "invoice", "number", "day", "hour", "p_success", "succeeded", "code",
    "p_fraud", "is_fraud", "kind",
)  # fmt: skip
