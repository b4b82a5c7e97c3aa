"""Dispute messages: categories, languages, typos, formats, and that words alone do not give the
category away."""

from __future__ import annotations

import csv
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from billing_core.disputes import DisputeCategory
from billing_core.errors import InvalidInput
from billing_core.simulation import disputes_text as dt
from billing_core.simulation.params import WorldParams
from billing_core.simulation.rng import RandomSource

PARAMS = WorldParams()
N = 6_000
BANKING77 = Path(__file__).resolve().parents[2] / "datasets" / "banking77" / "train.csv"


@pytest.fixture(scope="module")
def messages() -> dt.DisputeMessages:
    rng = RandomSource(17)
    keys = np.arange(N)
    category = rng.choice(PARAMS.dispute_category_shares, "test.category", keys)
    customer_language = np.asarray(["en", "de", "es", "fr", "ja"])[
        rng.choice([0.6, 0.1, 0.1, 0.1, 0.1], "test.lang", keys)
    ]
    language = dt.message_language(PARAMS, rng, dispute_key=keys, customer_language=customer_language)
    currency = np.asarray(["USD", "EUR", "GBP", "JPY", "KWD"])[
        rng.choice([0.5, 0.25, 0.1, 0.1, 0.05], "test.cur", keys)
    ]
    amount = np.where(currency == "JPY", 7_350, np.where(currency == "KWD", 14_700, 49_00))
    plan = np.asarray(["basic", "pro", "business", "pro_annual", "seats"])[
        rng.integers(0, 5, "test.plan", keys)
    ]
    return dt.generate_messages(
        PARAMS,
        rng,
        dispute_key=keys,
        category=category,
        language=language,
        currency=currency,
        amount_minor=amount,
        day=45,
        plan=plan,
        invoice_number=[f"INV-{k:06d}" for k in keys],
    )


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[^\W\d_]+", text.lower()))


def test_every_category_in_every_language(messages: dt.DisputeMessages) -> None:
    pairs = set(zip(messages.category.tolist(), messages.language.tolist(), strict=True))
    assert pairs == {(c, lang) for c in range(len(DisputeCategory)) for lang in dt.MESSAGE_LANGUAGES}
    assert set(messages.category_name.tolist()) == {c.value for c in DisputeCategory}


def test_languages_come_in_the_expected_shares(messages: dt.DisputeMessages) -> None:
    shares = Counter(messages.language.tolist())
    # 10% of customers write German, 10% Spanish; native_language_share of them in their language
    expected = 0.1 * PARAMS.native_language_share
    for lang in ("de", "es"):
        assert shares[lang] / N == pytest.approx(expected, abs=0.015)
    german = [t for t, lang in zip(messages.text, messages.language.tolist(), strict=True) if lang == "de"]
    assert sum(bool(re.search(r"\b(ich|Sie|und|die|der)\b", t, re.IGNORECASE)) for t in german) > 0.9 * len(
        german
    )


def test_typos_at_the_configured_rate(messages: dt.DisputeMessages) -> None:
    rate = messages.typos.sum() / messages.eligible_words.sum()
    assert rate == pytest.approx(PARAMS.typo_rate, abs=0.004)
    clean = WorldParams(typo_rate=0.0)
    same = dt.generate_messages(
        clean,
        RandomSource(17),
        dispute_key=np.arange(50),
        category=0,
        language="en",
        currency="USD",
        amount_minor=100,
        day=1,
    )
    assert same.typos.sum() == 0


def test_add_typos_swaps_or_drops_characters() -> None:
    text, typos, eligible = dt.add_typos("please refund the duplicate payment", 1.0, random.Random(1))
    assert typos == eligible == 4  # please, refund, duplicate, payment ("the" is too short)
    for original, changed in zip(
        ["please", "refund", "the", "duplicate", "payment"], text.split(), strict=True
    ):
        assert len(changed) in (len(original), len(original) - 1)
        assert sorted(changed) == sorted(original) or len(changed) == len(original) - 1


def test_lengths_range_from_one_line_to_a_paragraph(messages: dt.DisputeMessages) -> None:
    words = np.array([len(t.split()) for t in messages.text])
    assert words.min() <= 6
    assert words.max() >= 45
    assert np.mean(words <= 15) > 0.2
    assert np.mean(words >= 30) > 0.1


