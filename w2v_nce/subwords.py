"""fastText's subword model: a word's bag of input rows, its own row and its character n-grams'.

A word w is wrapped as `<w>`; its n-grams are the runs of minn..maxn characters of `<w>` (characters,
not UTF-8 bytes; the whole `<w>` is one when its length is in range, and with minn = 1 the lone `<`
and `>` are not). Each n-gram's UTF-8 bytes are hashed with fastText's 32-bit FNV-1a, each byte
sign-extended first as fastText's `uint32_t(int8_t(c))` does; its row is V + hash % buckets, after
the V word rows. This is Dictionary::computeSubwords and ::hash of fastText's dictionary.cc, and
gensim's compute_ngrams_bytes and ft_hash_bytes: the same rows, so either reads our tables.

>>> ngrams("où", 3, 4)
['<où', '<où>', 'où>']
>>> ngrams("où", 3, 4) == [g for g in ngrams("où", 1, 4) if len(g) >= 3]
True
>>> ft_hash(b"<a>"), ft_hash("é".encode())
(2359087600, 1023043777)
>>> layout = Subwords.build(["ab", "a"], minn=3, maxn=4, buckets=10)
>>> layout.bag(0).tolist(), layout.bag(1).tolist()  # row 0 "ab", then V + the buckets of <ab <ab> ab>
([0, 10, 4, 8], [1, 2])

`Subwords.build` lays out the bags of a whole vocabulary at once as a CSR (`offsets[V + 1]`,
`rows[]`): word i's bag is rows[offsets[i]:offsets[i+1]], its own row first, then its n-grams'
in fastText's order (by first character, then length). A repeated n-gram keeps every copy, as
fastText's pushHash does, so its row counts once per copy in the word's mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from w2v_nce.tensor_ops import take

BOW, EOW = "<", ">"  # fastText's word boundaries
FNV_OFFSET, FNV_PRIME = 2166136261, 16777619


def ft_hash(data: bytes) -> int:
    """fastText's hash of an n-gram's UTF-8 bytes: 32-bit FNV-1a over sign-extended bytes."""
    h = FNV_OFFSET
    for byte in data:
        h = ((h ^ (byte | 0xFFFFFF00 if byte >= 0x80 else byte)) * FNV_PRIME) & 0xFFFFFFFF
    return h


def ngrams(word: str, minn: int, maxn: int) -> list[str]:
    """The character n-grams of `<word>`, in fastText's order (computeSubwords)."""
    wrapped = BOW + word + EOW
    found = []
    for i in range(len(wrapped)):
        for n in range(1, maxn + 1):
            if i + n > len(wrapped):
                break
            if n >= minn and not (n == 1 and (i == 0 or i + n == len(wrapped))):
                found.append(wrapped[i:i + n])
    return found


def ngram_buckets(word: str, minn: int, maxn: int, buckets: int) -> list[int]:
    """The buckets of `word`'s n-grams (its input rows are V + these), in fastText's order."""
    return [ft_hash(g.encode("utf-8", "surrogatepass")) % buckets for g in ngrams(word, minn, maxn)]


