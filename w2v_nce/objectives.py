"""Training objectives for p(x | c): one interface, one class per loss.

An objective never sees embeddings. The trainer gives it the target words; it chooses
the candidate output words to score (the target plus k noise words, or the whole
vocabulary); the trainer scores them, s = <h(c), w_x> (+ b_x), and the objective turns
the scores into a per-example loss and its gradient with respect to the scores.
The gradients are closed-form (tests check them against autograd), so the trainer can
apply word2vec's plain per-example SGD without building a graph.

Losses (k noise words x' ~ q, target x):
  softmax  exact cross-entropy over the vocabulary:       logsumexp_v s_v - s_x
  neg      negative sampling (word2vec):                   -log σ(s_x) - Σ log σ(-s_x'), x' ≠ x
  nce      Local NCE, logit y = s - log Z - log(k q):      -log σ(y_x) - Σ log σ(-y_x')
  rnce     ranking / Global NCE (sampled softmax), y = s - log q, accidental hits removed:
                                                           logsumexp(y_x, y_x'...) - y_x
  is       importance-sampled partition function:  log Z ≈ logsumexp_x'(s_x' - log q) - log k
                                                           log Z - s_x
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from w2v_nce.sampler import AliasSampler
from w2v_nce.tensor_ops import take


@dataclass
class Candidates:
    """Output words to score for a batch of B examples.

    ids: [B, 1+k] word ids with the target in column 0, or None for the whole vocabulary.
    targets: [B] target word ids.
    """

    ids: torch.Tensor | None
    targets: torch.Tensor


class Objective(ABC):
    """A loss on the scores of candidate output words."""

    name: str = ""

    def candidates(self, targets: torch.Tensor, generator: torch.Generator | None = None) -> Candidates:
        return Candidates(ids=None, targets=targets)

    @abstractmethod
    def loss_grad(self, scores: torch.Tensor, cand: Candidates) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example loss [B] and d(loss)/d(scores), same shape as `scores`."""

    def update(self, dscores: torch.Tensor, lr: float) -> None:
        """SGD step on the objective's own parameters (none by default)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Softmax(Objective):
    """Exact softmax over the whole vocabulary (scores are [B, V])."""

    name = "softmax"

    def loss_grad(self, scores, cand):
        log_p = torch.log_softmax(scores, dim=1)
        rows = torch.arange(len(scores), device=scores.device)
        loss = -log_p[rows, cand.targets]
        grad = log_p.exp_()
        grad[rows, cand.targets] -= 1.0
        return loss, grad


class SampledObjective(Objective):
    """Base for losses that score the target and k words drawn from the noise sampler."""

    def __init__(self, sampler: AliasSampler, k: int):
        if k < 1:
            raise ValueError(f"{type(self).__name__} needs at least one noise word, got k={k}")
        self.sampler, self.k = sampler, k

    def candidates(self, targets, generator=None):
        noise = self.sampler.sample((len(targets), self.k), generator)
        return Candidates(ids=torch.cat([targets[:, None], noise], dim=1), targets=targets)

    def labels(self, scores: torch.Tensor) -> torch.Tensor:
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1.0
        return labels


def _binary_logistic(
    logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed BCE over candidates: -[l log σ(y) + (1-l) log σ(-y)], and its gradient σ(y) - l.

    `weight` (0 or 1 per candidate) leaves candidates out of both.
    """
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    grad = torch.sigmoid(logits) - labels
    if weight is not None:
        loss, grad = loss * weight, grad * weight
    return loss.sum(1), grad


class NegativeSampling(SampledObjective):
    """word2vec's negative sampling: a logistic classifier on the raw score.

    As in word2vec.c and gensim, a noise word that happens to be the target is skipped.
    """

    name = "neg"

    def loss_grad(self, scores, cand):
        keep = torch.ones_like(scores)
        keep[:, 1:] = cand.ids[:, 1:] != cand.targets[:, None]
        return _binary_logistic(scores, self.labels(scores), keep)


