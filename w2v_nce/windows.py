"""Training examples from a chunk of encoded corpus, as word2vec makes them, on the device.

For each chunk: drop occurrences by subsampling, then for every remaining word (the centre)
draw a window radius uniformly from 1..window (word2vec's dynamic window) and take the words
within that radius in the same sentence. An example is a bag of input words and a target
word, in a ragged layout: `context[offsets[i]:offsets[i+1]]` is the bag of `targets[i]`.

  cbow       one example per centre word: the bag is its window, the target the centre.
  skipgram   one example per (window word, centre word) pair: the bag is the window word
             alone, the target the centre. This is word2vec.c's and gensim's sg=1 loop, which
             trains syn0[window word] against the centre word's output row(s); summed over
             the corpus it is the same set of pairs as "predict the window from the centre".
             With subwords the pairs turn round, as fastText's and gensim FastText's skip-gram
             have them (`centre_input`): the centre word is the bag and each window word a target,
             so that one bag of n-gram rows serves all of a centre's examples.

Words with no context at all are skipped, as word2vec does. `EXAMPLES` maps `Config.arch`
to its example maker for the batched step; the kernel makes the same examples itself from
`Centres` (`KERNEL_SKIPGRAM` is its flag for each arch).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from w2v_nce.tensor_ops import take
from w2v_nce.vocab import SENTENCE_END


@dataclass
class Examples:
    targets: torch.Tensor  # [n] int64
    context: torch.Tensor  # [nnz] int64, grouped by example
    offsets: torch.Tensor  # [n + 1] int64, context[offsets[i]:offsets[i+1]] is example i's
    host_offsets: np.ndarray | None = None  # offsets on the host, so slicing needs no device sync
    candidates: torch.Tensor | None = None  # [n, 1+k] output words to score, drawn ahead (optional)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def sizes(self) -> torch.Tensor:
        """[n] context words per example."""
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def bag(self) -> torch.Tensor:
        """[nnz] the example each context word belongs to (derived: a batch's is cheap to make)."""
        examples = torch.arange(len(self), device=self.offsets.device)
        return torch.repeat_interleave(examples, self.sizes, output_size=len(self.context))

    def _host(self) -> np.ndarray:
        if self.host_offsets is None:
            self.host_offsets = self.offsets.cpu().numpy()
        return self.host_offsets

    @property
    def max_size(self) -> int:
        """The largest context (from the host copy of the offsets: no device sync)."""
        return int(np.diff(self._host()).max()) if len(self) else 0

    def slice(self, start: int, stop: int) -> "Examples":
        """Examples start..stop-1, with offsets rebased to 0."""
        host = self._host()
        lo, hi = int(host[start]), int(host[stop])
        return Examples(
            targets=self.targets[start:stop],
            context=self.context[lo:hi],
            offsets=self.offsets[start : stop + 1] - lo,
            host_offsets=self.host_offsets[start : stop + 1] - lo,
            candidates=None if self.candidates is None else self.candidates[start:stop],
        )


def _kept(ids: torch.Tensor, keep_prob: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    is_end = ids == SENTENCE_END
    draw = torch.rand(ids.shape, generator=generator, device=ids.device)
    return is_end | (draw < take(keep_prob, ids.clamp(min=0)))


def subsample(ids: torch.Tensor, keep_prob: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Drop each word occurrence with probability 1 - keep_prob[word]; sentence ends stay."""
    return ids.masked_select(_kept(ids, keep_prob, generator))


def subsample_padded(ids: torch.Tensor, keep_prob: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """`subsample`'s result (the same draws) as int32, followed by sentence ends up to len(ids): a
    fixed size, so a GPU makes it without waiting (masked_select syncs to learn its length).

    >>> subsample_padded(torch.tensor([4, -1, 5, 6]), torch.tensor([1.0] * 4 + [0.0, 1.0, 1.0]), None).tolist()
    [-1, 5, 6, -1]
    """
    keep = _kept(ids, keep_prob, generator)
    slot = torch.where(keep, torch.cumsum(keep, 0) - 1, len(ids))  # the dropped all land in one extra slot
    padded = torch.full((len(ids) + 1,), SENTENCE_END, dtype=torch.int32, device=ids.device)
    padded.scatter_(0, slot, ids.to(torch.int32))
    return padded[:-1]


def cbow_examples(
    ids: torch.Tensor,
    window: int,
    generator: torch.Generator | None,
    radius: torch.Tensor | None = None,
    shuffle: bool = False,
) -> Examples:
    """CBOW examples from `ids` (already subsampled; SENTENCE_END between sentences).

    `radius` (one per word, in 1..window) is drawn here unless given (tests give it).
    With `shuffle`, the examples come in a random order instead of corpus order, so a
    large batch is not made of overlapping windows that all update the same words.
    """
    device = ids.device
    is_end = ids == SENTENCE_END
    sentence = torch.cumsum(is_end.to(torch.int64), 0).masked_select(~is_end)
    words = ids.masked_select(~is_end).to(torch.int64)
    n = len(words)
    if radius is None:
        radius = torch.randint(1, window + 1, (n,), generator=generator, device=device)
    # How far each word's window reaches left and right, clipped at its sentence's ends.
    _, lengths = torch.unique_consecutive(sentence, return_counts=True)
    start = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    center = torch.arange(n, device=device)
    left = torch.minimum(radius, center - start)
    right = torch.minimum(radius, start + torch.repeat_interleave(lengths, lengths) - 1 - center)
    counts = left + right
    keep = counts > 0  # a word alone in its sentence has no context: no example
    center, left, counts = (x.masked_select(keep) for x in (center, left, counts))
    if shuffle:
        order = torch.randperm(len(center), generator=generator, device=device)
        center, left, counts = (take(x, order) for x in (center, left, counts))
    # Ragged layout, built in 1-D with one cumulative sum: example e's entries are the word
    # positions first[e]..last[e] in steps of 1, stepping over the center (a step of 2). At
    # each example's first entry the step is the jump back from the previous example's last.
    right = counts - left
    first = torch.where(left > 0, center - left, center + 1)
    last = torch.where(right > 0, center + right, center - 1)
    offsets = torch.zeros(len(counts) + 1, dtype=torch.int64, device=device)
    torch.cumsum(counts, 0, out=offsets[1:])
    steps = torch.ones(int(offsets[-1]), dtype=torch.int64, device=device)
    jump = first.clone()
    jump[1:] -= last[:-1]
    steps.index_copy_(0, offsets[:-1], jump)
    straddle = (left > 0) & (right > 0)  # the center lies inside the run: step over it
    steps.index_fill_(0, (offsets[:-1] + left).masked_select(straddle), 2)
    context = take(words, torch.cumsum(steps, 0))
    return Examples(targets=take(words, center), context=context, offsets=offsets)


def skipgram_examples(
    ids: torch.Tensor,
    window: int,
    generator: torch.Generator | None,
    radius: torch.Tensor | None = None,
    shuffle: bool = False,
    centre_input: bool = False,
) -> Examples:
    """Skip-gram examples from `ids`: each CBOW window split into (window word, centre) pairs,
    bags of one; with `shuffle`, the centres in a random order, each centre's pairs together
    (as word2vec.c and gensim take them: the centre's output rows stay in cache across its pairs).
    With `centre_input`, (centre, window word) pairs: fastText's orientation.

    >>> pairs = skipgram_examples(torch.tensor([7, 8, 9]), 1, None, radius=torch.tensor([1, 1, 1]))
    >>> list(zip(pairs.context.tolist(), pairs.targets.tolist()))
    [(8, 7), (7, 8), (9, 8), (8, 9)]
    """
    bags = cbow_examples(ids, window, generator, radius, shuffle=shuffle)
    targets = bags.targets.repeat_interleave(bags.sizes, output_size=len(bags.context))
    context = bags.context
    if centre_input:
        context, targets = targets, context
    offsets = torch.arange(len(context) + 1, device=context.device)
    return Examples(targets=targets, context=context, offsets=offsets)


EXAMPLES = {"cbow": cbow_examples, "skipgram": skipgram_examples}  # keyed by config.ARCHS


def example_maker(arch: str, subwords: bool = False) -> Callable[..., Examples]:
    """The example maker of `arch`; with subwords skip-gram's pairs turn round (the centre is the input)."""
    if arch == "skipgram" and subwords:
        return functools.partial(skipgram_examples, centre_input=True)
    return EXAMPLES[arch]

KERNEL_SKIPGRAM = {"cbow": False, "skipgram": True}  # the window kernel's flag for each arch

_GOLDEN = 0x9E3779B97F4A7C15


@dataclass
class Centres:
    """A chunk for the CPU kernel's own example maker (w2v_nce.fused.window_sgd): the subsampled
    ids and the positions of the centre words in training order; the kernel draws the radii and
    makes the windows (or skip-gram pairs) itself, and says how many examples it trained.
    `slice` takes centres as Examples.slice takes examples; each slice has its own random stream,
    derived from the chunk's seed and its start."""

    ids: torch.Tensor  # [n] int32, SENTENCE_END between sentences
    positions: torch.Tensor  # [m] int64 positions of the centre words in ids
    window: int
    skipgram: bool
    seed: int
    shared_noise: bool = False  # skip-gram: one draw of noise words per window, for all its examples

    @classmethod
    def of(cls, kept: torch.Tensor, window: int, arch: str, generator: torch.Generator | None,
           shuffle: bool = False, shared_noise: bool = False, block: int = 1) -> "Centres":
        """With `shuffle`, the centres in a random order, or with `block` > 1 runs of `block`
        consecutive centres in a random order (neighbouring windows share their rows' cache lines).

        >>> kept = torch.arange(10)
        >>> Centres.of(kept, 2, "cbow", torch.Generator().manual_seed(0), True, block=4).positions.tolist()
        [8, 9, 0, 1, 2, 3, 4, 5, 6, 7]
        """
        positions = torch.nonzero(kept != SENTENCE_END).squeeze(1)
        if shuffle and block > 1:
            starts = torch.arange(0, len(positions), block)
            runs = take(starts, torch.randperm(len(starts), generator=generator))
            order = (runs[:, None] + torch.arange(block)).reshape(-1)
            positions = take(positions, order.masked_select(order < len(positions)))
        elif shuffle:
            positions = take(positions, torch.randperm(len(positions), generator=generator))
        seed = int(torch.randint(1 << 62, (1,), generator=generator))
        return cls(kept.to(torch.int32).contiguous(), positions.contiguous(), window, KERNEL_SKIPGRAM[arch], seed,
                   shared_noise)

    def __len__(self) -> int:
        return len(self.positions)

    def slice(self, start: int, stop: int) -> "Centres":
        seed = (self.seed + start * _GOLDEN) & ((1 << 64) - 1)
        return Centres(self.ids, self.positions[start:stop], self.window, self.skipgram, seed, self.shared_noise)


@dataclass
class PaddedCentres:
    """A chunk for the GPU's window kernel (w2v_nce.triton_kernel), made on the device without a
    sync: `Centres` at the chunk's own size. `ids` is subsample_padded's (sentence ends after the
    kept words), `positions` every position of it in training order (the kernel skips those that
    hold a sentence end), and `seed` a device tensor; a slice's streams follow from its `start`
    in the chunk as Centres.slice's do."""

    ids: torch.Tensor  # [n] int32
    positions: torch.Tensor  # [n] int64
    window: int
    skipgram: bool
    seed: torch.Tensor  # [1] int64, the bits of the chunk's uint64 seed
    shared_noise: bool = False  # skip-gram: one draw of noise words per window, as Centres'
    start: int = 0

    @classmethod
    def of(cls, kept: torch.Tensor, window: int, arch: str, generator: torch.Generator | None,
           shuffle: bool = False, shared_noise: bool = False) -> "PaddedCentres":
        n, device = len(kept), kept.device
        positions = torch.randperm(n, generator=generator, device=device) if shuffle else torch.arange(n, device=device)
        seed = torch.randint(1 << 62, (1,), generator=generator, device=device)
        return cls(kept.to(torch.int32).contiguous(), positions, window, KERNEL_SKIPGRAM[arch], seed, shared_noise)

    def __len__(self) -> int:
        return len(self.positions)

    def slice(self, start: int, stop: int) -> "PaddedCentres":
        return PaddedCentres(self.ids, self.positions[start:stop], self.window, self.skipgram, self.seed,
                             self.shared_noise, self.start + start)