def test_amounts_are_written_in_the_invoice_currency() -> None:
    rnd = random.Random(3)
    formatted = {dt.format_amount(7_350, "JPY", "en", rnd) for _ in range(30)}
    assert formatted <= {"¥7,350", "7,350 JPY", "JPY 7,350"}
    assert {dt.format_amount(14_700, "KWD", "en", rnd) for _ in range(30)} <= {"14.700 KWD", "KWD 14.700"}
    assert {dt.format_amount(123_456, "EUR", "de", rnd) for _ in range(30)} <= {"1.234,56 €", "1.234,56 EUR"}


def test_messages_are_deterministic_per_dispute() -> None:
    def one(key: int) -> str:
        return dt.generate_messages(
            PARAMS,
            RandomSource(2),
            dispute_key=[key],
            category=3,
            language="es",
            currency="EUR",
            amount_minor=45_00,
            day=10,
        ).text[0]

    assert one(5) == one(5)
    assert len({one(k) for k in range(20)}) > 15


def test_no_single_token_identifies_a_category(messages: dt.DisputeMessages) -> None:
    tokens = [_tokens(t) for t in messages.text]
    frequency = Counter(w for ts in tokens for w in ts)
    categories = messages.category
    best = 0.0
    for word, count in frequency.items():
        if count < 0.01 * N:
            continue
        has = np.array([word in ts for ts in tokens])
        for c in range(len(DisputeCategory)):
            precision = float(np.mean(categories[has] == c))
            recall = float(np.mean(has[categories == c]))
            assert not (precision > 0.98 and recall > 0.5), (word, c)
            best = max(best, 2 * precision * recall / (precision + recall + 1e-12))
    assert best < 0.75


def test_categories_are_distinguishable_but_not_trivially(messages: dt.DisputeMessages) -> None:
    """A bag-of-words naive Bayes does far better than chance, and far from perfectly."""
    tokens = [_tokens(t) for t in messages.text]
    vocabulary = {w: i for i, w in enumerate(sorted({w for ts in tokens for w in ts}))}
    x = np.zeros((N, len(vocabulary)))
    for i, ts in enumerate(tokens):
        x[i, [vocabulary[w] for w in ts]] = 1
    train = np.arange(N) < int(0.75 * N)
    y = messages.category
    k = len(DisputeCategory)
    counts = np.stack([x[train & (y == c)].sum(axis=0) + 1 for c in range(k)])
    log_likelihood = np.log(counts / counts.sum(axis=1, keepdims=True))
    prior = np.log(np.bincount(y[train], minlength=k) / train.sum())
    predicted = (x[~train] @ log_likelihood.T + prior).argmax(axis=1)
    accuracy = float(np.mean(predicted == y[~train]))
    assert 0.6 < accuracy < 0.96


def test_bad_categories_and_languages_are_refused() -> None:
    with pytest.raises(InvalidInput) as error:
        dt.generate_messages(
            PARAMS,
            RandomSource(1),
            dispute_key=[1],
            category=9,
            language="en",
            currency="USD",
            amount_minor=1,
            day=1,
        )
    assert error.value.field == "category"
    with pytest.raises(InvalidInput) as error:
        dt.generate_messages(
            PARAMS,
            RandomSource(1),
            dispute_key=[1],
            category=0,
            language="fr",
            currency="USD",
            amount_minor=1,
            day=1,
        )
    assert error.value.field == "language"


def test_the_bank_shares_no_wording_with_banking77() -> None:
    """Banking77 is the independent evaluation of the classifier: no 6-word run may come from it."""

    def runs(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"[a-z']+", text.lower())
        return {tuple(words[i : i + 6]) for i in range(len(words) - 5)}

    with BANKING77.open(newline="", encoding="utf-8") as handle:
        bank = set().union(*(runs(row["text"]) for row in csv.DictReader(handle)))
    templates = [t for table in (dt.CORE, dt.DETAILS) for texts in table["en"].values() for t in texts]
    templates += [t for t, _ in dt.ASKS["en"]] + list(dt.VAGUE["en"]) + list(dt.OPENERS["en"])
    shared = [t for t in templates if runs(t) & bank]
    assert not shared
