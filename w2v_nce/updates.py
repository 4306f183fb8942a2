"""How the steps that one batch gives the same table row combine (`Config.update`).

word2vec applies every example's step at once, one example after another. A batch computes
all its examples' steps against the same parameters, so a row that n examples of the batch
touch receives n steps that never saw each other. Each rule turns this into a factor per
entry (one entry = one example's step to one row), the same for all entries of a row:

  sum          1: word2vec's rule, exact when no row is hit twice.
  mean, sqrt   1/n, 1/sqrt(n).
  cap          min(1, cap/n): the sum up to `cap` hits, then `cap` mean steps.
  implicit     1 / (1 + Σ load): the implicit (proximal) step of the row's summed loss with
               the curvature bounded by its trace (load = lr × |probe|² / 4 per entry).
  directional  1 / (1 + lr κ): the proximal step along the row's own move D (the sum of its
               entries' steps). κ = Σ c (p·u)², with u = D/|D| and p the vector through which
               the row moves one score, and c the largest σ' that score can see over the move,
               max σ'(y) for y between its logit now and after the undamped move D. If the move
               crosses the decision boundary that is 1/4, the logistic maximum. A confident
               score that stays confident has c ≈ σ'(y) ≪ 1/4.
               With c bounding σ' over the whole step, the quadratic along D majorises the row's
               summed loss, so the damped step cannot overshoot that loss. A row hit once moves as
               in word2vec (scaled by 1/(1 + lr c |p|²), ≈ 1), and a frequent row with
               aligned steps moves like one Newton step.

`sum` and `cap` are the core path's rules (here); `mean`, `sqrt`, `implicit` and `directional`
lost in docs/large-batches.md and live apart, in w2v_nce.research_updates. Each rule is a class
with one pair of methods (output rows, input rows); `make_update` is the one place a rule's name
becomes a rule, and the trainer never branches on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import torch

from w2v_nce.config import UPDATES
from w2v_nce.tensor_ops import take
from w2v_nce.windows import Examples


class UpdateRule(ABC):
    """Per-entry factors for one batch's steps to the output rows and to the input rows.

    The trainer gives each method the rows the entries move, the entries' steps and g, the
    gradient of the loss in every candidate's score [B, K]; None means a factor of 1 for all.
    """

    name = ""
    counts_only = False  # factors from the rows' hit counts alone (the fused CPU kernel applies them)

    @abstractmethod
    def output_factors(self, ids: torch.Tensor, h: torch.Tensor, steps: torch.Tensor, rows: int, lr: float,
                       g: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        """Output rows `ids` [B, K]; entry (i, j) moves row ids[i, j] by steps[i*K + j] = step_ij h_i,
        and the row moves score j of example i through h_i. Entries outside `mask` (None: all
        in) do not move their row."""

    @abstractmethod
    def input_factors(self, batch: Examples, out: torch.Tensor, steps: torch.Tensor, rows: int, lr: float,
                      g: torch.Tensor) -> torch.Tensor | None:
        """Context rows `batch.context`; each entry moves its row by its example's whole error
        (cbow_mean=1), steps [nnz, dim], and the row moves score j of example i through
        out_ij / n_i (h is the mean of n_i context vectors). `out` [B, K, dim] are the
        examples' output vectors (the whole table for the exact softmax)."""


class CountingRule(UpdateRule):
    """A factor that depends only on how many entries of the batch hit the same row."""

    counts_only = True

    def count_factors(self, ids: torch.Tensor, rows: int, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """Per-entry factor for the rows `ids` (any shape, flattened); entries outside `mask` are
        not hits."""
        ids = ids.reshape(-1)
        # index_add_, not bincount: bincount syncs with a GPU (it reads the largest id), and on
        # the CPU it is slower (docs/performance.md)
        if mask is None:
            hit = torch.ones(len(ids), dtype=torch.float32, device=ids.device)
        else:
            hit = mask.reshape(-1).to(torch.float32)
        counts = torch.zeros(rows, dtype=torch.float32, device=ids.device).index_add_(0, ids, hit)
        if self.all_ones(counts):
            return None
        return self.from_hits(take(counts, ids))

    def all_ones(self, counts: torch.Tensor) -> bool:
        """Whether every factor is 1 given the rows' hit `counts` (None is returned then)."""
        return False

    @abstractmethod
    def from_hits(self, hits: torch.Tensor) -> torch.Tensor:
        """Factors from each entry's row's hit count."""

    def output_factors(self, ids, h, steps, rows, lr, g, mask):
        return self.count_factors(ids, rows, mask)

    def input_factors(self, batch, out, steps, rows, lr, g):
        return self.count_factors(batch.context, rows)


class Sum(CountingRule):
    """word2vec's rule: every step in full."""

    name = "sum"

    def count_factors(self, ids, rows, mask=None):
        return None  # every factor is 1, whatever the counts: no need to count

    def from_hits(self, hits):
        return torch.ones_like(hits)


class Cap(CountingRule):
    """The sum up to `cap` hits, then `cap` mean steps: min(1, cap / n)."""

    name = "cap"

    def __init__(self, cap: float):
        self.cap = float(cap)

    def all_ones(self, counts):
        # no row reaches the cap: the plain sum (the check syncs with the device, so on the CPU only)
        return counts.device.type == "cpu" and int(counts.max()) <= self.cap

    def from_hits(self, hits):
        return hits.reciprocal_().mul_(self.cap).clamp_(max=1.0)




def rules() -> dict[str, Callable[[float], UpdateRule]]:
    """Every rule by its name in config.UPDATES, built from the cap."""
    from w2v_nce import research_updates as research  # the losing rules: apart from the core path

    return {"sum": lambda cap: Sum(), "cap": Cap, "mean": lambda cap: research.Mean(),
            "sqrt": lambda cap: research.Sqrt(), "implicit": lambda cap: research.Implicit(),
            "directional": lambda cap: research.Directional()}


def make_update(name: str, cap: float) -> UpdateRule:
    """The one place an update rule's name becomes a rule."""
    made = rules()
    if name not in made:
        raise ValueError(f"unknown update {name!r}: choose one of {', '.join(UPDATES)}")
    return made[name](cap)
