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

`implicit` and `directional` need each score's curvature; for every objective here the
second derivative of the loss in one score is |g|(1 − |g|), g its gradient (logistic:
σ(1−σ); softmax-type: p(1−p)). So "wrong" = |g| is the probability of the wrong answer, and
its logit moves with the score in the direction sign(g).

Each rule is a class with one pair of methods (output rows, input rows); `make_update` is the
one place a rule's name becomes a rule, and the trainer never branches on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import torch

from w2v_nce.tensor_ops import take
from w2v_nce.windows import Examples

UPDATES = ("sum", "mean", "sqrt", "cap", "implicit", "directional")


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


class Mean(CountingRule):
    name = "mean"

    def from_hits(self, hits):
        return hits.reciprocal_()


class Sqrt(CountingRule):
    name = "sqrt"

    def from_hits(self, hits):
        return hits.rsqrt_()


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


class Implicit(UpdateRule):
    """1 / (1 + Σ load): the implicit step with the curvature bounded by its trace (σ' <= 1/4)."""

    name = "implicit"

    def output_factors(self, ids, h, steps, rows, lr, g, mask):
        load = (h * h).sum(1, keepdim=True).mul_(lr / 4).expand(ids.shape)
        load = (load if mask is None else load * mask).reshape(-1)
        return implicit_factors(ids.reshape(-1), load, rows)

    def input_factors(self, batch, out, steps, rows, lr, g):
        if out.dim() != 3:
            return None  # the exact softmax's dense update: the plain sum
        return implicit_factors(batch.context, take((out * out).sum((1, 2)).mul_(lr / 4), batch.bag), rows)


class Directional(UpdateRule):
    """1 / (1 + lr κ): the proximal step along the row's own move (module docstring)."""

    name = "directional"

    def output_factors(self, ids, h, steps, rows, lr, g, mask):
        logit, direction = wrong_logit(g), torch.sign(g)

        def curvature(unit: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
            along = torch.bmm(unit.view(*ids.shape, -1), h[:, :, None]).view(-1)  # h_i . u
            slope = sigmoid_slope_bound(logit.view(-1), direction.view(-1), along * length)
            share = slope * along.square()
            return share if mask is None else share * mask.reshape(-1)

        return directional_factors(ids.reshape(-1), steps, rows, lr, curvature)

    def input_factors(self, batch, out, steps, rows, lr, g):
        if out.dim() != 3:
            return None  # the exact softmax's dense update: the plain sum
        logit, direction = wrong_logit(g), torch.sign(g)
        bag = batch.bag
        col = torch.arange(len(bag), device=bag.device) - take(batch.offsets, bag)  # place in its context
        size = take(batch.sizes, bag).to(out.dtype)

        def curvature(unit: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
            # out_ij . u for every context entry of example i: one bmm over a padded layout
            padded = torch.zeros(len(batch), max(batch.max_size, 1), out.shape[2], dtype=out.dtype, device=out.device)
            padded.index_put_((bag, col), unit)
            along = torch.bmm(padded, out.transpose(1, 2))[bag, col]  # [nnz, K]
            slope = sigmoid_slope_bound(take(logit, bag), take(direction, bag), along * (length / size)[:, None])
            return (slope * along.square()).sum(1) / size

        return directional_factors(batch.context, steps, rows, lr, curvature)


def make_update(name: str, cap: float) -> UpdateRule:
    """The one place an update rule's name becomes a rule."""
    rules: dict[str, Callable[[], UpdateRule]] = {
        "sum": Sum, "mean": Mean, "sqrt": Sqrt, "cap": lambda: Cap(cap), "implicit": Implicit,
        "directional": Directional,
    }
    if name not in rules:
        raise ValueError(f"unknown update {name!r}: choose one of {', '.join(UPDATES)}")
    return rules[name]()


def implicit_factors(ids: torch.Tensor, load: torch.Tensor, rows: int) -> torch.Tensor:
    """Per-entry 1 / (1 + the row's summed `load`)."""
    total = torch.zeros(rows, dtype=load.dtype, device=load.device).index_add_(0, ids, load)
    return take(total, ids).add_(1.0).reciprocal_()


def wrong_logit(g: torch.Tensor) -> torch.Tensor:
    """logit of |g|, the probability of the wrong answer for each score (g = d loss / d score)."""
    wrong = g.abs().clamp(1e-7, 1 - 1e-7)
    return torch.log(wrong) - torch.log1p(-wrong)


def sigmoid_slope_bound(logit: torch.Tensor, direction: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """max σ'(y) for y between `logit` and `logit + direction * shift` (σ' = σ(1 − σ)).

    >>> sigmoid_slope_bound(torch.tensor([-3.0, -3.0, 5.0]), torch.tensor([1.0, 1.0, -1.0]),
    ...                     torch.tensor([1.0, 4.0, 1.0])).tolist()  # doctest: +ELLIPSIS
    [0.104..., 0.25, 0.0176...]
    """
    end = logit + direction * shift
    near = torch.minimum(logit.abs(), end.abs())
    slope = torch.sigmoid(near) * torch.sigmoid(-near)
    return torch.where(logit * end <= 0, torch.full_like(slope, 0.25), slope)


def directional_factors(ids: torch.Tensor, steps: torch.Tensor, rows: int, lr: float, curvature) -> torch.Tensor:
    """Per-entry factor 1 / (1 + lr κ_row) of the proximal step along each row's move.

    steps: [E, dim] the entries' steps (the word2vec step, lr included); their sum per row is
    the row's move D. curvature(unit, length) -> [E]: each entry's share of κ, given the unit
    direction u and length |D| of its row's move (per entry).
    """
    total = torch.zeros(rows, steps.shape[1], dtype=steps.dtype, device=steps.device).index_add_(0, ids, steps)
    length = total.norm(dim=1)
    unit = total / length.clamp(min=1e-30)[:, None]
    kappa = torch.zeros(rows, dtype=steps.dtype, device=steps.device)
    kappa.index_add_(0, ids, curvature(take(unit, ids), take(length, ids)))
    return take(kappa.mul_(lr).add_(1.0).reciprocal_(), ids)
