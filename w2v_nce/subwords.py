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

A training run stores only the buckets its vocabulary's n-grams hash into (`compact`: on wiki17m's
71k words 15% of 2M buckets, docs/results.md): row V + k holds bucket `stored[k]`. The other
buckets are never trained, so their vectors stay their initial values, which `bucket_init` draws
from the bucket's id alone (the same value whether a row stores it or not): fastText's full
buckets x dim table is made from the stored rows and these wherever it is read (an unseen word's
n-grams, the .bin export, gensim's vectors_ngrams).

>>> compact = Subwords.build(["ab", "a"], minn=3, maxn=4, buckets=10, compact=True)
>>> compact.bag(0).tolist(), compact.bag(1).tolist(), compact.stored.tolist()  # 4 of the 10 buckets stored
([0, 2, 3, 4], [1, 5], [8, 2, 6, 0])
>>> compact.full_rows().tolist() == layout.rows.tolist()
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from w2v_nce.tensor_ops import take

BOW, EOW = "<", ">"  # fastText's word boundaries
FNV_OFFSET, FNV_PRIME = 2166136261, 16777619
GOLDEN, MIX1, MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
INIT_CHUNK = 1 << 13  # rows drawn (or copied) at a time: no temporary the size of a table


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
    stored: np.ndarray  # int64 [rows stored after the V word rows]: row V + k holds bucket stored[k]

    @classmethod
    def build(cls, words: list[str], minn: int, maxn: int, buckets: int, compact: bool = False) -> "Subwords":
        """The bags of `words`; row V + b holds bucket b (fastText's table), or with `compact` only
        the buckets the words use are stored, in the order the words first use them (the frequent
        words' n-grams together, as the words' rows are)."""
        offsets, rows = _layout(list(words), minn, maxn, buckets)
        vocab = len(words)
        if not compact:
            return cls(minn, maxn, buckets, offsets, rows, np.arange(buckets, dtype=np.int64))
        ngram = rows >= vocab
        used, first, inverse = np.unique(rows[ngram] - vocab, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty(len(used), dtype=np.int64)
        rank[order] = np.arange(len(used))
        rows[ngram] = vocab + rank[inverse.ravel()]
        return cls(minn, maxn, buckets, offsets, rows, used[order])

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

    def stored_as(self, stored: np.ndarray) -> "Subwords":
        """These bags over a table that stores the buckets `stored` (row V + k: bucket stored[k]; a
        checkpoint's, which may hold more buckets than the words use, as fastText's full table); a
        ValueError if a bucket of the bags is not among them."""
        if np.array_equal(stored, self.stored):
            return self
        vocab, rows = self.vocab_size, self.full_rows()
        ngram = rows >= vocab
        order = np.argsort(stored, kind="stable")
        at = np.minimum(np.searchsorted(stored[order], rows[ngram] - vocab), max(len(stored) - 1, 0))
        if not len(stored) and ngram.any() or not np.array_equal(stored[order[at]], rows[ngram] - vocab):
            raise ValueError("a bucket of the words' n-grams has no row")
        rows[ngram] = vocab + order[at]
        return Subwords(self.minn, self.maxn, self.buckets, self.offsets, rows, np.asarray(stored, dtype=np.int64))

    def full_rows(self) -> np.ndarray:
        """`rows` in fastText's layout, every bucket stored (n-gram rows V + bucket)."""
        vocab = self.vocab_size
        return np.where(self.rows >= vocab, vocab + self.stored[np.maximum(self.rows - vocab, 0)], self.rows)

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
    """The bags of a run's vocabulary (`cfg`: a w2v_nce.config.Config), only its buckets stored, or
    None without subwords."""
    return Subwords.build(words, cfg.minn, cfg.maxn, cfg.buckets, compact=True) if cfg.subwords else None


def bucket_init(seed: int, buckets: np.ndarray, dim: int) -> np.ndarray:
    """[len(buckets), dim] float32: the initial vectors of `buckets`, uniform in ±1/dim as every
    input row, each from its bucket's id and the seed alone (counter-based): bucket b's row is
    draws b*dim + 1 .. b*dim + dim of the splitmix64 stream started at `seed` (the fused kernel's
    generator), 24 bits each. So a bucket's vector is the same whether or not a run stores it.
    The fused kernel draws the same values (`fill_buckets`), faster.

    >>> bucket_init(1, np.array([7, 0]), 4).shape, float(abs(bucket_init(1, np.arange(1000), 4)).max()) < 0.25
    ((2, 4), True)
    """
    with np.errstate(over="ignore"):
        z = np.asarray(buckets, dtype=np.uint64)[:, None] * np.uint64(dim) + np.arange(1, dim + 1, dtype=np.uint64)
        z *= GOLDEN
        z += np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
        z ^= z >> np.uint64(30)
        z *= MIX1
        z ^= z >> np.uint64(27)
        z *= MIX2
        z ^= z >> np.uint64(31)
    u = (z >> np.uint64(40)).astype(np.float32)
    u *= np.float32(2.0 ** -23)  # 2 x a uniform in [0, 1)
    u -= np.float32(1)
    u /= np.float32(dim)
    return u


def fill_buckets(out: torch.Tensor, seed: int, buckets: np.ndarray, chunk: int = INIT_CHUNK) -> None:
    """out[i] = bucket_init of buckets[i] (`out`: [len(buckets), dim], rows of any stride, any
    device): drawn by the fused kernel where it is built (into `out` itself on the CPU), a chunk of
    rows at a time otherwise."""
    from w2v_nce import fused

    buckets = np.ascontiguousarray(buckets, dtype=np.int64)
    if fused.usable(out) and out.stride(1) == 1:
        fused.bucket_init(out, torch.from_numpy(buckets), seed)
        return
    for lo in range(0, len(buckets), chunk):
        ids = buckets[lo:lo + chunk]
        if fused.AVAILABLE:
            part = torch.empty(len(ids), out.shape[1])
            fused.bucket_init(part, torch.from_numpy(ids), seed)
        else:
            part = torch.from_numpy(bucket_init(seed, ids, out.shape[1]))
        out[lo:lo + chunk] = part.to(out)


def copy_buckets(out: torch.Tensor, buckets: np.ndarray, table: torch.Tensor, vocab: int, stored: np.ndarray,
                 seed: int, chunk: int = INIT_CHUNK) -> None:
    """out[i] = the vector of bucket buckets[i] in `table`, whose row vocab + k holds bucket stored[k]
    (Subwords.stored); a bucket it does not store has its initial value under `seed`. Rows are
    copied a chunk at a time (no temporary the size of a table)."""
    fill_buckets(out, seed, buckets)
    if not len(stored) or not len(buckets):
        return
    order = np.argsort(stored, kind="stable")
    at = np.minimum(np.searchsorted(stored[order], buckets), len(stored) - 1)
    found = np.flatnonzero(stored[order[at]] == buckets)
    for lo in range(0, len(found), chunk):
        rows = found[lo:lo + chunk]
        out[torch.from_numpy(rows).to(out.device)] = table[torch.from_numpy(vocab + order[at[rows]])].to(out)


def full_buckets(table: torch.Tensor, vocab: int, stored: np.ndarray, seed: int, buckets: int) -> np.ndarray:
    """[buckets, dim] float32, fastText's bucket table (gensim's vectors_ngrams) of a table that
    stores the buckets `stored` after its `vocab` word rows: those rows, and every other bucket's
    initial value under `seed`."""
    full = np.empty((buckets, table.shape[1]), dtype=np.float32)
    out = torch.from_numpy(full)
    fill_buckets(out, seed, np.arange(buckets, dtype=np.int64))
    for lo in range(0, len(stored), INIT_CHUNK):
        out[torch.from_numpy(stored[lo:lo + INIT_CHUNK])] = table[vocab + lo:vocab + lo + INIT_CHUNK].float().cpu()
    return full


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
