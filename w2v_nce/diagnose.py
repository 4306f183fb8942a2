"""Held-out likelihood and self-normalisation of a trained model.

On held-out examples of the model's architecture (no subsampling, full window: CBOW windows
or skip-gram pairs) it computes the model's exact probabilities (the softmax over the whole
vocabulary; for hierarchical softmax the product along the word's Huffman path, which is
normalised by construction and costs O(log V) a word):
  cross_entropy   mean of -log p(x | c), in nats per word, and its perplexity;
  log Z(c)        logsumexp_v s(v, c), the log partition function of the raw scores;
                  its mean and standard deviation tell how self-normalised the model is
                  (Local NCE: mean near the model's log Z constant, 0 by default);
  unnormalized_cross_entropy  mean of -(s(x, c) - model_log_z): the cross-entropy one
                  gets by trusting exp(s - log Z_model) as p(x|c) without normalising.

`HeldOut` measures a run's held-out loss after every epoch (train --heldout) on the same
examples: the exact cross-entropy, or for neg, whose scores define no probability, neg's own loss
with noise words drawn once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from w2v_nce.checkpoint import load_model
from w2v_nce.errors import UserError
from w2v_nce.model import Model
from w2v_nce.objectives import Candidates, Objective
from w2v_nce.vocab import Vocab, word_count
from w2v_nce.windows import Examples, example_maker


@dataclass
class Diagnosis:
    arch: str
    loss: str
    examples: int
    cross_entropy: float
    perplexity: float
    unnormalized_cross_entropy: float
    log_z_mean: float
    log_z_std: float
    model_log_z: float


def heldout_examples(vocab: Vocab, corpus: Path | str, window: int, max_examples: int,
                     arch: str = "cbow", tokenizer: str = "whitespace", subwords: bool = False) -> Examples:
    """The first `max_examples` examples of `arch` in `corpus`: every word, full window (with
    `subwords`, skip-gram's pairs in fastText's orientation, as they were trained)."""
    pieces: list[np.ndarray] = []
    words, wanted = 0, max_examples + 2 * window
    examples = None
    for piece in vocab.encode(corpus, tokenizer):
        pieces.append(piece)
        words += word_count(piece)
        if words >= wanted:  # enough words, unless many have no context: then read on
            examples = _full_window_examples(pieces, window, arch, subwords)
            if len(examples) >= max_examples:
                break
            wanted *= 2
    else:
        examples = _full_window_examples(pieces, window, arch, subwords) if words else None
    if examples is None:
        raise UserError(f"held-out corpus '{corpus}' has no in-vocabulary words")
    if len(examples) == 0:
        raise UserError(f"held-out corpus '{corpus}' has no word with a context")
    return examples.slice(0, min(max_examples, len(examples)))


def _full_window_examples(pieces: list[np.ndarray], window: int, arch: str, subwords: bool) -> Examples:
    flat = torch.from_numpy(np.concatenate(pieces))
    return example_maker(arch, subwords)(flat, window, None, radius=torch.full((word_count(flat),), window))


@torch.no_grad()
def diagnose(state: dict, heldout: Path | str, max_examples: int = 20000, batch_size: int = 1024) -> Diagnosis:
    """Diagnose the checkpoint `state` (see checkpoint.load_checkpoint) on the `heldout` corpus."""
    loaded = load_model(state)
    cfg, vocab, model, objective = loaded.cfg, loaded.vocab, loaded.model, loaded.objective
    model_log_z = float(state.get("objective", {}).get("log_z", 0.0))
    examples = heldout_examples(vocab, heldout, cfg.window, max_examples, cfg.arch, cfg.tokenizer, cfg.subwords)

    log_p, log_z = zip(*log_probs(model, objective, examples, batch_size))
    log_p_all, log_z_all = torch.cat(log_p), torch.cat(log_z)
    target_all = log_p_all + log_z_all  # the raw score of the target
    cross_entropy = float(-log_p_all.mean())
    return Diagnosis(
        arch=cfg.arch,
        loss=cfg.loss,
        examples=len(examples),
        cross_entropy=cross_entropy,
        perplexity=math.exp(cross_entropy) if cross_entropy < 700 else math.inf,  # exp overflows past ~709
        unnormalized_cross_entropy=float((model_log_z - target_all).mean()),
        log_z_mean=float(log_z_all.mean()),
        log_z_std=float(log_z_all.std()) if len(log_z_all) > 1 else 0.0,
        model_log_z=model_log_z,
    )


def log_probs(model: Model, objective: Objective, examples: Examples, batch_size: int,
              dtype: torch.dtype = torch.float64):
    """The model's exact log p(target | context) and log Z of `examples`, a batch at a time."""
    for lo in range(0, len(examples), batch_size):
        batch = examples.slice(lo, min(lo + batch_size, len(examples)))
        h = model.context_vectors(*model.input_bags(batch.context, batch.offsets))
        yield objective.log_prob(lambda ids: model.scores(h, ids)[0], batch.targets, dtype)


DENSE_ENTRIES = 1 << 24  # scores held at once by the exact cross-entropy: batch x output rows


class HeldOut:
    """A run's held-out loss, measured on the first `max_examples` examples of a held-out text
    (full window, no subsampling), the same ones after every epoch: the exact cross-entropy in
    nats per example for the losses that model p(word | context), as `diagnose` computes it but
    in float32 (a normaliser over the vocabulary costs examples x V x dim; float32 halves it and
    moves the result by about 1e-6 nats); for neg its own loss per example, on noise words drawn
    once from `seed`, so that two epochs are measured alike. A held-out text without a known word
    is a UserError."""

    def __init__(self, path: Path | str, vocab: Vocab, objective: Objective, window: int, arch: str,
                 tokenizer: str, max_examples: int, seed: int = 0, subwords: bool = False):
        self.examples = heldout_examples(vocab, path, window, max_examples, arch, tokenizer, subwords)
        self.measure = "cross_entropy" if objective.models_probability else f"{objective.name}_loss"
        self.candidates: Candidates | None = None
        if not objective.models_probability:
            sampler_device = getattr(getattr(objective, "sampler", None), "device", torch.device("cpu"))
            generator = torch.Generator(device=sampler_device).manual_seed(seed)
            self.candidates = objective.candidates(self.examples.targets.to(sampler_device), generator)

    @torch.no_grad()
    def loss(self, model: Model, objective: Objective) -> float:
        """The mean held-out loss of `model` now."""
        device = model.inp.device
        examples = _to(self.examples, device)
        if self.candidates is None:
            batch = max(1, min(1024, DENSE_ENTRIES // max(len(model.out), 1)))
            total = sum(float(lp.double().sum()) for lp, _ in log_probs(model, objective, examples, batch,
                                                                         torch.float32))
            return -total / len(examples)
        cand = self.candidates
        h = torch.cat([model.context_vectors(*model.input_bags(part.context, part.offsets))  # a batch of bags at a time
                       for part in (examples.slice(lo, min(lo + 1024, len(examples)))
                                    for lo in range(0, len(examples), 1024))])
        scores, _ = model.scores(h, cand.ids.to(device))
        loss, _ = objective.loss_grad(scores, Candidates(
            cand.ids.to(device), cand.targets.to(device), cand.labels.to(device),
            None if cand.mask is None else cand.mask.to(device)))
        return float(loss.double().mean())


def _to(examples: Examples, device: torch.device) -> Examples:
    if examples.targets.device == device:
        return examples
    return Examples(examples.targets.to(device), examples.context.to(device), examples.offsets.to(device),
                    host_offsets=examples._host())
