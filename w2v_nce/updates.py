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
"""

from __future__ import annotations

import torch

from w2v_nce.tensor_ops import take

UPDATES = ("sum", "mean", "sqrt", "cap", "implicit", "directional")


def count_factors(ids: torch.Tensor, rows: int, update: str, cap: float) -> torch.Tensor | None:
    """Per-entry factor of the rules that only count hits (sum, mean, sqrt, cap); None = 1."""
    if update == "sum":
        return None
    counts = torch.bincount(ids, minlength=rows)
    if update == "cap" and ids.device.type == "cpu" and int(counts.max()) <= cap:
        return None  # no row reaches the cap: the plain sum (a device sync, so on the CPU only)
    hits = take(counts, ids).to(torch.float32)
    if update == "mean":
        return hits.reciprocal_()
    if update == "sqrt":
        return hits.rsqrt_()
    if update == "cap":
        return hits.reciprocal_().mul_(cap).clamp_(max=1.0)
    raise ValueError(f"{update!r} is not a counting rule")


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
