"""Payments: attempts through a gateway, decline codes, refunds and chargebacks.

Everything that talks to a card network goes through :class:`PaymentGateway`. The billing core
ships :class:`SimulatedGateway`, deterministic and offline, which answers with the decline codes a
real acquirer returns:

================  ==============  ===============================================
code              type            what to do
================  ==============  ===============================================
insufficient_funds soft           retry later (after payday is a good bet)
processing_error  soft            retry soon
try_again_later   soft            retry soon
do_not_honor      hard            do not retry; ask the customer
stolen_card       hard            never retry this card
lost_card         hard            never retry this card
fraudulent        hard            never retry this card; review the account
expired_card      needs_new_card  ask the customer for a new card
================  ==============  ===============================================

A decline is a value (:class:`ChargeResult`), not an exception. Every charge carries an
idempotency key; asking twice with the same key returns the first answer and moves money once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from billing_core.customers import PaymentMethod
from billing_core.state_machine import StateMachine


class DeclineType(StrEnum):
    SOFT = "soft"
    HARD = "hard"
    NEEDS_NEW_CARD = "needs_new_card"


class DeclineCode(StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    PROCESSING_ERROR = "processing_error"
    TRY_AGAIN_LATER = "try_again_later"
    DO_NOT_HONOR = "do_not_honor"
    STOLEN_CARD = "stolen_card"
    LOST_CARD = "lost_card"
    FRAUDULENT = "fraudulent"
    EXPIRED_CARD = "expired_card"

    @property
    def decline_type(self) -> DeclineType:
        return DECLINE_TYPES[self]

    @property
    def retryable(self) -> bool:
        return self.decline_type is DeclineType.SOFT


DECLINE_TYPES: Mapping[DeclineCode, DeclineType] = {
    DeclineCode.INSUFFICIENT_FUNDS: DeclineType.SOFT,
    DeclineCode.PROCESSING_ERROR: DeclineType.SOFT,
    DeclineCode.TRY_AGAIN_LATER: DeclineType.SOFT,
    DeclineCode.DO_NOT_HONOR: DeclineType.HARD,
    DeclineCode.STOLEN_CARD: DeclineType.HARD,
    DeclineCode.LOST_CARD: DeclineType.HARD,
    DeclineCode.FRAUDULENT: DeclineType.HARD,
    DeclineCode.EXPIRED_CARD: DeclineType.NEEDS_NEW_CARD,
}


class AttemptStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class AttemptEvent(StrEnum):
    SUCCEED = "succeed"
    FAIL = "fail"
    CANCEL = "cancel"


ATTEMPT_LIFECYCLE: StateMachine[AttemptStatus, AttemptEvent] = StateMachine(
    entity="payment_attempt",
    states=AttemptStatus,
    events=AttemptEvent,
    transitions={
        (AttemptStatus.PENDING, AttemptEvent.SUCCEED): AttemptStatus.SUCCEEDED,
        (AttemptStatus.PENDING, AttemptEvent.FAIL): AttemptStatus.FAILED,
        (AttemptStatus.PENDING, AttemptEvent.CANCEL): AttemptStatus.CANCELED,
    },
    terminal=frozenset({AttemptStatus.SUCCEEDED, AttemptStatus.FAILED, AttemptStatus.CANCELED}),
)


class ChargebackStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    idempotency_key: str
    customer_id: int
    payment_method: PaymentMethod
    amount_minor: int
    currency: str
    attempted_at: datetime


@dataclass(frozen=True, slots=True)
class ChargeResult:
    idempotency_key: str
    succeeded: bool
    gateway_reference: str
    decline_code: DeclineCode | None = None

    @property
    def decline_type(self) -> DeclineType | None:
        return self.decline_code.decline_type if self.decline_code else None


@dataclass(frozen=True, slots=True)
class RefundRequest:
    idempotency_key: str
    payment_reference: str
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class RefundResult:
    idempotency_key: str
    succeeded: bool
    gateway_reference: str


class PaymentGateway(Protocol):
    """A card acquirer. Implementations must honour idempotency keys."""

    def charge_many(self, requests: Sequence[ChargeRequest]) -> list[ChargeResult]: ...

    def refund(self, request: RefundRequest) -> RefundResult: ...


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


SOFT_DECLINE_SHARES: Mapping[DeclineCode, float] = {
    DeclineCode.INSUFFICIENT_FUNDS: 0.70,
    DeclineCode.TRY_AGAIN_LATER: 0.15,
    DeclineCode.PROCESSING_ERROR: 0.15,
}
HARD_DECLINE_SHARES: Mapping[DeclineCode, float] = {
    DeclineCode.DO_NOT_HONOR: 0.55,
    DeclineCode.FRAUDULENT: 0.20,
    DeclineCode.STOLEN_CARD: 0.125,
    DeclineCode.LOST_CARD: 0.125,
}


def _pick(u: float, shares: Mapping[DeclineCode, float]) -> DeclineCode:
    total = sum(shares.values())
    acc = 0.0
    last = next(iter(shares))
    for code, share in shares.items():
        acc += share / total
        last = code
        if u < acc:
            return code
    return last


class SimulatedGateway:
    """A deterministic, offline acquirer with realistic declines.

    * a card past its expiry month is declined ``expired_card``;
    * a share ``hard_decline_rate`` of cards (by fingerprint) is blocked for good with a hard
      code (do_not_honor, fraudulent, stolen_card, lost_card): every attempt on it fails the same;
    * any other attempt fails with a soft code with probability ``soft_decline_rate``, drawn
      afresh for each idempotency key.

    The same seed and idempotency key always give the same answer, so a retried request is
    answered as the first one was and a whole run can be replayed. Answers depend on nothing held
    in memory (``process_safe``), so the billing run may ask from a helper process.
    """

    process_safe = True

    def __init__(
        self, seed: int = 0, *, soft_decline_rate: float = 0.06, hard_decline_rate: float = 0.015
    ) -> None:
        self.seed = seed
        self.soft_decline_rate = soft_decline_rate
        self.hard_decline_rate = hard_decline_rate

    def decide(self, request: ChargeRequest) -> ChargeResult:
        key = request.idempotency_key
        digest = hashlib.blake2b(f"{self.seed}:{key}".encode(), digest_size=16).digest()
        reference = f"sim_ch_{digest[:8].hex()}"
        card = request.payment_method
        if card.expires_before(request.attempted_at):
            return ChargeResult(key, False, reference, DeclineCode.EXPIRED_CARD)
        u_card = _unit(self.seed, "card", card.fingerprint)
        if u_card < self.hard_decline_rate:
            code = _pick(u_card / self.hard_decline_rate, HARD_DECLINE_SHARES)
            return ChargeResult(key, False, reference, code)
        # the attempt's own draw: the other half of the digest that names the charge
        u = int.from_bytes(digest[8:], "big") / 2**64
        if u < self.soft_decline_rate:
            return ChargeResult(key, False, reference, _pick(u / self.soft_decline_rate, SOFT_DECLINE_SHARES))
        return ChargeResult(key, True, reference)

    def charge_many(self, requests: Sequence[ChargeRequest]) -> list[ChargeResult]:
        return [self.decide(request) for request in requests]

    def refund(self, request: RefundRequest) -> RefundResult:
        digest = hashlib.blake2b(f"{self.seed}:{request.idempotency_key}".encode(), digest_size=8)
        return RefundResult(request.idempotency_key, True, f"sim_re_{digest.hexdigest()}")


class ScriptedGateway:
    """A gateway that answers from a script, for dated stories in tests and demos.

    Each new charge takes the next outcome from the queue (a decline code, or ``None`` for a
    success); when the queue is empty charges succeed, except on expired cards. Answers are
    remembered by idempotency key, as a real acquirer does.
    """

    def __init__(self, outcomes: Sequence[DeclineCode | None] = ()) -> None:
        self._queue = list(outcomes)
        self._seen: dict[str, ChargeResult] = {}
        self.requests: list[ChargeRequest] = []
        self.refund_requests: list[RefundRequest] = []

    def push(self, *outcomes: DeclineCode | None) -> None:
        self._queue.extend(outcomes)

    def charge_many(self, requests: Sequence[ChargeRequest]) -> list[ChargeResult]:
        results = []
        for request in requests:
            if request.idempotency_key in self._seen:
                results.append(self._seen[request.idempotency_key])
                continue
            self.requests.append(request)
            code = self._queue.pop(0) if self._queue else None
            if code is None and request.payment_method.expires_before(request.attempted_at):
                code = DeclineCode.EXPIRED_CARD
            result = ChargeResult(
                request.idempotency_key, code is None, f"scripted_{len(self.requests)}", code
            )
            self._seen[request.idempotency_key] = result
            results.append(result)
        return results

    def refund(self, request: RefundRequest) -> RefundResult:
        self.refund_requests.append(request)
        return RefundResult(request.idempotency_key, True, f"scripted_re_{len(self.refund_requests)}")
