"""Vocabulary: counts, min_count / max_vocab pruning, subsampling, and corpus encoding.

>>> v = Vocab.from_counts(Counter({"a": 5, "b": 3, "c": 1}), min_count=2)
>>> v.words, v.counts.tolist()
(['a', 'b'], [5, 3])
>>> v.keep_prob(0.0).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat
from typing import Iterator

import numpy as np

from w2v_nce.corpus import Corpus, count_tokens, count_words, describe, merge_counts, read_corpus
from w2v_nce.errors import UserError

SENTENCE_END = -1  # marker between sentences in an encoded corpus


def word_count(ids) -> int:
    """Words in encoded ids (a numpy array or tensor), sentence markers left out."""
    return int((ids != SENTENCE_END).sum())


@dataclass
class Vocab:
    words: list[str]
    counts: np.ndarray  # int64, sorted by decreasing count
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.counts = np.asarray(self.counts, dtype=np.int64)
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def from_counts(cls, counts: Counter, min_count: int = 5, max_vocab: int = 0) -> "Vocab":
        """Words with count >= min_count, most frequent first.

        Ties go to the word seen last first, as gensim orders them (`lexsort((-index, -count))`
        in `sort_by_descending_frequency`), so that the first 30,000 words - what analogy
        evaluation uses - are the same set as gensim's.
        """
        seen = [(w, c, i) for i, (w, c) in enumerate(counts.items()) if c >= min_count]
        kept = [(w, c) for w, c, _ in sorted(seen, key=lambda wci: (-wci[1], -wci[2]))]
        if max_vocab:
            kept = kept[:max_vocab]
        if not kept:
            most = max(counts.values(), default=0)
            raise UserError(
                f"the vocabulary is empty: no word occurs min_count={min_count} times "
                f"(the most frequent occurs {most} times); lower --min-count"
            )
        return cls([w for w, _ in kept], np.array([c for _, c in kept], dtype=np.int64))

    def keep_prob(self, sample: float) -> np.ndarray:
        """word2vec's subsampling: keep an occurrence of w with prob sqrt(t/f) + t/f (capped at 1).

        f is w's share of all in-vocabulary tokens and t = `sample`; 0 turns it off.
        """
        if sample <= 0:
            return np.ones(len(self), dtype=np.float64)
        ratio = sample * self.counts.sum() / self.counts
        return np.minimum(1.0, np.sqrt(ratio) + ratio)

    def encode(self, corpus: Corpus, tokenizer: str = "whitespace") -> Iterator[np.ndarray]:
        """The corpus as int32 word ids with SENTENCE_END between sentences; unknown words dropped.

        Yields one array per piece read, so memory stays bounded.
        """
        get = self.index.get
        for tokens, ends in read_corpus(corpus, tokenizer):
            ids = np.fromiter(map(get, tokens, repeat(-1)), dtype=np.int32, count=len(tokens))  # (no per-token bytecode)
            ids = ids[ids >= 0]
            if ends:
                ids = np.append(ids, np.int32(SENTENCE_END))
            if len(ids):
                yield ids


def build_vocabulary(corpus: Corpus, cfg, dist=None) -> tuple[Vocab, int]:
    """The vocabulary of `corpus` (min_count, max_vocab, counted within `vocab_budget` types) and
    its number of tokens. Under torchrun (`dist`, w2v_nce.distributed.Dist) each rank counts its
    shard, the master merges the counts one rank at a time within the budget, in rank order (ties
    then go by first sight, as in one process), and every rank gets the master's vocabulary."""
    if dist is None or not dist.group:
        counts, tokens = count_words(corpus, cfg.vocab_budget, cfg.tokenizer)
        return Vocab.from_counts(counts, cfg.min_count, cfg.max_vocab), tokens

    mine = dist.together(lambda: count_tokens(dist.shard(corpus), cfg.vocab_budget, cfg.tokenizer))
    parts = dist.to_master(mine)
    del mine  # sent, or in `parts`: free it while the master merges

    def build() -> tuple[list[str], np.ndarray, int]:  # on the master
        sizes: list[int] = []

        def counted() -> Iterator[Counter]:
            for part, n in parts:
                sizes.append(n)
                yield part

        merged = merge_counts(counted(), cfg.vocab_budget)
        if sum(sizes) == 0:
            raise UserError(f"corpus '{describe(corpus)}' has no words")
        vocab = Vocab.from_counts(merged, cfg.min_count, cfg.max_vocab)
        return vocab.words, vocab.counts, sum(sizes)

    words, counts, total = dist.from_master(build)
    return Vocab(words, counts), total


class _HeapItem(tuple):
    """(count, node): compared by count alone, as gensim's Heapitem is, so that ties fall where
    the heap leaves them and the codes equal gensim's."""

    def __lt__(self, other):
        return self[0] < other[0]


@dataclass
class HuffmanTree:
    """word2vec's Huffman tree over a vocabulary, as word2vec.c and gensim build it.

    Word w's path from the root visits the inner nodes points[w, :lengths[w]] (rows of the
    V - 1 output vectors, the root is V - 2) and turns left (code 0) or right (code 1) at each:
    codes[w, :lengths[w]]. Entries past a word's length are padding (0).
    """

    points: np.ndarray  # [V, L] int64
    codes: np.ndarray  # [V, L] uint8
    lengths: np.ndarray  # [V] int64

    @property
    def inner_nodes(self) -> int:
        return len(self.lengths) - 1

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> "HuffmanTree":
        """gensim's `_build_heap` / `_assign_binary_codes`: a min-heap of nodes ordered by count
        alone, the two smallest merged into inner node V + i, the first popped on the 0 side.

        >>> t = HuffmanTree.from_counts(np.array([5, 3, 2, 1]))
        >>> t.codes.tolist(), t.points.tolist(), t.lengths.tolist()
        ([[0, 0, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]], [[2, 0, 0], [2, 1, 0], [2, 1, 0], [2, 1, 0]], [1, 2, 3, 3])
        """
        counts = np.asarray(counts, dtype=np.int64)
        v = len(counts)
        if v < 2:
            raise UserError(f"hierarchical softmax needs at least 2 words in the vocabulary, got {v}")
        heap = [_HeapItem((int(c), i)) for i, c in enumerate(counts)]
        heapq.heapify(heap)
        parent = np.zeros(2 * v - 1, dtype=np.int64)
        bit = np.zeros(2 * v - 1, dtype=np.uint8)
        for i in range(v - 1):
            (c1, a), (c2, b) = heapq.heappop(heap), heapq.heappop(heap)
            parent[a], parent[b], bit[b] = v + i, v + i, 1
            heapq.heappush(heap, _HeapItem((c1 + c2, v + i)))
        root = 2 * v - 2
        depth = np.zeros(2 * v - 1, dtype=np.int64)
        for node in range(root - 1, -1, -1):  # a parent is always created after its children
            depth[node] = depth[parent[node]] + 1
        lengths = depth[:v].copy()
        width = int(lengths.max())
        points = np.zeros((v, width), dtype=np.int64)
        codes = np.zeros((v, width), dtype=np.uint8)
        node = np.arange(v)
        for up in range(width):  # walk every leaf's path upwards at once, filling from its end
            live = np.flatnonzero(lengths > up)
            at = lengths[live] - 1 - up
            points[live, at] = parent[node[live]] - v
            codes[live, at] = bit[node[live]]
            node[live] = parent[node[live]]
        return cls(points, codes, lengths)
