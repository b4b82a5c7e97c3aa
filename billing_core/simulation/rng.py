"""Common random numbers: counter-based uniforms keyed by stable identities.

Every random number in the world is a pure function of ``(seed, stream, keys...)``: the keys are
integers (or integer arrays, broadcast together) that name *what* the number is for, never *when*
it was asked for. The same keys give the same number in any order, in any batch shape, in any
process. That is what lets two dunning policies face the same world: a customer whose card would
have been declined on attempt 2 of period 5 is declined on attempt 2 of period 5 under both
policies, whatever else either policy did first. Key draws by the world's stable identities
(customer key, billing period index, attempt number, reminder number, day), never by database ids
or call order, which a policy could shift.

The generator is SplitMix64's finalizer (Steele, Lea and Flood, "Fast splittable pseudorandom
number generators", OOPSLA 2014) chained over the keys on ``uint64`` numpy arrays::

    h = mix(stream_key(seed, stream))
    h = mix(h ^ mix(key_i))        for each key, in order

``stream_key`` hashes the stream's name with BLAKE2b, so streams are independent and adding a new
stream never moves the numbers of another. A uniform takes the top 53 bits of ``h`` and is
strictly inside (0, 1), so ``log(u)`` and inverse distribution functions are always finite.

Distributions are drawn by inversion (one uniform per number), which keeps draws monotone in their
uniform: a higher probability of success with the same uniform never turns a success into a
failure. That makes comparisons between policies as tight as they can be.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from billing_core.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
UIntArray = npt.NDArray[np.uint64]

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / float(2**53)


def _mix(z: UIntArray) -> UIntArray:
    """SplitMix64: add the golden gamma, then the finalizer (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + _GAMMA
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return np.asarray(z ^ (z >> _S31), dtype=np.uint64)


@lru_cache(maxsize=4096)
def stream_key(seed: int, stream: str) -> int:
    """A 64-bit key for ``(seed, stream)``; stable across processes and Python versions."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInput("seed", "an integer", seed)
    if not isinstance(stream, str) or not stream:
        raise InvalidInput("stream", "a non-empty stream name", stream)
    digest = hashlib.blake2b(f"{seed}\x1f{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _as_key(value: npt.ArrayLike, position: int) -> UIntArray:
    array = np.asarray(value)
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.uint64)
    if kind == "i":
        return array.astype(np.int64).astype(np.uint64)  # two's complement: -1 is a key like any other
    if kind == "u":
        return array.astype(np.uint64)
    raise InvalidInput(f"keys[{position}]", "integers or an integer array", f"dtype {array.dtype}")


def hash_keys(seed: int, stream: str, *keys: npt.ArrayLike) -> UIntArray:
    """64-bit hashes of ``keys`` (broadcast together) in ``stream``."""
    arrays = [_as_key(key, i) for i, key in enumerate(keys)]
    shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
    h = _mix(np.full(shape, stream_key(seed, stream), dtype=np.uint64))
    for array in arrays:
        h = _mix(h ^ _mix(array))
    return h


def uniforms(seed: int, stream: str, *keys: npt.ArrayLike) -> FloatArray:
    """Uniforms strictly inside (0, 1), one per broadcast element of ``keys``."""
    h = hash_keys(seed, stream, *keys)
    return np.asarray(((h >> _S11).astype(np.float64) + 0.5) * _TO_UNIT, dtype=np.float64)


# Acklam's rational approximation of the standard normal quantile (relative error < 1.2e-9).
_A = (
    -39.69683028665376,
    220.9460984245205,
    -275.9285104469687,
    138.3577518672690,
    -30.66479806614716,
    2.506628277459239,
)
_B = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572)
_C = (
    -0.007784894002430293,
    -0.3223964580411365,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
)
_D = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
_P_LOW = 0.02425


def normal_quantile(u: FloatArray) -> FloatArray:
    """The standard normal quantile of ``u`` in (0, 1), vectorized."""
    u = np.asarray(u, dtype=np.float64)
    q = u - 0.5
    r = q * q
    central = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
    central /= ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0
    tail_u = np.minimum(u, 1.0 - u)
    t = np.sqrt(-2.0 * np.log(np.clip(tail_u, 1e-300, 0.5)))
    tail = (((((_C[0] * t + _C[1]) * t + _C[2]) * t + _C[3]) * t + _C[4]) * t + _C[5]) / (
        (((_D[0] * t + _D[1]) * t + _D[2]) * t + _D[3]) * t + 1.0
    )
    tail = np.where(u < 0.5, tail, -tail)
    return np.asarray(np.where(tail_u < _P_LOW, tail, central), dtype=np.float64)


def _log_factorials(kmax: int) -> FloatArray:
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, kmax + 1, dtype=np.float64)))])


def _poisson_search(u: FloatArray, lam: FloatArray) -> IntArray:
    """Poisson quantiles of ``u`` for rates ``lam`` (one rate, or one per element of ``u``)."""
    kmax = int(np.max(lam) + 12.0 * np.sqrt(np.max(lam)) + 20.0)
    k = np.arange(kmax + 1, dtype=np.float64)
    log_lam = np.log(np.maximum(lam, 1e-300))[:, None]  # a rate of 0 puts all mass on 0
    cdf = np.cumsum(np.exp(k[None, :] * log_lam - lam[:, None] - _log_factorials(kmax)[None, :]), axis=1)
    if len(lam) == 1:
        return np.asarray(np.minimum(np.searchsorted(cdf[0], u, side="left"), kmax), dtype=np.int64)
    return np.asarray(np.minimum((cdf < u[:, None]).sum(axis=1), kmax), dtype=np.int64)


def poisson_quantile(u: FloatArray, lam: npt.ArrayLike) -> IntArray:
    """The Poisson(``lam``) quantile of ``u`` (exact up to a mean of 200, normal beyond)."""
    u = np.asarray(u, dtype=np.float64)
    lam_arr = np.broadcast_to(np.asarray(lam, dtype=np.float64), u.shape)
    if np.any(lam_arr < 0) or not np.all(np.isfinite(lam_arr)):
        raise InvalidInput("lam", "finite non-negative rates", lam)
    out = np.zeros(u.shape, dtype=np.int64)
    small = lam_arr <= 200.0
    if np.any(small):
        us, ls = u[small], lam_arr[small]
        distinct = np.unique(ls)
        if len(distinct) <= 64:  # one cumulative distribution per rate, searched
            drawn = np.zeros(us.shape, dtype=np.int64)
            for rate in distinct:
                mask = ls == rate
                drawn[mask] = _poisson_search(us[mask], np.array([rate]))
            out[small] = drawn
        else:
            out[small] = _poisson_search(us, ls)
    if np.any(~small):
        ul, ll = u[~small], lam_arr[~small]
        z = normal_quantile(ul)
        out[~small] = np.maximum(0, np.floor(ll + np.sqrt(ll) * z + 0.5)).astype(np.int64)
    return out


def categorical_quantile(u: FloatArray, probabilities: npt.ArrayLike) -> IntArray:
    """Index of the category ``u`` falls in; ``probabilities`` has the categories on its last axis.

    Rows need not sum to one (they are normalized); they broadcast against ``u``.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 0 or np.any(p < 0):
        raise InvalidInput("probabilities", "non-negative weights with categories on the last axis", p)
    total = p.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):
        raise InvalidInput("probabilities", "weights with a positive sum in every row", p)
    cdf = np.cumsum(p / total, axis=-1)
    u = np.asarray(u, dtype=np.float64)
    index = np.asarray((u[..., None] >= cdf).sum(axis=-1), dtype=np.int64)
    return np.asarray(np.minimum(index, p.shape[-1] - 1), dtype=np.int64)


