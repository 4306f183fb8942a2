"""Training objectives for p(x | c): one interface, one class per loss.

An objective never sees embeddings. The trainer gives it the target words; it chooses
the candidate output rows to score (the target plus k noise words, the inner nodes on the
target's Huffman path, or the whole vocabulary), each with a label and a mask; the trainer
scores them, s = <h(c), w_x> (+ b_x), and the objective turns the scores into a per-example
loss and its gradient with respect to the scores.
The gradients are closed-form (tests check them against autograd), so the trainer can
apply word2vec's plain per-example SGD without building a graph.

Losses (k noise words x' ~ q, target x):
  softmax  exact cross-entropy over the vocabulary:       logsumexp_v s_v - s_x
  hs       hierarchical softmax (word2vec): a logistic decision at every inner node n on x's
           Huffman path, label 1 - code:                   -Σ_n log σ(±s_n)
  neg      negative sampling (word2vec):                   -log σ(s_x) - Σ log σ(-s_x'), x' ≠ x
  nce      Local NCE, logit y = s - log Z - log(k q):      -log σ(y_x) - Σ log σ(-y_x')
  rnce     ranking / Global NCE (sampled softmax), y = s - log q, accidental hits removed:
                                                           logsumexp(y_x, y_x'...) - y_x
  is       importance-sampled partition function:  log Z ≈ logsumexp_x'(s_x' - log q) - log k
                                                           log Z - s_x
hs, neg and nce are one logistic loss on labelled candidates; they differ in which
candidates they score and in a per-candidate logit offset.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from w2v_nce.config import LOSSES, Config
from w2v_nce.sampler import AliasSampler, unigram_power
from w2v_nce.tensor_ops import take
from w2v_nce.vocab import HuffmanTree


@dataclass
class Candidates:
    """Output rows to score for a batch of B examples.

    ids: [B, K] output-table rows (for the sampled losses the target in column 0, then the
        noise words), or None for the whole vocabulary.
    targets: [B] target word ids.
    labels: [B, K] the logistic losses' labels (1 = the real word / the branch taken), or None.
    mask: [B, K] bool, False for a candidate left out of the loss and the update (padding past
        a Huffman path's end, a noise word equal to the target), or None for all in.
    """

    ids: torch.Tensor | None
    targets: torch.Tensor
    labels: torch.Tensor | None = None
    mask: torch.Tensor | None = None


Scorer = Callable[[torch.Tensor | None], torch.Tensor]  # candidate ids [B, K] (None: all rows) -> scores

class Objective(ABC):
    """A loss on the scores of candidate output rows."""

    name: str = ""
    dense = False  # scores every output row (ids None): no candidates, no fused kernel
    models_probability = True  # its scores define p(word | context) (vocab_log_prob); neg's do not

    def output_rows(self, vocab_size: int) -> int:
        """Rows of the output table this objective scores (one per word unless it says otherwise)."""
        return vocab_size

    def draw(self, targets: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The random part of the candidates (ids [B, K]), drawn ahead by the example maker; None
        when the candidates follow from the targets alone."""
        return None

    def complete(self, targets: torch.Tensor, drawn: torch.Tensor | None) -> Candidates:
        """The candidates of a batch, with labels and mask, from its targets and `draw`'s ids."""
        return Candidates(ids=None, targets=targets)

    def candidates(self, targets: torch.Tensor, generator: torch.Generator | None = None) -> Candidates:
        return self.complete(targets, self.draw(targets, generator))

    @abstractmethod
    def loss_grad(self, scores: torch.Tensor, cand: Candidates) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example loss [B] and d(loss)/d(scores), same shape as `scores`."""

    def log_prob(self, score: Scorer, targets: torch.Tensor,
                 dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's exact log p(target | context) [B] and log Z [B] of its raw scores, from
        `score` (the context's scores of given rows), computed in `dtype`. By default the softmax
        over all rows."""
        scores = score(None).to(dtype)
        log_z = torch.logsumexp(scores, dim=1)
        return scores.gather(1, targets[:, None]).squeeze(1) - log_z, log_z

    def vocab_log_prob(self, scores: torch.Tensor) -> torch.Tensor:
        """log p(w | c) of every word [B, V] from the scores of all output rows: the softmax."""
        return torch.log_softmax(scores, dim=1)

    def update(self, dscores: torch.Tensor, lr: float) -> None:
        """SGD step on the objective's own parameters (none by default)."""

    def hot_rows(self, rows: int, count: int) -> tuple[int, int]:
        """(first, count): the `count` output rows scored most often. Rows are words by decreasing
        frequency, so the first ones."""
        return 0, min(count, rows)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Softmax(Objective):
    """Exact softmax over the whole vocabulary (scores are [B, V])."""

    name = "softmax"
    dense = True

    def loss_grad(self, scores, cand):
        log_p = torch.log_softmax(scores, dim=1)
        rows = torch.arange(len(scores), device=scores.device)
        loss = -log_p[rows, cand.targets]
        grad = log_p.exp_()
        grad[rows, cand.targets] -= 1.0
        return loss, grad


def _binary_logistic(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed BCE over candidates: -[l log σ(y) + (1-l) log σ(-y)], and its gradient σ(y) - l.

    Candidates outside `mask` are left out of both.
    """
    labels = labels.to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    grad = torch.sigmoid(logits) - labels
    if mask is not None:
        loss, grad = loss * mask, grad * mask
    return loss.sum(1), grad


class LogisticObjective(Objective):
    """A binary logistic loss on every labelled candidate (hs, neg, nce): logit y = s - offset,
    where the offset is a per-row vector (or None) plus a constant. The fused CPU kernel trains
    this family example by example (w2v_nce.fused.window_sgd) from the same three pieces:
    candidates with labels and mask, and `logit_offset`."""

    def logit_offset(self) -> tuple[torch.Tensor | None, float | torch.Tensor]:
        """(per-row offset [rows] or None, constant offset)."""
        return None, 0.0

    def loss_grad(self, scores, cand):
        rows, const = self.logit_offset()
        logits = scores - const
        if rows is not None:
            logits = logits - take(rows, cand.ids)
        return _binary_logistic(logits, cand.labels, cand.mask)

    def update_from_sum(self, grad_sum: float | torch.Tensor, examples: int, lr: float) -> None:
        """`update`, given only the sum of d loss / d score over the batch's candidates."""

    def kernel_candidates(self) -> dict:
        """How the kernel's own example maker (w2v_nce.fused.window_sgd) finds an example's
        candidates: noise=(accept, alias, k, skip accidental hits) or tree=(points, labels, mask)."""
        raise NotImplementedError


class SampledObjective(Objective):
    """Base for losses that score the target and k words drawn from the noise sampler."""

    def __init__(self, sampler: AliasSampler, k: int):
        if k < 1:
            raise ValueError(f"{type(self).__name__} needs at least one noise word, got k={k}")
        self.sampler, self.k = sampler, k

    def draw(self, targets, generator=None):
        ids = self.sampler.sample((len(targets), 1 + self.k), generator)  # column 0 is then the target
        ids[:, 0] = targets
        return ids

    def complete(self, targets, drawn):
        labels = torch.zeros(drawn.shape, dtype=torch.float32, device=drawn.device)
        labels[:, 0] = 1.0
        return Candidates(ids=drawn, targets=targets, labels=labels, mask=self.mask(drawn, targets))

    def mask(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        return None


def _accidental_hits(ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """False where a noise word is the target itself."""
    keep = torch.ones(ids.shape, dtype=torch.bool, device=ids.device)
    keep[:, 1:] = ids[:, 1:] != targets[:, None]
    return keep


class NegativeSampling(SampledObjective, LogisticObjective):
    """word2vec's negative sampling: a logistic classifier on the raw score.

    As in word2vec.c and gensim, a noise word that happens to be the target is skipped.
    """

    name = "neg"
    models_probability = False  # a classifier's scores: no normalised distribution behind them
    why_no_probability = "negative sampling's scores do not estimate it"

    def mask(self, ids, targets):
        return _accidental_hits(ids, targets)

    def kernel_candidates(self):
        return {"noise": (self.sampler.accept, self.sampler.alias, self.k, True)}


class HierarchicalSoftmax(LogisticObjective):
    """word2vec's hierarchical softmax: p(x | c) = Π σ(±s_n) over the inner nodes n on x's path
    in the Huffman tree (w2v_nce.vocab.HuffmanTree), + when the path turns left (code 0), as in
    word2vec.c and gensim (label 1 - code). The V - 1 inner nodes are the output rows. A binary
    tree, so the probabilities of all words sum to 1 exactly; log Z is 0 by construction.
    """

    name = "hs"

    def __init__(self, tree: HuffmanTree, device: str | torch.device = "cpu"):
        self.points = torch.from_numpy(tree.points).to(device)
        self.path_labels = 1.0 - torch.from_numpy(tree.codes).to(device, torch.float32)
        lengths = torch.from_numpy(tree.lengths).to(device)
        self.path_mask = torch.arange(tree.points.shape[1], device=device) < lengths[:, None]

    def output_rows(self, vocab_size):
        return vocab_size - 1

    def hot_rows(self, rows, count):
        # inner nodes are made in order of increasing count (Huffman): the last ones, nearest the
        # root, lie on the most paths
        count = min(count, rows)
        return rows - count, count

    def complete(self, targets, drawn):
        return Candidates(ids=take(self.points, targets), targets=targets, labels=take(self.path_labels, targets),
                          mask=take(self.path_mask, targets))

    def kernel_candidates(self):
        return {"tree": (self.points, self.path_labels, self.path_mask)}

    def log_prob(self, score, targets, dtype=torch.float64):
        cand = self.complete(targets, None)
        log_p = -self.loss_grad(score(cand.ids), cand)[0].double()
        return log_p, torch.zeros_like(log_p)

    def vocab_log_prob(self, inner_scores: torch.Tensor) -> torch.Tensor:
        """log p(w | c) of every word [B, V] from the scores of all inner nodes [B, V - 1]."""
        path = inner_scores[:, self.points]  # [B, V, L]
        y = torch.where(self.path_labels.bool(), path, -path)
        return (F.logsigmoid(y) * self.path_mask).sum(2)


class LocalNCE(SampledObjective, LogisticObjective):
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

    def logit_offset(self):
        return self.log_kq, self.log_z

    def kernel_candidates(self):
        return {"noise": (self.sampler.accept, self.sampler.alias, self.k, False)}

    def update(self, dscores, lr):
        self.update_from_sum(dscores.sum(), len(dscores), lr)

    def update_from_sum(self, grad_sum, examples, lr):
        # d loss / d log Z = -sum of d loss / d s. Every example shares log Z, so it takes one
        # SGD step on the batch's mean loss: the summed step of a 1024-example batch overshoots
        # (log Z ran to 9 in one epoch). A tensor on a GPU, so there is no device sync.
        if self.learn_log_z:
            self.log_z = self.log_z + lr * grad_sum / examples

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

    def mask(self, ids, targets):
        return _accidental_hits(ids, targets) if self.remove_accidental_hits else None

    def loss_grad(self, scores, cand):
        logits = scores - take(self.sampler.log_prob, cand.ids)
        if cand.mask is not None:
            logits.masked_fill_(~cand.mask, -math.inf)
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


OBJECTIVES = {"softmax": Softmax, "hs": HierarchicalSoftmax, "neg": NegativeSampling, "nce": LocalNCE,
              "rnce": RankingNCE, "is": ImportanceSampling}  # keyed by config.LOSSES


def make_objective(
    name: str,
    sampler: AliasSampler,
    k: int,
    log_z: float = 0.0,
    learn_log_z: bool = False,
    remove_accidental_hits: bool = True,
    tree: HuffmanTree | None = None,
) -> Objective:
    """The one place a loss name becomes an objective (`tree`: the vocabulary's Huffman tree, for hs)."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}")
    if name == "softmax":
        return Softmax()
    if name == "hs":
        if tree is None:
            raise ValueError("hs needs the vocabulary's Huffman tree")
        return HierarchicalSoftmax(tree, sampler.device)
    if name == "nce":
        return LocalNCE(sampler, k, log_z=log_z, learn_log_z=learn_log_z)
    if name == "rnce":
        return RankingNCE(sampler, k, remove_accidental_hits)
    return OBJECTIVES[name](sampler, k)


def objective_for(cfg: Config, counts, device: torch.device | str = "cpu") -> Objective:
    """The objective of a run's settings over a vocabulary's `counts` (the noise distribution and,
    for hs, the Huffman tree come from them): for training and for a loaded model alike."""
    sampler = AliasSampler(unigram_power(counts, cfg.noise_exponent), device)
    tree = HuffmanTree.from_counts(counts) if cfg.loss == "hs" else None
    return make_objective(cfg.loss, sampler, cfg.negatives, cfg.log_z, cfg.learn_log_z, cfg.remove_accidental_hits,
                          tree=tree)
