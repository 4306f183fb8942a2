"""CBOW examples from a chunk of encoded corpus, as word2vec makes them, on the device.

For each chunk: drop occurrences by subsampling, then for every remaining word draw a
window radius uniformly from 1..window (word2vec's dynamic window) and take as context
the words within that radius in the same sentence. Examples are returned in corpus
order, in a ragged layout: `context[offsets[i]:offsets[i+1]]` belongs to `targets[i]`.
Words with no context at all are skipped, as word2vec does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from w2v_nce.vocab import SENTENCE_END


@dataclass
class Examples:
    targets: torch.Tensor  # [n] int64
    context: torch.Tensor  # [nnz] int64, grouped by example
    offsets: torch.Tensor  # [n + 1] int64, context[offsets[i]:offsets[i+1]] is example i's
    bag: torch.Tensor  # [nnz] int64, the example each context word belongs to
    host_offsets: np.ndarray | None = None  # offsets on the host, so slicing needs no device sync

    def __len__(self) -> int:
        return len(self.targets)

    def slice(self, start: int, stop: int) -> "Examples":
        """Examples start..stop-1, with offsets and bag ids rebased to 0."""
        if self.host_offsets is None:
            self.host_offsets = self.offsets.cpu().numpy()
        lo, hi = int(self.host_offsets[start]), int(self.host_offsets[stop])
        return Examples(
            targets=self.targets[start:stop],
            context=self.context[lo:hi],
            offsets=self.offsets[start : stop + 1] - lo,
            bag=self.bag[lo:hi] - start,
            host_offsets=self.host_offsets[start : stop + 1] - lo,
        )


def subsample(ids: torch.Tensor, keep_prob: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Drop each word occurrence with probability 1 - keep_prob[word]; sentence ends stay."""
    is_end = ids == SENTENCE_END
    draw = torch.rand(ids.shape, generator=generator, device=ids.device)
    return ids[is_end | (draw < keep_prob[ids.clamp(min=0)])]


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
    sentence = torch.cumsum(is_end.to(torch.int64), 0)[~is_end]
    words = ids[~is_end].to(torch.int64)
    n = len(words)
    if radius is None:
        radius = torch.randint(1, window + 1, (n,), generator=generator, device=device)
    shifts = torch.cat([torch.arange(-window, 0, device=device), torch.arange(1, window + 1, device=device)])
    pos = torch.arange(n, device=device)[:, None] + shifts[None, :]  # [n, 2*window]
    inside = (pos >= 0) & (pos < n) & (shifts.abs()[None, :] <= radius[:, None])
    pos.clamp_(0, max(n - 1, 0))
    inside &= sentence[pos] == sentence[:, None]
    targets, neighbours = words, words[pos]
    if shuffle:
        order = torch.randperm(n, generator=generator, device=device)
        targets, neighbours, inside = targets[order], neighbours[order], inside[order]
    counts = inside.sum(1)
    has_context = counts > 0
    context = neighbours[inside]
    counts = counts[has_context]
    offsets = torch.zeros(len(counts) + 1, dtype=torch.int64, device=device)
    torch.cumsum(counts, 0, out=offsets[1:])
    bag = torch.repeat_interleave(torch.arange(len(counts), device=device), counts)
    return Examples(targets=targets[has_context], context=context, offsets=offsets, bag=bag)
