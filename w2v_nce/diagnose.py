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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from w2v_nce.checkpoint import load_model
from w2v_nce.errors import UserError
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

    log_p, log_z = [], []
    for lo in range(0, len(examples), batch_size):
        batch = examples.slice(lo, min(lo + batch_size, len(examples)))
        h = model.context_vectors(*model.input_bags(batch.context, batch.offsets))
        lp, lz = objective.log_prob(lambda ids: model.scores(h, ids)[0], batch.targets)
        log_p.append(lp)
        log_z.append(lz)
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
