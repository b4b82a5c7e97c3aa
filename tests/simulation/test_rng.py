"""Common random numbers: determinism, order and shape independence, streams, uniformity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from billing_core.errors import InvalidInput
from billing_core.simulation.rng import (
    RandomSource,
    categorical_quantile,
    normal_quantile,
    poisson_quantile,
    uniforms,
)

N = 200_000


def _ks_uniform(u: np.ndarray) -> float:
    """The Kolmogorov-Smirnov distance of ``u`` to the uniform distribution."""
    s = np.sort(u)
    n = len(s)
    grid = np.arange(1, n + 1) / n
    return float(max(np.max(grid - s), np.max(s - (grid - 1 / n))))


def test_same_keys_give_the_same_numbers() -> None:
    customers = np.arange(1_000)
    a = uniforms(7, "retry", customers, 3, 2)
    b = uniforms(7, "retry", customers, 3, 2)
    assert np.array_equal(a, b)


def test_numbers_do_not_depend_on_order_or_batch_shape() -> None:
    customers = np.arange(500)
    whole = uniforms(7, "retry", customers, 4)
    shuffled = np.random.default_rng(0).permutation(customers)
    assert np.array_equal(uniforms(7, "retry", shuffled, 4), whole[shuffled])
    one_by_one = np.array([float(uniforms(7, "retry", int(c), 4)) for c in customers[:20]])
    assert np.array_equal(one_by_one, whole[:20])
    grid = uniforms(7, "retry", customers[:, None], np.arange(3)[None, :])
    assert grid.shape == (500, 3)
    assert np.array_equal(grid[:, 1], uniforms(7, "retry", customers, 1))


def test_seed_stream_and_every_key_matter() -> None:
    keys = np.arange(10_000)
    base = uniforms(1, "a", keys, 0)
    for other in (uniforms(2, "a", keys, 0), uniforms(1, "b", keys, 0), uniforms(1, "a", keys, 1)):
        assert not np.any(base == other)
    # keys are ordered: (1, 2) is not (2, 1)
    assert float(uniforms(1, "a", 1, 2)) != float(uniforms(1, "a", 2, 1))


def test_streams_are_independent() -> None:
    keys = np.arange(N)
    a, b = uniforms(3, "network.outcome", keys), uniforms(3, "network.code", keys)
    assert abs(np.corrcoef(a, b)[0, 1]) < 4 / math.sqrt(N)
    # consecutive keys are uncorrelated too
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 4 / math.sqrt(N)


def test_uniformity_by_kolmogorov_smirnov_and_chi_square() -> None:
    u = uniforms(11, "uniformity", np.arange(N))
    assert np.all((u > 0) & (u < 1))
    assert _ks_uniform(u) < 1.95 / math.sqrt(N)  # 0.1% critical value
    bins = 100
    observed = np.bincount(np.floor(u * bins).astype(int), minlength=bins)
    expected = N / bins
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    # the 0.1% critical value of chi-square with 99 degrees of freedom is about 148.2
    assert chi2 < 148.2


def test_uniformity_holds_for_structured_keys() -> None:
    # a grid of small keys (customers x periods x attempts), the shape the world uses most
    u = uniforms(
        5, "grid", np.arange(200)[:, None, None], np.arange(50)[None, :, None], np.arange(20)[None, None, :]
    )
    assert _ks_uniform(u.ravel()) < 1.95 / math.sqrt(u.size)


def test_negative_and_unsigned_keys_are_accepted_floats_are_not() -> None:
    assert 0 < float(uniforms(1, "a", -1)) < 1
    assert float(uniforms(1, "a", np.uint64(5))) == float(uniforms(1, "a", 5))
    with pytest.raises(InvalidInput) as error:
        uniforms(1, "a", np.array([0.5]))
    assert error.value.field == "keys[0]"
    with pytest.raises(InvalidInput):
        RandomSource(seed=1.5)  # type: ignore[arg-type]


def test_normal_quantile_matches_the_error_function() -> None:
    for p in (1e-6, 0.001, 0.02425, 0.1, 0.5, 0.9, 0.97575, 0.999, 1 - 1e-6):
        z = float(normal_quantile(np.array(p)))
        assert 0.5 * (1 + math.erf(z / math.sqrt(2))) == pytest.approx(p, rel=1e-6, abs=1e-12)
    z = RandomSource(1).normals("z", np.arange(N))
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 1) < 0.01


def test_poisson_and_categorical_draws() -> None:
    u = uniforms(2, "poisson", np.arange(N))
    for lam in (0.0, 0.3, 4.0, 120.0, 5000.0):
        k = poisson_quantile(u, lam)
        assert k.mean() == pytest.approx(lam, abs=max(0.02, 0.01 * lam))
        if lam:
            assert k.var() == pytest.approx(lam, rel=0.05)
    shares = np.array([0.5, 0.2, 0.3])
    picks = categorical_quantile(u, shares)
    assert np.allclose(np.bincount(picks) / N, shares, atol=0.005)
    with pytest.raises(InvalidInput):
        categorical_quantile(u, [0.0, 0.0])


def test_draws_are_monotone_in_their_uniform() -> None:
    rng = RandomSource(4)
    keys = np.arange(10_000)
    low, high = rng.bernoulli(0.2, "b", keys), rng.bernoulli(0.3, "b", keys)
    assert np.all(high[low])  # a higher probability never turns a success into a failure
    assert np.all(rng.integers(0, 10, "i", keys) < 10)
