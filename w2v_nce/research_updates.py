"""Update rules for the batched step that lost in docs/large-batches.md, kept for study.

`mean` and `sqrt` average a row's steps (what a naive loop with reduction="mean" amounts to);
`implicit` and `directional` damp them by the scores' curvature (w2v_nce.updates explains the
rules). For every objective here the second derivative of the loss in one score is |g|(1 − |g|),
g its gradient (logistic: σ(1−σ); softmax-type: p(1−p)). So "wrong" = |g| is the probability of
the wrong answer, and its logit moves with the score in the direction sign(g).

They run on the batched step only (the curvature rules need the scores' gradients per row); the
step a run takes is chosen once and recorded (w2v_nce.steps.choose_step).
"""

from __future__ import annotations

import torch

from w2v_nce.tensor_ops import take
from w2v_nce.updates import CountingRule, UpdateRule


class Mean(CountingRule):
    name = "mean"

    def from_hits(self, hits):
        return hits.reciprocal_()


class Sqrt(CountingRule):
    name = "sqrt"

    def from_hits(self, hits):
        return hits.rsqrt_()


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
