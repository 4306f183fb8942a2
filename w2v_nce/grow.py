"""A model's life after its first run: continue it on new text, start it from pretrained vectors.

`train --init RUN` (and `Word2Vec.train` on a trained model) continues RUN's tables in a new run
directory; RUN is only read. Without `update_vocab` the vocabulary, its counts, the noise
distribution and the Huffman tree stay RUN's and the new text's unknown words are dropped, as
gensim's `train` on new sentences does. With it (gensim's `build_vocab(update=True)`):

- `grown_vocab`: RUN's words stay; a word RUN does not have joins when the new text holds it
  `min_count` times (RUN kept no count of the words it dropped, nor does gensim); every word's
  count is RUN's plus the new text's, and the words are sorted again by that count (gensim
  appends the new words instead; sorted, the first rows stay the frequent words, which the
  kernel's private rows, torchrun's row syncs and the analogy test's restrict_vocab all rely on).
  The noise distribution, subsampling and the Huffman tree then come from the merged counts.
- `carry_over`: every word RUN has keeps its input row, output row and bias; new words keep the
  fresh rows the trainer drew for them (as a new run draws them). Hierarchical softmax's output
  rows belong to the inner nodes of the Huffman tree, which the merged counts reshape: unless
  the tree comes out the same, they all start again at zero, as a new run's do (gensim keeps
  them by index, though node i of the new tree is not node i of the old one). docs/results.md,
  "Growing a model", measures both against giving a new node the row of the old node that made
  the same decision: zeros start as well and end as well or better, and leave the input vectors
  alone until the tree has learnt again.

`init_vectors` gives the vocabulary's words found in a word2vec file their vectors there
(gensim's intersect_word2vec_format), and `FrozenRows` keeps them as they are while the run
trains (gensim's lockf 0.0, which also freezes input rows only).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from w2v_nce.checkpoint import CHECKPOINT, Loaded, load_checkpoint, load_model
from w2v_nce.config import Config
from w2v_nce.corpus import Corpus
from w2v_nce.errors import UserError
from w2v_nce.model import Model
from w2v_nce.objectives import Objective
from w2v_nce.steps import Step
from w2v_nce.vectors import load_word2vec
from w2v_nce.vocab import HuffmanTree, Vocab, build_vocabulary
from w2v_nce.windows import Centres, PaddedCentres


@dataclass
class Parent:
    """The run a new run continues (train --init): where it is, its checkpoint and its model."""

    run_dir: Path
    state: dict
    loaded: Loaded

    @property
    def vocab(self) -> Vocab:
        return self.loaded.vocab

    def lineage(self) -> list[dict]:
        """The new run's ancestry: the parent's own, then the parent (its directory, corpus, words
        trained, epochs and vocabulary size), oldest first."""
        progress = self.state.get("progress") if isinstance(self.state.get("progress"), dict) else {}
        corpus = self.state.get("corpus")
        return lineage_of(self.state) + [{
            "run": str(self.run_dir.resolve()),
            "corpus": corpus if isinstance(corpus, str) else None,
            "words": int(progress.get("words_done", 0) or 0),
            "epochs": int(progress.get("epoch", 0) or 0),
            "vocab_size": len(self.vocab),
        }]


def lineage_of(state: dict) -> list[dict]:
    """A checkpoint's lineage (untrusted): its entries' plain values, nothing else.

    >>> lineage_of({"lineage": [{"run": "/a", "words": 7, "x": object()}, "junk"]})
    [{'run': '/a', 'words': 7}]
    """
    entries = state.get("lineage")
    if not isinstance(entries, list):
        return []
    plain = (str, int, float, type(None))
    return [{k: v for k, v in e.items() if isinstance(k, str) and isinstance(v, plain)} for e in entries
            if isinstance(e, dict)]


def read_parent(run_dir: Path | str, out_dir: Path) -> Parent:
    """The run `run_dir` for a new run in `out_dir` to continue; a UserError for a directory that
    holds no run, or for `out_dir` being the same directory (the parent is never written)."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).is_file():
        what = "does not exist" if not run_dir.exists() else f"is not a run directory (no {CHECKPOINT} in it)"
        raise UserError(f"--init '{run_dir}' {what}")
    if out_dir.exists() and out_dir.resolve() == run_dir.resolve():
        raise UserError(f"--out '{out_dir}' is the --init run itself: give a new directory (the run continued "
                        "from is only read)")
    state = load_checkpoint(run_dir / CHECKPOINT)
    return Parent(run_dir, state, load_model(state))


