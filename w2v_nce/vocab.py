"""Vocabulary: counts, min_count / max_vocab pruning, subsampling, and corpus encoding.

>>> v = Vocab.from_counts(Counter({"a": 5, "b": 3, "c": 1}), min_count=2)
>>> v.words, v.counts.tolist()
(['a', 'b'], [5, 3])
>>> v.keep_prob(0.0).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from w2v_nce.corpus import read_pieces
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

    def encode(self, path: Path | str) -> Iterator[np.ndarray]:
        """The corpus as int32 word ids with SENTENCE_END between sentences; unknown words dropped.

        Yields one array per piece read, so memory stays bounded.
        """
        get = self.index.get
        for tokens, ends in read_pieces(path):
            ids = [i for i in map(get, tokens) if i is not None]
            if ends:
                ids.append(SENTENCE_END)
            if ids:
                yield np.asarray(ids, dtype=np.int32)