class LocalNCE(SampledObjective):
    """Local (binary) NCE: logit = s - log Z - log(k q(x)).

    With a fixed log Z = 0 the model is trained to self-normalise, so exp(s) ≈ p(x|c);
    with `learn_log_z` a single shared log Z is learnt by SGD along with the embeddings.
    """

    name = "nce"

    def __init__(self, sampler: AliasSampler, k: int, log_z: float = 0.0, learn_log_z: bool = False):
        super().__init__(sampler, k)
        self.log_z = float(log_z)
        self.learn_log_z = learn_log_z
        self.log_kq = sampler.log_prob + math.log(k)

    def loss_grad(self, scores, cand):
        logits = scores - self.log_z - take(self.log_kq, cand.ids)
        return _binary_logistic(logits, self.labels(scores))

    def update(self, dscores, lr):
        # d loss / d log Z = -sum of d loss / d s. Every example shares log Z, so it takes one
        # SGD step on the batch's mean loss: the summed step of a 1024-example batch overshoots
        # (log Z ran to 9 in one epoch). A tensor, so there is no device sync.
        if self.learn_log_z:
            self.log_z = self.log_z + lr * dscores.sum() / len(dscores)

    def state_dict(self):
        return {"log_z": float(self.log_z)}

    def load_state_dict(self, state):
        self.log_z = float(state.get("log_z", self.log_z))


class RankingNCE(SampledObjective):
    """Global / ranking NCE (sampled softmax): which of the 1+k candidates is real?

    Logits are s - log q(x). By default a noise word equal to the target (an accidental
    hit) is removed from the softmax, as in TensorFlow's sampled_softmax_loss; that makes
    the estimator slightly inconsistent when k q(x) is not small (scripts/toy_nce.py
    measures it), and `remove_accidental_hits=False` keeps them (Ma & Collins' ranking NCE).
    """

    name = "rnce"

    def __init__(self, sampler: AliasSampler, k: int, remove_accidental_hits: bool = True):
        super().__init__(sampler, k)
        self.remove_accidental_hits = remove_accidental_hits

    def loss_grad(self, scores, cand):
        logits = scores - take(self.sampler.log_prob, cand.ids)
        if self.remove_accidental_hits:
            hits = cand.ids[:, 1:] == cand.targets[:, None]
            logits[:, 1:].masked_fill_(hits, -math.inf)
        log_p = torch.log_softmax(logits, dim=1)
        grad = log_p.exp()
        grad[:, 0] -= 1.0
        return -log_p[:, 0], grad


class ImportanceSampling(SampledObjective):
    """Partition-function estimation: log Z(c) ≈ log( (1/k) Σ exp(s_x') / q(x') ).

    The loss log Ẑ - s_x is the exact cross-entropy with Z replaced by its importance-
    sampling estimate from the k noise words (the target is not part of the estimate).
    """

    name = "is"

    def loss_grad(self, scores, cand):
        noise_logits = scores[:, 1:] - take(self.sampler.log_prob, cand.ids[:, 1:])
        log_z = torch.logsumexp(noise_logits, dim=1) - math.log(self.k)
        grad = torch.empty_like(scores)
        grad[:, 0] = -1.0
        grad[:, 1:] = torch.softmax(noise_logits, dim=1)
        return log_z - scores[:, 0], grad


LOSSES = ("softmax", "neg", "nce", "rnce", "is")


def make_objective(
    name: str,
    sampler: AliasSampler,
    k: int,
    log_z: float = 0.0,
    learn_log_z: bool = False,
    remove_accidental_hits: bool = True,
) -> Objective:
    """The one place a loss name becomes an objective."""
    if name == "softmax":
        return Softmax()
    if name == "neg":
        return NegativeSampling(sampler, k)
    if name == "nce":
        return LocalNCE(sampler, k, log_z=log_z, learn_log_z=learn_log_z)
    if name == "rnce":
        return RankingNCE(sampler, k, remove_accidental_hits)
    if name == "is":
        return ImportanceSampling(sampler, k)
    raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}")
