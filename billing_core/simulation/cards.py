"""Payment methods and digital identities: cards, BINs, devices, IP addresses, email domains.

**BINs.** Each brand has a pool of issuer BINs (``bins_per_brand``) drawn once from the brand's
published prefix ranges (Visa 4; Mastercard 51-55 and 2221-2720; American Express 34 and 37;
Discover 6011, 644-649 and 65; JCB 3528-3589; UnionPay 62). Issuers are unequal: BIN popularity
follows a Zipf law, so some BINs are shared by many customers, as in a real book.

**Expiry.** A card on file at signup has between 1 and ``card_lifetime_months`` months left
(uniform): about one card in 36 expires each month. A replacement card runs the full lifetime.
``card_updater_share`` of expiring cards are replaced silently by the networks' account updaters
(``auto_update``); the runner swaps those for a new version on their expiry without the customer.

**Death.** A card can be lost, stolen or closed before it expires (``card_loss_rate_per_year``):
from its ``death_day`` on, every attempt fails with ``death_code`` (lost_card, stolen_card or
do_not_honor). A stolen card used by a fraudster dies when its owner notices, with the chargeback.

**Identities.** Device ids and the digits of IP addresses are hashes of the customer's key, so
they are stable and unique to the customer except where fraud shares them (card testing).
IP addresses are synthetic: the first octet comes from a short per-country list, the rest is
random. Email domains are consumer (per country), business (a company domain) or disposable.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from billing_core.simulation import timeline
from billing_core.simulation.network import DO_NOT_HONOR, LOST_CARD, NEVER, NO_DECLINE, STOLEN_CARD
from billing_core.simulation.params import CARD_BRANDS, WorldParams
from billing_core.simulation.rng import BoolArray, IntArray, RandomSource

BRAND_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "visa": ((400000, 499999),),
    "mastercard": ((510000, 559999), (222100, 272099)),
    "amex": ((340000, 349999), (370000, 379999)),
    "discover": ((601100, 601199), (644000, 659999)),
    "jcb": ((352800, 358999),),
    "unionpay": ((620000, 629999),),
}
LOSS_CODES = np.array([LOST_CARD, STOLEN_CARD, DO_NOT_HONOR])
IP_FIRST_OCTETS: dict[str, tuple[int, ...]] = {
    "US": (23, 24, 50, 64, 68, 71, 73, 98, 104, 174),
    "DE": (46, 77, 79, 84, 87, 91, 93, 217),
    "FR": (78, 80, 82, 86, 88, 90, 92),
    "ES": (77, 79, 81, 83, 85, 88, 95),
    "GB": (2, 31, 51, 62, 81, 86, 90, 109),
    "JP": (1, 14, 27, 36, 42, 49, 60, 101, 106, 126),
    "KW": (37, 62, 78, 94, 185),
}
COUNTRIES: tuple[str, ...] = tuple(IP_FIRST_OCTETS)
CONSUMER_DOMAINS: dict[str, tuple[tuple[str, float], ...]] = {
    "default": (
        ("gmail.com", 0.55),
        ("outlook.com", 0.18),
        ("yahoo.com", 0.12),
        ("icloud.com", 0.10),
        ("proton.me", 0.05),
    ),
    "DE": (
        ("gmail.com", 0.35),
        ("web.de", 0.22),
        ("gmx.de", 0.20),
        ("outlook.de", 0.10),
        ("t-online.de", 0.13),
    ),
    "FR": (
        ("gmail.com", 0.45),
        ("orange.fr", 0.20),
        ("free.fr", 0.12),
        ("outlook.fr", 0.13),
        ("laposte.net", 0.10),
    ),
    "ES": (("gmail.com", 0.60), ("hotmail.es", 0.20), ("yahoo.es", 0.10), ("outlook.es", 0.10)),
    "GB": (
        ("gmail.com", 0.45),
        ("outlook.com", 0.15),
        ("btinternet.com", 0.12),
        ("yahoo.co.uk", 0.13),
        ("icloud.com", 0.15),
    ),
    "JP": (("gmail.com", 0.40), ("yahoo.co.jp", 0.30), ("docomo.ne.jp", 0.15), ("icloud.com", 0.15)),
    "KW": (("gmail.com", 0.60), ("hotmail.com", 0.25), ("outlook.com", 0.15)),
}
BUSINESS_TLDS = {
    "US": "com",
    "DE": "de",
    "FR": "fr",
    "ES": "es",
    "GB": "co.uk",
    "JP": "co.jp",
    "KW": "com.kw",
}
BUSINESS_WORDS = (
    "acme", "northwind", "bluepeak", "lumen", "cobalt", "harbor", "nimbus", "vertex", "quarry", "alder",
    "kestrel", "meridian", "oakline", "pinnacle", "sable", "tandem", "umbra", "willow", "zephyr", "brightway",
)  # fmt: skip
DISPOSABLE_DOMAINS = (
    "mailinator.com",
    "guerrillamail.com",
    "10minutemail.com",
    "yopmail.com",
    "trashmail.de",
)
EMAIL_CONSUMER, EMAIL_BUSINESS, EMAIL_DISPOSABLE = range(3)


@lru_cache(maxsize=16)
def bin_pool(brand: int, size: int) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The BINs of brand ``brand`` (index into CARD_BRANDS) and their popularity weights."""
    ranges = BRAND_RANGES[CARD_BRANDS[brand]]
    widths = np.array([hi - lo + 1 for lo, hi in ranges], dtype=np.float64)
    source = RandomSource(7_919)  # a world constant: BINs do not change with a run's seed
    which = source.choice(widths, f"bins.{brand}.range", np.arange(size))
    offset = np.floor(source.uniforms(f"bins.{brand}.offset", np.arange(size)) * widths[which]).astype(
        np.int64
    )
    lows = np.array([lo for lo, _ in ranges], dtype=np.int64)
    bins = tuple(f"{v:06d}" for v in (lows[which] + offset).tolist())
    weights = tuple((1.0 / np.arange(1, size + 1) ** 0.9).tolist())
    return bins, weights