def vocabulary(parent: Parent, corpus: Corpus, cfg: Config, update_vocab: bool, dist=None) -> tuple[Vocab, int | None]:
    """The vocabulary of a run continuing `parent` on `corpus`, and the corpus's tokens (None when
    it is not counted): the parent's as it is, or with `update_vocab` grown by the new text."""
    if not update_vocab:
        return parent.vocab, None
    counted = dataclasses.replace(cfg, min_count=1, max_vocab=0)  # every word and its count
    new, tokens = build_vocabulary(corpus, counted, dist)
    return grown_vocab(parent.vocab, new, cfg.min_count, cfg.max_vocab), tokens


def grown_vocab(old: Vocab, new: Vocab, min_count: int, max_vocab: int = 0) -> Vocab:
    """`old` grown by the words counted in new text (`new`, most frequent first, every word): the
    old words stay, with the new count added; a new word joins when its new count reaches
    `min_count` (with `max_vocab`, the most frequent ones that fit). Sorted by the merged count;
    among equal counts the old words come first, in their order, then the new ones in theirs.

    >>> old = Vocab(["a", "b"], [5, 3])
    >>> grown = grown_vocab(old, Vocab(["c", "b", "d"], [4, 3, 1]), min_count=2)
    >>> grown.words, grown.counts.tolist()
    (['b', 'a', 'c'], [6, 5, 4])
    """
    merged = {w: int(c) for w, c in zip(old.words, old.counts)}
    added = []
    for w, c in zip(new.words, new.counts):
        if w in merged:
            merged[w] += int(c)
        elif c >= min_count:
            added.append((w, int(c)))
    if max_vocab:
        added = added[:max(0, max_vocab - len(old))]
    items = sorted(list(merged.items()) + added, key=lambda wc: -wc[1])  # stable
    return Vocab([w for w, _ in items], np.array([c for _, c in items], dtype=np.int64))


@torch.no_grad()
def carry_over(model: Model, objective: Objective, parent: Loaded, vocab: Vocab) -> int:
    """Copy `parent`'s trained rows into `model`, built fresh over `vocab`: the input row, output
    row and bias of every word the parent has (hs: its inner nodes' rows if the tree is the same,
    else none), and the objective's own parameters (nce's learnt log Z). Returns how many words
    it carried."""
    old = parent.vocab
    pairs = [(i, old.index[w]) for i, w in enumerate(vocab.words) if w in old.index]
    device = model.inp.device
    new_ids = torch.tensor([i for i, _ in pairs], dtype=torch.int64)
    old_ids = torch.tensor([j for _, j in pairs], dtype=torch.int64)
    model.inp[new_ids.to(device)] = parent.model.inp[old_ids].to(device)
    if model.subwords is not None:  # the n-gram buckets, hashed alike (minn, maxn and buckets stay: grow_config)
        model.bucket_seed = parent.model.bucket_seed  # the buckets neither stores stay as the parent's
        model.inp[len(vocab):] = parent.model.bucket_vectors(model.subwords.stored).to(device)
    if len(model.out) == len(vocab):  # one output row per word
        dst, src = new_ids, old_ids
    elif same_tree(old, vocab):  # hierarchical softmax: inner nodes, the same ones
        dst = src = torch.arange(len(model.out))
    else:  # another tree: its inner nodes start at zero, as a new run's
        dst = src = torch.zeros(0, dtype=torch.int64)
    model.out[dst.to(device)] = parent.model.out[src].to(device)
    if model.bias is not None and parent.model.bias is not None:
        model.bias[dst.to(device)] = parent.model.bias[src].to(device)
    objective.load_state_dict(parent.objective.state_dict())
    return len(pairs)


def same_tree(old: Vocab, new: Vocab) -> bool:
    """Whether the Huffman trees of two vocabularies are one: the same words in the same order,
    and counts that build the same tree (without --update-vocab they are the parent's own).

    >>> same_tree(Vocab(["a", "b", "c"], [5, 3, 2]), Vocab(["a", "b", "c"], [4, 3, 2]))
    True
    >>> same_tree(Vocab(["a", "b", "c"], [5, 3, 2]), Vocab(["a", "b", "c"], [6, 3, 2]))  # 2 + 3 now joins "a" from the other side
    False
    """
    if old.words != new.words:
        return False
    a, b = HuffmanTree.from_counts(old.counts), HuffmanTree.from_counts(new.counts)
    return np.array_equal(a.points, b.points) and np.array_equal(a.codes, b.codes)