@dataclass(frozen=True, slots=True)
class RandomSource:
    """The world's random numbers for one seed: every method is keyed, none has state.

    ``stream`` names what the numbers are for (``"network.outcome"``); ``keys`` are the stable
    identities they belong to (customer keys, period index, attempt number...), broadcast together.
    """

    seed: int

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InvalidInput("seed", "an integer", self.seed)

    def hashes(self, stream: str, *keys: npt.ArrayLike) -> UIntArray:
        return hash_keys(self.seed, stream, *keys)

    def uniforms(self, stream: str, *keys: npt.ArrayLike) -> FloatArray:
        return uniforms(self.seed, stream, *keys)

    def normals(self, stream: str, *keys: npt.ArrayLike) -> FloatArray:
        return normal_quantile(self.uniforms(stream, *keys))

    def exponentials(self, stream: str, *keys: npt.ArrayLike) -> FloatArray:
        """Standard exponentials (mean 1)."""
        return np.asarray(-np.log(self.uniforms(stream, *keys)), dtype=np.float64)

    def bernoulli(self, p: npt.ArrayLike, stream: str, *keys: npt.ArrayLike) -> BoolArray:
        u = self.uniforms(stream, *keys)
        return np.asarray(u < np.asarray(p, dtype=np.float64), dtype=np.bool_)

    def integers(
        self, low: npt.ArrayLike, high: npt.ArrayLike, stream: str, *keys: npt.ArrayLike
    ) -> IntArray:
        """Integers in ``[low, high)``."""
        lo = np.asarray(low, dtype=np.int64)
        span = np.asarray(high, dtype=np.int64) - lo
        if np.any(span <= 0):
            raise InvalidInput("high", "greater than low", high)
        u = self.uniforms(stream, *keys)
        return np.asarray(lo + np.minimum(np.floor(u * span), span - 1).astype(np.int64), dtype=np.int64)

    def choice(self, probabilities: npt.ArrayLike, stream: str, *keys: npt.ArrayLike) -> IntArray:
        return categorical_quantile(self.uniforms(stream, *keys), probabilities)

    def poisson(self, lam: npt.ArrayLike, stream: str, *keys: npt.ArrayLike) -> IntArray:
        return poisson_quantile(self.uniforms(stream, *keys), lam)

    def python_seed(self, stream: str, *keys: int) -> int:
        """One 64-bit integer for seeding a :class:`random.Random` (text generation, per message)."""
        return int(self.hashes(stream, *keys))


def sigmoid(x: npt.ArrayLike) -> FloatArray:
    x = np.asarray(x, dtype=np.float64)
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)), dtype=np.float64)


def logit(p: npt.ArrayLike) -> FloatArray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    return np.asarray(np.log(p) - np.log1p(-p), dtype=np.float64)