@dataclass(frozen=True, slots=True)
class Cards:
    """Cards of a batch of customers (one card each)."""

    customer_key: IntArray
    card_version: IntArray  # 0 for the card at signup, then 1, 2... for replacements
    brand: npt.NDArray[np.str_]
    bin: npt.NDArray[np.str_]
    last4: npt.NDArray[np.str_]
    exp_month: IntArray
    exp_year: IntArray
    fingerprint: npt.NDArray[np.str_]
    death_day: IntArray  # from this day on every attempt fails with death_code (NEVER if it does not)
    death_code: IntArray  # network decline code index, NO_DECLINE if the card never dies
    auto_update: BoolArray  # replaced by an account updater at expiry
    stolen: BoolArray  # the card belongs to someone else (fraud)

    def __len__(self) -> int:
        return len(self.customer_key)

    def take(self, index: npt.ArrayLike) -> Cards:
        return Cards(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Cards]) -> Cards:
        return Cards(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Cards)})


def expires_before(
    start: date, day: npt.ArrayLike, exp_month: npt.ArrayLike, exp_year: npt.ArrayLike
) -> BoolArray:
    """Whether a card is past its expiry on ``day`` (valid through its expiry month)."""
    cal = timeline.days(start, day)
    now = cal.year * 12 + (cal.month - 1)
    last_valid = np.asarray(exp_year, dtype=np.int64) * 12 + (np.asarray(exp_month, dtype=np.int64) - 1)
    return np.asarray(now > last_valid, dtype=np.bool_)