def _encoded(words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every `<word>` in UTF-8, end to end, and where each starts (plus the total at the end)."""
    raw = [(BOW + w + EOW).encode("utf-8", "surrogatepass") for w in words]
    starts = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, raw), dtype=np.int64, count=len(raw)), out=starts[1:])
    return np.frombuffer(b"".join(raw), dtype=np.uint8), starts


def _layout(words: list[str], minn: int, maxn: int, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, rows) of every word's bag, vectorised over the vocabulary: FNV-1a hashes the n-grams
    that start at one character by extending those one character shorter, so all n-grams of length
    n are hashed at once from those of length n - 1, one pass per byte of their last character."""
    vocab = len(words)
    data, word_start = _encoded(words)
    char_pos = np.flatnonzero((data & 0xC0) != 0x80)  # a character starts at every non-continuation byte
    first_char = np.searchsorted(char_pos, word_start)  # [V + 1]: each word's first character, then the end
    chars = np.diff(first_char)
    char_word = np.repeat(np.arange(vocab), chars)
    within = np.arange(len(char_pos)) - np.repeat(first_char[:-1], chars)  # a character's place in its word
    left = np.repeat(chars, chars) - within  # characters from this one to its word's end
    ends = np.append(char_pos, len(data))  # character c's bytes are data[ends[c]:ends[c + 1]]
    signed = data.astype(np.uint32)
    signed[data >= 0x80] |= np.uint32(0xFFFFFF00)  # fastText's uint32_t(int8_t(byte))
    h = np.full(len(char_pos), FNV_OFFSET, dtype=np.uint32)
    span = np.empty((len(char_pos), max(maxn - minn + 1, 0)), dtype=np.int64)
    keep = np.zeros(span.shape, dtype=bool)
    prime = np.uint32(FNV_PRIME)
    for n in range(1, maxn + 1):
        live = np.flatnonzero(left >= n)  # n-grams of length n that fit in their word
        last = live + n - 1  # their n-th character
        lo, hi = ends[last], ends[last + 1]
        for b in range(int((hi - lo).max(initial=0))):
            more = b < hi - lo
            at = live[more]
            h[at] = (h[at] ^ signed[lo[more] + b]) * prime
        if n >= minn:
            col = n - minn
            span[live, col] = h[live] % np.uint32(buckets) if buckets else 0
            ok = np.ones(len(live), dtype=bool)
            if n == 1:  # a lone '<' or '>' is no n-gram (fastText)
                ok = (within[live] != 0) & (left[live] != 1)
            keep[live, col] = ok
    counts = 1 + np.bincount(char_word, weights=keep.sum(1), minlength=vocab).astype(np.int64)
    offsets = np.zeros(vocab + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    rows = np.empty(int(offsets[-1]), dtype=np.int64)
    own = offsets[:-1]
    rows[own] = np.arange(vocab)
    others = np.ones(len(rows), dtype=bool)
    others[own] = False
    rows[others] = vocab + span[keep]  # row-major: by first character, then length, as fastText
    return offsets, rows


@dataclass(frozen=True)
class Subwords:
    """The bags of a vocabulary's words: word i's input rows are rows[offsets[i]:offsets[i+1]]."""

    minn: int
    maxn: int
    buckets: int
    offsets: np.ndarray  # int64 [V + 1]
    rows: np.ndarray  # int64 [offsets[-1]]

    @classmethod
    def build(cls, words: list[str], minn: int, maxn: int, buckets: int) -> "Subwords":
        offsets, rows = _layout(list(words), minn, maxn, buckets)
        return cls(minn, maxn, buckets, offsets, rows)

    @property
    def vocab_size(self) -> int:
        return len(self.offsets) - 1

    @property
    def sizes(self) -> np.ndarray:
        """[V] rows in each word's bag."""
        return np.diff(self.offsets)

    @property
    def max_rows(self) -> int:
        """The largest bag."""
        return int(self.sizes.max(initial=0))

    def bag(self, word: int) -> np.ndarray:
        return self.rows[self.offsets[word]:self.offsets[word + 1]]

    def oov_rows(self, word: str) -> list[int]:
        """The input rows of a word outside the vocabulary: its n-grams' (fastText's getSubwords)."""
        return [self.vocab_size + b for b in ngram_buckets(word, self.minn, self.maxn, self.buckets)]

    def repeat_factors(self) -> np.ndarray:
        """[V] float32: Σ m_r² / n over the distinct rows r of each word's bag of n entries, row r
        m_r times (1 without repeats): how far the bag's mean moves when every entry moves by e, in
        units of e (w2v_nce.fused.window_sgd keeps a skip-gram bag's mean up to date with it)."""
        vocab, total = self.vocab_size, self.vocab_size + self.buckets
        word = np.repeat(np.arange(vocab, dtype=np.int64), self.sizes)
        keys, m = np.unique(word * total + self.rows, return_counts=True)
        squares = np.bincount(keys // total, weights=m.astype(np.float64) ** 2, minlength=vocab)
        return (squares / self.sizes).astype(np.float32)


def bag_means(table: torch.Tensor, offsets: torch.Tensor, rows: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """[V, dim] the mean of each bag's rows of `table` (bag i: rows[offsets[i]:offsets[i+1]]), a chunk
    of bags at a time: embedding_bag would copy a table whose rows are padded (Model.align_rows)
    whole, and the bucket table is the largest thing a run holds."""
    vocab = len(offsets) - 1
    means = torch.empty(vocab, table.shape[1], dtype=table.dtype, device=table.device)
    for lo in range(0, vocab, chunk):
        hi = min(lo + chunk, vocab)
        first, last = int(offsets[lo]), int(offsets[hi])
        gathered = table.index_select(0, rows[first:last])
        means[lo:hi] = F.embedding_bag(torch.arange(last - first, device=table.device), gathered,
                                       offsets[lo:hi] - first, mode="mean")
    return means


def subwords_for(cfg, words: list[str]) -> Subwords | None:
    """The bags of a run's vocabulary (`cfg`: a w2v_nce.config.Config), or None without subwords."""
    return Subwords.build(words, cfg.minn, cfg.maxn, cfg.buckets) if cfg.subwords else None


def expand_bags(context: torch.Tensor, offsets: torch.Tensor, sub_offsets: torch.Tensor,
                sub_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bags of words as bags of input rows: every word of context[offsets[i]:offsets[i+1]] replaced
    by its rows (fastText's bow: all rows of all the words), on the tensors' device.

    >>> layout = Subwords.build(["ab", "a"], minn=3, maxn=4, buckets=10)
    >>> rows, new = expand_bags(torch.tensor([1, 0, 1]), torch.tensor([0, 2, 3]),
    ...                         torch.from_numpy(layout.offsets), torch.from_numpy(layout.rows))
    >>> rows.tolist(), new.tolist()
    ([1, 2, 0, 10, 4, 8, 1, 2], [0, 6, 8])
    """
    start = take(sub_offsets, context)
    counts = take(sub_offsets, context + 1) - start
    ends = torch.zeros(len(context) + 1, dtype=torch.int64, device=context.device)
    torch.cumsum(counts, 0, out=ends[1:])
    total = int(ends[-1])
    shift = torch.repeat_interleave(start - ends[:-1], counts, output_size=total)
    rows = take(sub_rows, torch.arange(total, device=context.device) + shift)
    return rows, take(ends, offsets)
