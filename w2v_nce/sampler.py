"""Noise distribution: unigram^power probabilities and an alias table for O(1) sampling.

The table lives on the training device, so drawing k noise words for a whole batch is
two uniform draws and one gather, with no host round trip.

>>> s = AliasSampler(torch.tensor([1.0, 1.0, 2.0]))
>>> s.prob.tolist()
[0.25, 0.25, 0.5]
>>> s.sample((4, 2), torch.Generator().manual_seed(0)).shape
torch.Size([4, 2])
"""

from __future__ import annotations

import numpy as np
import torch

from w2v_nce import fused
from w2v_nce.tensor_ops import take


def unigram_power(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """word2vec's noise distribution: count^power, normalised (float64)."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    return weights / weights.sum()


def build_alias_table(prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method: bucket i keeps itself with `accept[i]`, else yields `alias[i]`.

    Every bucket has mass 1/n, so a draw is: pick a bucket uniformly, then a biased coin.

    >>> accept, alias = build_alias_table(np.array([0.5, 0.25, 0.25]))
    >>> accept.tolist(), alias.tolist()
    ([1.0, 0.75, 0.75], [0, 0, 0])
    """
    n = len(prob)
    scaled = np.asarray(prob, dtype=np.float64) * n
    accept = np.ones(n, dtype=np.float64)
    alias = np.arange(n, dtype=np.int64)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large[-1]
        accept[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        if scaled[g] < 1.0:
            small.append(large.pop())
    # What is left (rounding) has mass 1: it keeps itself.
    return accept, alias


class AliasSampler:
    """Draws word ids from a fixed distribution in O(1) each, on `device`."""

    def __init__(self, weights: torch.Tensor | np.ndarray, device: str | torch.device = "cpu"):
        prob = np.asarray(weights, dtype=np.float64)
        if prob.ndim != 1 or len(prob) == 0 or not np.isfinite(prob).all() or (prob < 0).any() or prob.sum() <= 0:
            raise ValueError("noise weights must be a non-empty vector of finite, non-negative numbers")
        prob = prob / prob.sum()
        accept, alias = build_alias_table(prob)
        self.device = torch.device(device)
        self.prob = torch.tensor(prob, dtype=torch.float32, device=self.device)
        self.log_prob = torch.log(torch.tensor(prob, dtype=torch.float64)).float().to(self.device)
        self.accept = torch.tensor(accept, dtype=torch.float32, device=self.device)
        self.alias = torch.tensor(alias, dtype=torch.int64, device=self.device)

    def __len__(self) -> int:
        return len(self.prob)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """Ids of `shape`, drawn from `generator`'s stream (on the CPU with the fused kernel: a
        stream seeded from it, ~10x faster; the same distribution, tested by chi-square)."""
        if fused.usable(self.accept):
            seed = int(torch.randint(1 << 62, (1,), generator=generator))
            return fused.alias_sample(self.accept, self.alias, shape, seed)
        bucket = torch.randint(len(self), shape, generator=generator, device=self.device)
        coin = torch.rand(shape, generator=generator, device=self.device)
        return torch.where(coin < take(self.accept, bucket), bucket, take(self.alias, bucket))