def draw_cards(
    params: WorldParams,
    rng: RandomSource,
    *,
    customer_key: npt.ArrayLike,
    card_version: npt.ArrayLike,
    day: npt.ArrayLike,
    currency_index: npt.ArrayLike,
    previous_bin: npt.ArrayLike | None = None,
) -> Cards:
    """A card per customer, issued (version 0: on file) on ``day``.

    A replacement (version >= 1) keeps the previous card's BIN (same issuer) with probability 0.7
    when ``previous_bin`` is given, and runs the full lifetime.
    """
    key = np.asarray(customer_key, dtype=np.int64)
    version = np.broadcast_to(np.asarray(card_version, dtype=np.int64), key.shape)
    d = np.broadcast_to(np.asarray(day, dtype=np.int64), key.shape)
    market = np.broadcast_to(np.asarray(currency_index, dtype=np.int64), key.shape)
    shares = np.asarray(params.card_brand_shares, dtype=np.float64)[market]
    brand = rng.choice(shares, "card.brand", key, version)
    bins = np.empty(key.shape, dtype="<U6")
    for b in np.unique(brand):
        mask = brand == b
        pool, weights = bin_pool(int(b), params.bins_per_brand)
        pick = rng.choice(weights, "card.bin", key[mask], version[mask])
        bins[mask] = np.asarray(pool)[pick]
    brand_names = np.asarray(CARD_BRANDS)[brand]
    if previous_bin is not None:
        keep = (version >= 1) & (rng.uniforms("card.same_issuer", key, version) < 0.7)
        prev = np.broadcast_to(np.asarray(previous_bin, dtype="<U6"), key.shape)
        bins = np.where(keep, prev, bins)
        brand_names = np.where(keep, _brand_of_bin(prev), brand_names)
    last4 = rng.integers(0, 10_000, "card.last4", key, version)
    lifetime = params.card_lifetime_months
    months_left = np.where(
        version == 0, rng.integers(1, lifetime + 1, "card.months_left", key, version), lifetime
    )
    cal = timeline.days(params.start, d)
    expiry = cal.year * 12 + (cal.month - 1) + months_left
    loss_days = (
        rng.exponentials("card.loss", key, version) * 365.0 / max(params.card_loss_rate_per_year, 1e-12)
    )
    death_day = np.where(loss_days < 1e9, d + np.ceil(loss_days).astype(np.int64), NEVER)
    fingerprints = rng.hashes("card.fingerprint", key, version)
    return Cards(
        customer_key=key,
        card_version=version.copy(),
        brand=brand_names.astype("<U10"),
        bin=bins,
        last4=np.asarray([f"{v:04d}" for v in last4.tolist()], dtype="<U4"),
        exp_month=(expiry % 12 + 1).astype(np.int64),
        exp_year=(expiry // 12).astype(np.int64),
        fingerprint=np.asarray([f"fp_{h:016x}" for h in fingerprints.tolist()], dtype="<U19"),
        death_day=death_day.astype(np.int64),
        death_code=LOSS_CODES[rng.choice(params.card_loss_code_shares, "card.loss_code", key, version)],
        auto_update=rng.uniforms("card.updater", key, version) < params.card_updater_share,
        stolen=np.zeros(key.shape, dtype=np.bool_),
    )


def _brand_of_bin(bins: npt.NDArray[np.str_]) -> npt.NDArray[np.str_]:
    numbers = np.asarray([int(b) for b in bins.tolist()], dtype=np.int64).reshape(bins.shape)
    out = np.full(bins.shape, "visa", dtype="<U10")
    for name, ranges in BRAND_RANGES.items():
        for lo, hi in ranges:
            out[(numbers >= lo) & (numbers <= hi)] = name
    return out


def device_ids(rng: RandomSource, stream: str, *keys: npt.ArrayLike) -> npt.NDArray[np.str_]:
    return np.asarray([f"dev_{h:016x}" for h in np.ravel(rng.hashes(stream, *keys)).tolist()], dtype="<U20")


def ip_addresses(
    rng: RandomSource, country: npt.NDArray[np.str_], stream: str, key: IntArray
) -> npt.NDArray[np.str_]:
    """Synthetic IPv4 addresses in ``country`` (first octet from its list, the rest random)."""
    octets = rng.integers(0, 256, stream + ".octets", key[:, None], np.arange(1, 4)[None, :])
    out = np.empty(key.shape, dtype="<U15")
    for c in np.unique(country):
        mask = country == c
        firsts = np.asarray(IP_FIRST_OCTETS.get(str(c), IP_FIRST_OCTETS["US"]))
        first = firsts[rng.integers(0, len(firsts), stream + ".first", key[mask])]
        rest = octets[mask]
        out[mask] = [f"{a}.{b}.{c_}.{d}" for a, (b, c_, d) in zip(first.tolist(), rest.tolist(), strict=True)]
    return out


def email_domains(
    params: WorldParams,
    rng: RandomSource,
    *,
    customer_key: IntArray,
    country: npt.NDArray[np.str_],
    channel: IntArray,
) -> tuple[npt.NDArray[np.str_], IntArray]:
    """Email domains and their kind (EMAIL_CONSUMER, EMAIL_BUSINESS, EMAIL_DISPOSABLE)."""
    business_share = np.asarray(params.business_email_share_by_channel)[channel] * (
        1 - params.disposable_email_share
    )
    u = rng.uniforms("email.kind", customer_key)
    kind = np.where(
        u < params.disposable_email_share,
        EMAIL_DISPOSABLE,
        np.where(u < params.disposable_email_share + business_share, EMAIL_BUSINESS, EMAIL_CONSUMER),
    ).astype(np.int64)
    out = np.empty(customer_key.shape, dtype="<U32")
    disposable = kind == EMAIL_DISPOSABLE
    out[disposable] = np.asarray(DISPOSABLE_DOMAINS)[
        rng.integers(0, len(DISPOSABLE_DOMAINS), "email.disposable", customer_key[disposable])
    ]
    business = kind == EMAIL_BUSINESS
    if np.any(business):
        keys = customer_key[business]
        word = np.asarray(BUSINESS_WORDS)[rng.integers(0, len(BUSINESS_WORDS), "email.word", keys)]
        number = rng.integers(1, 1000, "email.number", keys)
        tld = [BUSINESS_TLDS.get(str(c), "com") for c in country[business].tolist()]
        out[business] = [f"{w}{n}.{t}" for w, n, t in zip(word.tolist(), number.tolist(), tld, strict=True)]
    consumer = kind == EMAIL_CONSUMER
    for c in np.unique(country[consumer]):
        mask = consumer & (country == c)
        options = CONSUMER_DOMAINS.get(str(c), CONSUMER_DOMAINS["default"])
        pick = rng.choice([w for _, w in options], "email.consumer", customer_key[mask])
        out[mask] = np.asarray([name for name, _ in options])[pick]
    return out, kind


def no_death(shape: tuple[int, ...]) -> tuple[IntArray, IntArray]:
    """Death day and code arrays for cards that never die."""
    return np.full(shape, NEVER, dtype=np.int64), np.full(shape, NO_DECLINE, dtype=np.int64)
