"""The simulated gateway's declines, FX with effective dates, and the clock helpers."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from billing_core.clock import FrozenClock, parse_instant, utc
from billing_core.customers import CardBrand, PaymentMethod
from billing_core.errors import InvalidInput
from billing_core.fx import FxRate, FxTable
from billing_core.money import Money
from billing_core.payments import (
    ChargeRequest,
    DeclineCode,
    DeclineType,
    ScriptedGateway,
    SimulatedGateway,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def card(n: int = 1, *, exp_year: int = 2030, exp_month: int = 12) -> PaymentMethod:
    return PaymentMethod(n, n, CardBrand("visa"), "424242", "4242", exp_month, exp_year, f"fp{n}")


def request(key: str, pm: PaymentMethod | None = None, at: datetime = NOW) -> ChargeRequest:
    return ChargeRequest(key, 1, pm or card(), 10_00, "USD", at)


def test_decline_codes_are_classified_as_specified() -> None:
    soft = {c for c in DeclineCode if c.decline_type is DeclineType.SOFT}
    hard = {c for c in DeclineCode if c.decline_type is DeclineType.HARD}
    new_card = {c for c in DeclineCode if c.decline_type is DeclineType.NEEDS_NEW_CARD}
    assert soft == {"insufficient_funds", "processing_error", "try_again_later"}
    assert hard == {"stolen_card", "lost_card", "fraudulent", "do_not_honor"}
    assert new_card == {"expired_card"}
    assert all(c.retryable for c in soft)
    assert not any(c.retryable for c in hard | new_card)


def test_simulated_gateway_is_deterministic() -> None:
    requests = [request(f"inv_{i}:1", card(i)) for i in range(2000)]
    first = SimulatedGateway(7).charge_many(requests)
    again = SimulatedGateway(7).charge_many(requests)
    other = SimulatedGateway(8).charge_many(requests)
    assert first == again
    assert first != other


def test_simulated_declines_have_realistic_shares() -> None:
    gateway = SimulatedGateway(3)
    results = gateway.charge_many([request(f"k{i}", card(i)) for i in range(40_000)])
    codes = Counter(r.decline_code for r in results if not r.succeeded)
    declined = sum(codes.values()) / len(results)
    assert 0.05 < declined < 0.10  # card-not-present recurring declines run at a few percent
    soft = sum(n for c, n in codes.items() if c.decline_type is DeclineType.SOFT)
    hard = sum(n for c, n in codes.items() if c.decline_type is DeclineType.HARD)
    assert soft > 2 * hard > 0
    assert codes[DeclineCode.INSUFFICIENT_FUNDS] == max(codes.values())


def test_hard_declined_cards_stay_declined_and_expired_cards_say_so() -> None:
    gateway = SimulatedGateway(3)
    blocked = next(
        pm
        for pm in (card(i) for i in range(10_000))
        if gateway.decide(request("probe", pm)).decline_type is DeclineType.HARD
    )
    assert all(not gateway.decide(request(f"retry{i}", blocked)).succeeded for i in range(20))
    expired = card(1, exp_year=2026, exp_month=2)
    assert gateway.decide(request("x", expired)).decline_code is DeclineCode.EXPIRED_CARD
    # valid through the last day of the expiry month
    assert card(1, exp_year=2026, exp_month=3).expires_before(NOW) is False


def test_scripted_gateway_answers_in_order_and_remembers_keys() -> None:
    gateway = ScriptedGateway([DeclineCode.INSUFFICIENT_FUNDS, None])
    first = gateway.charge_many([request("a"), request("b")])
    assert [r.decline_code for r in first] == [DeclineCode.INSUFFICIENT_FUNDS, None]
    assert gateway.charge_many([request("a")]) == [first[0]]  # same key, same answer
    assert len(gateway.requests) == 2


def test_fx_rates_take_effect_on_their_date() -> None:
    table = FxTable(
        [
            FxRate("EUR", "USD", Decimal("1.10"), datetime(2026, 1, 1, tzinfo=UTC)),
            FxRate("EUR", "USD", Decimal("1.20"), datetime(2026, 2, 1, tzinfo=UTC)),
            FxRate("USD", "JPY", Decimal("150"), datetime(2026, 1, 1, tzinfo=UTC)),
        ]
    )
    jan, feb = datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    assert table.convert(Money.of(100_00, "EUR"), "USD", jan) == Money.of(110_00, "USD")
    assert table.convert(Money.of(100_00, "EUR"), "USD", feb) == Money.of(120_00, "USD")
    assert table.convert(Money.of(100_00, "USD"), "JPY", jan) == Money.of(15_000, "JPY")
    assert table.convert(Money.of(15_000, "JPY"), "USD", jan) == Money.of(100_00, "USD")  # the inverse
    with pytest.raises(InvalidInput) as info:
        table.convert(Money.of(1_00, "EUR"), "USD", datetime(2025, 12, 31, tzinfo=UTC))
    assert info.value.field == "currency"
    assert info.value.got == "EUR"


def test_clock_helpers_refuse_naive_and_ambiguous_instants() -> None:
    with pytest.raises(InvalidInput) as info:
        utc(datetime(2026, 1, 1), "start_at")  # noqa: DTZ001 - naive on purpose
    assert info.value.field == "start_at"
    assert utc(datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))), "x") == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    assert parse_instant("2026-03-01", "as_of") == NOW
    with pytest.raises(InvalidInput):
        parse_instant("2026-03-01T10:00:00", "as_of")
    clock = FrozenClock(NOW)
    assert clock.advance(timedelta(days=1)) == NOW + timedelta(days=1)
    assert clock.now() == NOW + timedelta(days=1)
