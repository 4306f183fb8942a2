"""Noise distribution and alias sampler: exact table invariants and chi-square tests on draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from w2v_nce.sampler import AliasSampler, build_alias_table, unigram_power


def _zipf(n: int, s: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def _reconstructed_mass(accept: np.ndarray, alias: np.ndarray) -> np.ndarray:
    """n * P(draw = i) implied by the table: own acceptance plus every bucket aliasing to i."""
    n = len(accept)
    mass = accept.astype(np.float64).copy()
    for j in range(n):
        if alias[j] != j:
            mass[alias[j]] += 1.0 - accept[j]
        else:
            # a bucket aliasing to itself must accept itself always (else the mass is lost)
            assert accept[j] == pytest.approx(1.0, abs=1e-12)
    return mass


def _random_distributions():
    rng = np.random.default_rng(7)
    yield "zipf50", _zipf(50)
    yield "uniform", np.full(17, 1 / 17)
    yield "one-hot", np.eye(9)[4]
    yield "two-point", np.array([0.999999, 0.000001])
    yield "single", np.array([1.0])
    with_zeros = rng.random(30)
    with_zeros[[0, 3, 4, 11, 29]] = 0.0
    yield "with-zeros", with_zeros / with_zeros.sum()
    for i in range(5):
        p = rng.random(int(rng.integers(2, 200))) ** 4
        yield f"random{i}", p / p.sum()


@pytest.mark.parametrize("name,prob", list(_random_distributions()), ids=lambda x: x if isinstance(x, str) else "")
def test_alias_table_reconstructs_every_probability(name, prob):
    accept, alias = build_alias_table(prob)
    n = len(prob)
    assert accept.shape == (n,) and alias.shape == (n,)
    assert ((accept >= 0) & (accept <= 1 + 1e-12)).all()
    assert ((alias >= 0) & (alias < n)).all()
    np.testing.assert_allclose(_reconstructed_mass(accept, alias), prob * n, rtol=0, atol=1e-9)
    # zero-probability words never keep their bucket and are never an alias
    zero = np.flatnonzero(prob == 0)
    assert (accept[zero] == 0).all()
    assert not np.isin(alias[accept < 1], zero).any()


def test_alias_table_docstring_example_by_hand():
    accept, alias = build_alias_table(np.array([0.5, 0.25, 0.25]))
    # bucket masses: 0 keeps 1.0 + receives 0.25 + 0.25 = 1.5 = 3 * 0.5
    assert accept.tolist() == [1.0, 0.75, 0.75]
    assert alias[1] == 0 and alias[2] == 0


def test_alias_sampler_chi_square_zipf(cpu_path):
    prob = _zipf(50)
    sampler = AliasSampler(torch.tensor(prob * 123.0))  # unnormalised weights are fine
    np.testing.assert_allclose(sampler.prob.double().numpy(), prob, rtol=1e-6)
    draws = sampler.sample((200_000,), torch.Generator().manual_seed(12345))
    assert draws.dtype == torch.int64
    counts = np.bincount(draws.numpy(), minlength=50)
    assert len(counts) == 50
    expected = prob * counts.sum()
    assert expected.min() > 5  # chi-square validity
    p_value = stats.chisquare(counts, expected).pvalue
    assert p_value > 1e-3, p_value


def test_alias_sampler_chi_square_detects_a_wrong_distribution(cpu_path):
    """The chi-square check above has power: the same draws against a slightly different
    distribution (a 10% relative change of two words) are rejected."""
    prob = _zipf(50)
    sampler = AliasSampler(prob)
    draws = sampler.sample((200_000,), torch.Generator().manual_seed(12345))
    counts = np.bincount(draws.numpy(), minlength=50)
    wrong = prob.copy()
    wrong[0] *= 0.9
    wrong[1] += prob[0] * 0.1
    assert stats.chisquare(counts, wrong * counts.sum()).pvalue < 1e-6


def test_alias_sampler_never_draws_zero_probability_words(cpu_path):
    weights = np.array([0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0])
    sampler = AliasSampler(weights)
    draws = sampler.sample((400, 500), torch.Generator().manual_seed(3))
    assert draws.shape == (400, 500)
    counts = np.bincount(draws.flatten().numpy(), minlength=8)
    assert counts[weights == 0].sum() == 0
    nz = weights > 0
    expected = weights[nz] / weights.sum() * counts.sum()
    assert stats.chisquare(counts[nz], expected).pvalue > 1e-3


def test_alias_sampler_chi_square_large_vocabulary(cpu_path):
    """A vocabulary-sized table (the kernel's bucket choice uses 32 random bits: no visible bias)."""
    weights = unigram_power(np.sort(np.random.default_rng(0).zipf(1.3, 20_000))[::-1].astype(float))
    draws = AliasSampler(weights).sample((4_000_000,), torch.Generator().manual_seed(1))
    counts = np.bincount(draws.numpy(), minlength=len(weights))
    expected = weights * counts.sum()
    often = expected > 20  # pool the rare words into one cell
    observed = np.append(counts[often], counts[~often].sum())
    assert stats.chisquare(observed, np.append(expected[often], expected[~often].sum())).pvalue > 1e-3


def test_alias_sampler_log_prob_and_len():
    weights = np.array([1.0, 2.0, 5.0])
    sampler = AliasSampler(weights)
    assert len(sampler) == 3
    np.testing.assert_allclose(sampler.log_prob.double().numpy(), np.log(weights / 8.0), rtol=1e-6)


def test_alias_sampler_is_reproducible_with_a_seeded_generator(cpu_path):
    sampler = AliasSampler(_zipf(20))
    a = sampler.sample((1000,), torch.Generator().manual_seed(5))
    b = sampler.sample((1000,), torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_unigram_power_by_hand():
    counts = np.array([1, 2, 4, 16])
    w = [1.0, 2**0.75, 4**0.75, 16**0.75]  # 1, 1.6818, 2.8284, 8
    total = sum(w)
    np.testing.assert_allclose(unigram_power(counts, 0.75), [x / total for x in w], rtol=1e-12)
    np.testing.assert_allclose(unigram_power(counts, 1.0), [1 / 23, 2 / 23, 4 / 23, 16 / 23], rtol=1e-12)
    np.testing.assert_allclose(unigram_power(counts, 0.0), [0.25] * 4, rtol=1e-12)
    p = unigram_power(np.array([3, 3, 3, 9]), 0.5)
    assert p.dtype == np.float64
    assert p[3] == pytest.approx(math.sqrt(3) * p[0])
    assert p.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "weights",
    [np.array([]), np.array([1.0, -0.5, 2.0]), np.zeros(4), np.ones((2, 2))],
    ids=["empty", "negative", "all-zero", "2-d"],
)
def test_bad_weights_raise_value_error(weights):
    with pytest.raises(ValueError):
        AliasSampler(weights)


def test_nan_weights_raise_value_error():
    with pytest.raises(ValueError):
        AliasSampler(np.array([1.0, float("nan"), 2.0]))