@torch.no_grad()
def init_vectors(model: Model, vocab: Vocab, path: str | Path) -> torch.Tensor:
    """Give every word of `vocab` found in the word2vec file `path` (text or binary) its vector
    there as its input row, as gensim's intersect_word2vec_format does; return the rows set.
    A file of another dimension, or with no word of the vocabulary, is a UserError; a file that
    covers only part of the vocabulary is a warning that says how much."""
    vectors = load_word2vec(path)
    dim = model.inp.shape[1]
    if vectors.dim != dim:
        raise UserError(f"--init-vectors '{path}' holds vectors of dimension {vectors.dim}, the model's are {dim} "
                        f"(give --dim {vectors.dim}, or a file of dimension {dim})")
    pairs = [(i, vectors.index[w]) for i, w in enumerate(vocab.words) if w in vectors.index]
    if not pairs:
        raise UserError(f"--init-vectors '{path}': none of its {len(vectors):,} words is in the vocabulary "
                        f"({len(vocab):,} words)")
    rows = torch.tensor([i for i, _ in pairs], dtype=torch.int64)
    source = np.array([j for _, j in pairs], dtype=np.int64)
    model.inp[rows.to(model.inp.device)] = torch.from_numpy(vectors.matrix[source]).to(model.inp.device)
    if len(pairs) < len(vocab):
        warnings.warn(f"--init-vectors '{path}' has vectors for {len(pairs):,} of the {len(vocab):,} vocabulary words "
                      f"({len(pairs) / len(vocab):.1%}); the others start at random", UserWarning, stacklevel=2)
    return rows


class FrozenRows(Step):
    """A step path that keeps some input rows as they are (--lock-init: gensim's lockf 0.0).

    After every slice it trains, the frozen rows the slice could have written (the context words
    of a batch of examples; the words within `window` of the kernel's centre words) are copied
    back from a copy saved at the start; only those rows are touched. For a batched step, which
    computes a batch against the same tables, that is its step with the frozen rows' gradient
    masked; the kernel, which trains example by example, uses a frozen row moved by the slice's
    earlier examples until the slice ends. Either way the rows end every slice, and the run, bit
    for bit as they started (Hogwild threads included: each restores after its own writes).
    docs/results.md measures what it costs."""

    def __init__(self, step: Step, inp: torch.Tensor, rows: torch.Tensor):
        rows = _checked_rows(rows, len(inp)).to(inp.device)
        self.step, self.name, self.rows = step, step.name, rows
        self.slot = torch.full((len(inp),), -1, dtype=torch.int64, device=inp.device)  # row -> its saved copy
        self.slot[rows] = torch.arange(len(rows), device=inp.device)
        self.frozen = self.slot >= 0
        self.saved = inp[rows].clone()
        self.one_stream = inp.device.type != "cpu"  # a GPU: one worker, and a host sync costs

    def prepare(self, model):
        self.step.prepare(model)

    def slice_size(self, cfg):
        return self.step.slice_size(cfg)

    def subsample(self, ids, keep_prob, generator):
        return self.step.subsample(ids, keep_prob, generator)

    def work(self, kept, cfg, objective, generator):
        return self.step.work(kept, cfg, objective, generator)

    def __call__(self, model, objective, batch, lr, rule, lr_end=None):
        result = self.step(model, objective, batch, lr, rule, lr_end=lr_end)
        if self.one_stream and isinstance(batch, PaddedCentres):  # a whole chunk (the Triton kernel): every frozen row
            model.inp.index_copy_(0, self.rows, self.saved)
            return result
        ids = _input_rows(batch)
        if self.one_stream:  # no Hogwild threads: write every touched row back, without a host sync
            slots = self.slot[ids]
            rows = torch.where((slots >= 0)[:, None], self.saved[slots.clamp(min=0)], model.inp[ids])
            model.inp.index_copy_(0, ids, rows)  # a repeated id writes the same values
        else:  # only the frozen rows: other threads are training the others
            touched = torch.zeros(len(self.slot), dtype=torch.bool)
            touched[ids] = True
            rows = (touched & self.frozen).nonzero().squeeze(1)
            model.inp.index_copy_(0, rows, self.saved.index_select(0, self.slot[rows]))
        return result


def _input_rows(batch) -> torch.Tensor:
    """The input rows a slice of work can write: an example batch's context words, or the words
    within the window of the kernel's centre words (a sentence end counts as row 0: restoring a
    frozen row that was not written does nothing)."""
    if not isinstance(batch, (Centres, PaddedCentres)):
        return batch.context
    span = torch.arange(-batch.window, batch.window + 1, device=batch.positions.device)
    at = (batch.positions[:, None] + span).clamp_(0, len(batch.ids) - 1)
    return torch.take(batch.ids, at).clamp_(min=0).to(torch.int64).view(-1)


def _checked_rows(rows, size: int) -> torch.Tensor:
    """Row ids read back from a checkpoint (untrusted): a vector of distinct ids in [0, size)."""
    if (not isinstance(rows, torch.Tensor) or rows.dim() != 1 or rows.dtype != torch.int64
            or (len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= size)) or len(rows.unique()) != len(rows)):
        raise UserError("checkpoint's frozen rows are not distinct rows of its table")
    return rows
