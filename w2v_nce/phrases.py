"""Phrase detection (word2vec.c's word2phrase, gensim's Phrases): count words and adjacent word
pairs, score the pairs, and join the pairs that score above a threshold into one token
("new york" -> "new_york"); run it again on its own output for longer phrases.

A pass counts in bounded memory and applies its phrases as a filter on a stream of
(tokens, ends_sentence) pieces, so the trainer needs no intermediate file:

>>> corpus = [["new", "york", "is", "big"], ["i", "like", "new", "york"], ["big", "is", "new"], ["i", "like", "york"]]
>>> model = Phrases.learn(corpus, passes=1, min_count=1, threshold=1.0, scoring="gensim")
>>> model.export()
{'i_like': 3.5, 'new_york': 1.5555555555555554}
>>> model.apply(["new", "york", "and", "new", "jersey"])
['new_york', 'and', 'new', 'jersey']
>>> list(model.transform(corpus))[1]
['i_like', 'new_york']

How it matches the references (the tests check each against gensim and a transcription of
word2phrase.c):

- A pair (a, b) is scored from the count of a, of b, of the pair and of all tokens, by
  `word2vec_score` (word2phrase.c, in its float32), `gensim_score` (gensim's original_scorer, with
  its len_vocab: unigram types plus pair types) or `npmi_score`; it is a phrase when the score is
  above the threshold (`>`, in both references).
- With connector words (gensim's ENGLISH_CONNECTOR_WORDS, say) a pair is two words with only
  connectors between them ("bank of america"); connectors are never counted, start or end one.
- Applied left to right, greedily: a word joined into a phrase does not start the next one, so
  "a b c" with both pairs phrases becomes "a_b c" (both references).
- Pairs never span a sentence (a line); a sentence read in several pieces (a long line comes in
  4 MB blocks) is one sentence here. The end of a file ends its last line.
- Counting keeps at most `max_vocab` unigram and pair types, as gensim's max_vocab_size does: after
  a sentence that leaves more, every type counted fewer than `min_reduce` times is dropped and
  min_reduce grows by one (it starts at 1, so gensim's first prune drops nothing). Only a sentence
  longer than a block (BLOCK_TOKENS tokens) is also pruned inside, where gensim's memory would grow.

Where they differ, on purpose (docs/results.md, "Phrases"):

- word2phrase.c also counts the pair (last word of a line, first word of the next) — its `start`
  flag is reset before it is tested — though it never joins such a pair; we do not count it. On
  a corpus that is one line (text8) the counts are the same.
- word2phrase.c truncates words to 58 and pairs to 59 bytes, and prunes (ReduceVocab: counts
  <= min_reduce, after every word, past 350M entries); we keep tokens whole and prune as gensim.
- gensim (and word2phrase.c) key a pair by the string "a_b", so a token that already contains the
  delimiter (a phrase of an earlier pass) shares its count with the pair it spells, and gensim's
  frozen model splits "new_york_city" at every "_" to score it as (new, city); we count tokens and
  pairs apart. The phrases are the same on text whose tokens do not contain the delimiter, so in a
  first pass; later passes equal word2phrase.c's on wiki65m's first 10M tokens (docs/results.md).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from w2v_nce.atomic import atomic_path
from w2v_nce.config import PHRASE_SCORINGS, PHRASE_THRESHOLDS, Config, check_phrase_options
from w2v_nce.corpus import (BLOCK_BYTES, Corpus, Stream, _is_path_list, corpus_files, describe, joined_sentences,
                             read_corpus, read_pieces)
from w2v_nce.errors import UserError

SCORINGS = PHRASE_SCORINGS
DEFAULT_THRESHOLD = PHRASE_THRESHOLDS  # word2phrase's, gensim's, a middling NPMI: declared in config.py
DEFAULT_MAX_VOCAB = Config.phrase_max_vocab  # gensim's max_vocab_size
BLOCK_TOKENS = 1 << 18  # tokens counted or joined at once (numpy arrays of this length)
FORMAT = "w2v-nce phrases"
PHRASE_MODEL = "phrases.json"  # a run's phrase model (train --phrases N), in its directory


def english_connectors() -> frozenset:
    """gensim's ENGLISH_CONNECTOR_WORDS: articles, some prepositions, "and", "or"."""
    from gensim.models.phrases import ENGLISH_CONNECTOR_WORDS

    return ENGLISH_CONNECTOR_WORDS


CONNECTOR_SETS: dict[str, Callable[[], frozenset]] = {"none": frozenset, "english": english_connectors}


# --- Scores: the references' formulas, over arrays of counts ---------------------------------------

def word2vec_score(n_ab, n_a, n_b, min_count: int, train_words: int) -> np.ndarray:
    """word2phrase.c's score, (n_ab - min_count) / n_a / n_b * train_words, in its float32
    arithmetic; 0 where a count is below min_count (the pair or a word is not in its vocabulary).
    `train_words` counts every token.

    >>> word2vec_score(np.array([10, 3]), np.array([20, 20]), np.array([30, 30]), 5, 1000)
    array([8.333334, 0.      ], dtype=float32)
    """
    n_ab, n_a, n_b = (np.asarray(x, dtype=np.int64) for x in (n_ab, n_a, n_b))
    f32 = np.float32
    with np.errstate(divide="ignore", invalid="ignore"):
        score = (n_ab - min_count).astype(f32) / n_a.astype(f32) / n_b.astype(f32) * f32(train_words)
    known = (n_ab >= min_count) & (n_a >= min_count) & (n_b >= min_count)
    return np.where(known, score, f32(0))


def gensim_score(n_ab, n_a, n_b, min_count: int, len_vocab: int) -> np.ndarray:
    """gensim's original_scorer, (n_ab - min_count) / (n_a * n_b) * len_vocab, in float64, where
    len_vocab is the number of unigram and pair types counted (gensim's len(vocab)).

    >>> gensim_score(np.array([10]), np.array([20]), np.array([30]), 5, 1000)
    array([8.33333333])
    """
    n_ab, n_a, n_b = (np.asarray(x, dtype=np.int64) for x in (n_ab, n_a, n_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        score = (n_ab - min_count).astype(np.float64) / (n_a.astype(np.float64) * n_b.astype(np.float64)) * float(len_vocab)
    return np.where((n_a > 0) & (n_b > 0), score, -np.inf)


def npmi_score(n_ab, n_a, n_b, min_count: int, total: int) -> np.ndarray:
    """gensim's npmi_scorer: ln(p_ab / (p_a p_b)) / -ln(p_ab), each p a count over all tokens,
    in [-1, 1]; -inf where n_ab < min_count.

    >>> npmi_score(np.array([10, 1]), np.array([20, 20]), np.array([30, 30]), 5, 1000)
    array([0.61092437,       -inf])
    """
    n_ab, n_a, n_b = (np.asarray(x, dtype=np.int64) for x in (n_ab, n_a, n_b))
    total = float(total)
    with np.errstate(divide="ignore", invalid="ignore"):
        pa, pb, pab = n_a / total, n_b / total, n_ab / total
        score = np.log(pab / (pa * pb)) / -np.log(pab)
    return np.where(n_ab >= min_count, score, -np.inf)


def _npmi_exact(n_ab: int, n_a: int, n_b: int, total: int) -> float:
    """npmi_score for one pair with Python's math.log, as gensim computes it."""
    total = float(total)
    pa, pb, pab = n_a / total, n_b / total, n_ab / total
    try:
        return math.log(pab / (pa * pb)) / -math.log(pab)
    except (ValueError, ZeroDivisionError):
        return -math.inf


def _chosen(scoring: str, n_ab, n_a, n_b, min_count: int, threshold: float, total: int,
            len_vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the pairs that are phrases, their scores as float64), compared as each reference
    compares: word2phrase in float32, gensim in float64."""
    if scoring == "word2vec":
        score = word2vec_score(n_ab, n_a, n_b, min_count, total)
        return score > np.float32(threshold), score.astype(np.float64)
    if scoring == "gensim":
        score = gensim_score(n_ab, n_a, n_b, min_count, len_vocab)
        return score > threshold, score
    score = npmi_score(n_ab, n_a, n_b, min_count, total)
    # numpy's log may differ from libm's in the last bit: the pairs near the threshold, and the
    # scores kept, are computed again as gensim computes them
    again = np.flatnonzero(np.isfinite(score) & (score > threshold - 1e-9))
    for i in again.tolist():
        score[i] = _npmi_exact(int(n_ab[i]), int(n_a[i]), int(n_b[i]), total)
    return score > threshold, score


check_options = check_phrase_options  # UserError for an option out of range (config.py)


# --- Reading: sentences in pieces, grouped into blocks ---------------------------------------------

def sentence_pieces(corpus: Corpus, tokenizer: str = "whitespace",
                    block_bytes: Optional[int] = None) -> Iterator[tuple[list[str], bool]]:
    """read_corpus's (tokens, ends_sentence) pieces, with the end of each file ending its last line
    (as gensim's LineSentence reads a file) rather than running on into the next file.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("x y")
    >>> _ = (d / "b.txt").write_text("z\\n")
    >>> pieces = list(sentence_pieces(d))
    >>> [[w for w, _ in pieces[:i + 1]] for i, (_, ends) in enumerate(pieces) if ends]  # tokens up to each end
    [[['x'], ['y'], []], [['x'], ['y'], [], ['z'], []]]
    """
    if not (isinstance(corpus, (str, os.PathLike)) or _is_path_list(corpus)):
        yield from read_corpus(corpus, tokenizer)
        return
    for path in corpus_files(corpus):
        open_tokens = False
        for tokens, ends in read_pieces(path, block_bytes or BLOCK_BYTES, tokenizer):
            open_tokens = (open_tokens or bool(tokens)) and not ends
            yield tokens, ends
        if open_tokens:
            yield [], True


def _blocks(pieces: Iterable[tuple[list[str], bool]], block_tokens: int
            ) -> Iterator[tuple[list[str], np.ndarray, bool]]:
    """Pieces grouped into blocks of about `block_tokens` tokens: (tokens, ends, closed), where
    `ends` are the offsets at which sentences end (an empty sentence repeats an offset) and
    `closed` says whether the block's last sentence ends in it. The input's end ends a sentence.

    >>> [(t, e.tolist(), c) for t, e, c in _blocks([(["a", "b", "c"], False), (["d"], True), (["e"], False)], 2)]
    [(['a', 'b'], [], False), (['c', 'd'], [2], True), (['e'], [1], True)]
    """
    tokens: list[str] = []
    ends: list[int] = []
    unfinished = False  # the last block yielded ends inside a sentence
    for piece, ends_sentence in pieces:
        while len(tokens) + len(piece) > block_tokens:  # a long piece (a 4 MB block of one line) is cut
            room = block_tokens - len(tokens)
            tokens.extend(piece[:room])
            piece = piece[room:]
            yield tokens, np.array(ends, dtype=np.int64), False
            tokens, ends, unfinished = [], [], True
        tokens.extend(piece)
        if ends_sentence:
            ends.append(len(tokens))
        if len(tokens) >= block_tokens:
            closed = bool(ends) and ends[-1] == len(tokens)
            yield tokens, np.array(ends, dtype=np.int64), closed
            tokens, ends, unfinished = [], [], not closed
    if (tokens or unfinished) and (not ends or ends[-1] != len(tokens)):
        ends.append(len(tokens))
    if tokens or ends:
        yield tokens, np.array(ends, dtype=np.int64), True


def _open_tail(tokens: list[str], ends: np.ndarray, connectors: frozenset) -> int:
    """Where the part of an unfinished last sentence that a later pair can still use begins: its
    last word that is not a connector (len(tokens) if there is none)."""
    start = int(ends[-1]) if len(ends) else 0
    for p in range(len(tokens) - 1, start - 1, -1):
        if tokens[p] not in connectors:
            return p
    return len(tokens)


# --- Pairs of a block: consecutive non-connector words and the connectors between them ------------

class _Gaps:
    """The connector sequences between the two words of a pair, as small ids (0: no gap).

    A gap of connector ids c_0..c_{L-1} (ids 0..K-1) has the signature sum (c_j + 1) (K + 1)^j,
    computed for every pair of a block at once; gaps too long for an int64 signature (more than
    `max_len` connectors in a row) use their tuple.
    """

    def __init__(self, k: int):
        self.k = k
        base = k + 1
        self.max_len = max(1, int(62 / math.log2(base))) if k else 0
        self.powers = np.array([base ** j for j in range(self.max_len)], dtype=np.int64)
        self.ids: dict = {}
        self.sequences: list[tuple[int, ...]] = [()]

    def signatures(self, ids: np.ndarray, conn: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For the pairs (pos[j], pos[j+1]): (signature, 0 when adjacent and -1 when too long; gap length)."""
        length = np.diff(pos) - 1
        sig = np.zeros(len(length), dtype=np.int64)
        cpos = np.flatnonzero(conn)
        j = np.searchsorted(pos, cpos) - 1
        inside = (j >= 0) & (j < len(length))
        cpos, j = cpos[inside], j[inside]
        offset = cpos - pos[j] - 1
        short = offset < self.max_len
        np.add.at(sig, j[short], (ids[cpos[short]] + 1) * self.powers[offset[short]])
        sig[length > self.max_len] = -1
        return sig, length

    def lookup(self, ids: np.ndarray, pos: np.ndarray, sig: np.ndarray, length: np.ndarray, which: np.ndarray,
               add: bool) -> np.ndarray:
        """Gap ids of the pairs `which` (0 where adjacent; -1 where unknown and not `add`)."""
        gid = np.zeros(len(which), dtype=np.int64)
        gapped = length[which] > 0
        if not gapped.any():
            return gid
        sel = which[gapped]
        short = sig[sel] >= 0
        found = np.empty(len(sel), dtype=np.int64)
        uniq, inverse = np.unique(sig[sel][short], return_inverse=True)
        found[short] = np.array([self._id(int(s), None, add) for s in uniq.tolist()], dtype=np.int64)[inverse]
        for i in np.flatnonzero(~short).tolist():  # rare: a gap of more than max_len connectors
            p = int(pos[sel[i]])
            found[i] = self._id(None, tuple(ids[p + 1: int(pos[sel[i] + 1])].tolist()), add)
        gid[gapped] = found
        return gid

    def _id(self, sig: Optional[int], seq: Optional[tuple], add: bool) -> int:
        key = sig if seq is None else seq
        gid = self.ids.get(key)
        if gid is None:
            if not add:
                return -1
            if seq is None:
                seq, base = [], self.k + 1
                while sig:
                    sig, digit = divmod(sig, base)
                    seq.append(digit - 1)
                seq = tuple(seq)
            gid = self.ids[key] = len(self.sequences)
            self.sequences.append(seq)
        return gid

    def add_sequence(self, seq: tuple[int, ...]) -> int:
        """The id of a gap given by its connector ids (for a model's phrases)."""
        if not seq:
            return 0
        if len(seq) > self.max_len:
            return self._id(None, seq, True)
        return self._id(int(sum((c + 1) * int(self.powers[j]) for j, c in enumerate(seq))), None, True)


def _pairs(ids: np.ndarray, ends: np.ndarray, k: int, gaps: _Gaps, add: bool
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of consecutive non-connector words inside one sentence: (first word's position,
    second word's position, gap id); with add=False a pair whose gap is unknown is left out."""
    n = len(ids)
    if not k:  # pairs (t, t + 1), except where a sentence ends after t
        inside = np.ones(max(n - 1, 0), dtype=bool)
        inside[ends[(ends > 0) & (ends < n)] - 1] = False
        first = np.flatnonzero(inside)
        return first, first + 1, np.zeros(len(first), dtype=np.int64)
    conn = (ids >= 0) & (ids < k)
    pos = np.flatnonzero(~conn)
    if len(pos) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    ended = np.cumsum(np.bincount(ends, minlength=n + 1))  # sentence ends at or before each offset
    which = np.flatnonzero(ended[pos[:-1]] == ended[pos[1:]])
    sig, length = gaps.signatures(ids, conn, pos)
    gid = gaps.lookup(ids, pos, sig, length, which, add)
    known = gid >= 0
    return pos[which][known], pos[which + 1][known], gid[known]


# --- Counting: a hash table of int64 keys, vectorised ----------------------------------------------

_EMPTY = -1
_MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing


class CountTable:
    """Counts keyed by non-negative int64, in an open-addressing hash table (linear probing) that
    numpy probes for a whole batch of keys at once. Memory: 12 bytes a slot (uint32 counts, made
    int64 if one ever passes 2^32 - 1), at most 3/4 of the slots used.

    >>> t = CountTable()
    >>> t.add(np.array([5, 7]), np.array([1, 2])); t.add(np.array([7, 9]), np.array([3, 1]))
    >>> t.get(np.array([7, 5, 8])).tolist(), t.size
    ([5, 1, 0], 3)
    """

    LOAD = 0.75

    def __init__(self, capacity_bits: int = 16, count_type=np.uint32):
        self._bits = capacity_bits
        self.keys = np.full(1 << capacity_bits, _EMPTY, dtype=np.int64)
        self.counts = np.zeros(1 << capacity_bits, dtype=count_type)
        self.size = 0

    @classmethod
    def from_items(cls, keys: np.ndarray, counts: np.ndarray) -> "CountTable":
        table = cls(cls._bits_for(len(keys)), np.uint32 if counts.max(initial=0) <= _UINT32_MAX else np.int64)
        if len(keys):
            table.add(keys, counts)
        return table

    @classmethod
    def _bits_for(cls, size: int) -> int:
        bits = 16
        while (1 << bits) * cls.LOAD < size:
            bits += 1
        return bits

    def _probe(self, keys: np.ndarray) -> np.ndarray:
        """Each key's slot, or the empty slot where it would go."""
        slots = ((keys.astype(np.uint64) * _MULT) >> np.uint64(64 - self._bits)).astype(np.int64)
        mask = (1 << self._bits) - 1
        todo = np.arange(len(keys))
        while len(todo):
            seen = self.keys[slots[todo]]
            todo = todo[(seen != keys[todo]) & (seen != _EMPTY)]
            slots[todo] = (slots[todo] + 1) & mask
        return slots

    def add(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """Add `counts` to the counts of `keys` (distinct keys)."""
        if self.size + len(keys) > len(self.keys) * self.LOAD:
            self._grow(self.size + len(keys))
        slots = self._probe(keys)
        hit = self.keys[slots] == keys
        summed = self.counts[slots[hit]] + counts[hit]
        if self.counts.dtype == np.uint32 and (summed.max(initial=0) > _UINT32_MAX or counts.max(initial=0) > _UINT32_MAX):
            self.counts = self.counts.astype(np.int64)
        self.counts[slots[hit]] = summed
        new = np.flatnonzero(~hit)
        while len(new):
            s = slots[new]
            self.keys[s] = keys[new]  # where several new keys claim one empty slot, one of them gets it
            won = self.keys[s] == keys[new]
            self.counts[s[won]] = counts[new[won]]
            self.size += int(won.sum())
            new = new[~won]
            if len(new):
                slots[new] = self._probe(keys[new])

    def get(self, keys: np.ndarray) -> np.ndarray:
        slots = self._probe(keys)
        return np.where(self.keys[slots] == keys, self.counts[slots].astype(np.int64), 0)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        used = self.keys != _EMPTY
        return self.keys[used], self.counts[used].astype(np.int64)

    def _grow(self, need: int) -> None:
        old_keys, old_counts = self.keys, self.counts
        self.__init__(max(self._bits + 1, self._bits_for(need)), old_counts.dtype)
        step = 1 << 20
        for start in range(0, len(old_keys), step):  # in slices: no full copy of the old table
            keys = old_keys[start: start + step]
            used = keys != _EMPTY
            if used.any():
                self.add(keys[used], old_counts[start: start + step][used])


_UINT32_MAX = (1 << 32) - 1


class _Spool:
    """A counting pass's token ids on disk (4 bytes a token), block by block as counted, so that the
    next pass, or the output, reads them instead of reading and hashing the text again. Given up
    (and deleted) where the pass prunes, since ids then change meaning, or the disk runs low."""

    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, "wb")
        self.words: Optional[list[str]] = None
        self.records = 0

    def write(self, ids: np.ndarray, ends: np.ndarray, closed: bool) -> None:
        if self.file is None:
            return
        self.records += 1
        if self.records % 64 == 0 and shutil.disk_usage(self.path.parent).free < max(1 << 30, self.file.tell()):
            return self.give_up()
        self.file.write(np.array([len(ids), len(ends), closed], dtype=np.int64).tobytes())
        self.file.write(ids.astype(np.int32).tobytes())
        self.file.write(ends.astype(np.int64).tobytes())

    def give_up(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
            self.path.unlink(missing_ok=True)

    def finish(self, words: list[str]) -> Optional["_Spool"]:
        """This spool, complete, with the words its ids stand for; None if it was given up."""
        if self.file is None:
            return None
        self.file.close()
        self.words = words
        return self

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
        """(ids, ends, closed) as `_blocks` gave them to the counter."""
        with open(self.path, "rb") as f:
            while True:
                head = np.fromfile(f, dtype=np.int64, count=3)
                if len(head) < 3:
                    return
                ids = np.fromfile(f, dtype=np.int32, count=int(head[0])).astype(np.int64)
                yield ids, np.fromfile(f, dtype=np.int64, count=int(head[1])), bool(head[2])


@dataclass
class _PairCounts:
    """What a counting pass leaves: words, their counts, and pair (a, gap, b) counts."""

    words: list[str]  # ids 0..k-1 are the connectors
    k: int
    unigrams: np.ndarray  # count of each id (connectors: 0)
    a: np.ndarray
    gap: np.ndarray
    b: np.ndarray
    pairs: np.ndarray  # count of each pair
    gap_sequences: list[tuple[int, ...]]
    total: int  # all tokens, connectors included
    min_reduce: int
    len_vocab: int  # gensim's len(vocab): the unigram and pair types held at the end, all counts


class _Counter:
    """One counting pass: unigram and pair counts over blocks of tokens, within `budget` types."""

    def __init__(self, connectors: Sequence[str], budget: int):
        self.k = len(connectors)
        self.words = list(connectors)
        self.index = {w: i for i, w in enumerate(connectors)}
        self.unigrams = np.zeros(1 << 16, dtype=np.int64)
        self.gaps = _Gaps(self.k)
        self.table = CountTable()
        # key bits: 31 a word without connectors; with them 24 a word (16.7M types) and 15 a gap, so
        # that keys are rarely widened (which copies the table)
        self.word_bits, self.gap_bits = (24, 15) if self.k else (31, 0)
        self.total = 0
        self.min_reduce = 1
        self.budget = budget
        self.spool: Optional[_Spool] = None

    # keys: a pair (a, gap, b) is ((a << gap_bits) | gap) << word_bits | b, widened as ids grow
    def _encode(self, a, gap, b, word_bits=None, gap_bits=None):
        wb = self.word_bits if word_bits is None else word_bits
        gb = self.gap_bits if gap_bits is None else gap_bits
        return (((a << gb) | gap) << wb) | b

    def _decode(self, keys):
        b = keys & ((1 << self.word_bits) - 1)
        rest = keys >> self.word_bits
        return rest >> self.gap_bits, rest & ((1 << self.gap_bits) - 1), b

    def _widen(self) -> None:
        """Re-encode the keys when the words or gaps outgrow their bits (a 63-bit key at most)."""
        word_bits, gap_bits = self.word_bits, self.gap_bits
        while (1 << word_bits) < len(self.words):
            word_bits += 1
        if self.k and (1 << gap_bits) < len(self.gaps.sequences):
            gap_bits = max(gap_bits + 1, 63 - 2 * word_bits)
        elif self.k:
            gap_bits = 63 - 2 * word_bits if word_bits != self.word_bits else gap_bits
        if (word_bits, gap_bits) == (self.word_bits, self.gap_bits):
            return
        if 2 * word_bits + gap_bits > 63 or (1 << gap_bits) < len(self.gaps.sequences):
            raise UserError(f"too many distinct words ({len(self.words):,}) and connector sequences "
                            f"({len(self.gaps.sequences):,}) to count pairs: set a smaller max_vocab")
        keys, counts = self.table.items()
        self.table = CountTable()
        a, gap, b = self._decode(keys)
        del keys
        self.table = CountTable.from_items(self._encode(a, gap, b, word_bits, gap_bits), counts)
        self.word_bits, self.gap_bits = word_bits, gap_bits

    def _ids(self, tokens: list[str]) -> np.ndarray:
        """Token ids, new words getting the next ids in order of first occurrence."""
        ids = np.fromiter(map(self.index.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))
        unknown = np.flatnonzero(ids < 0)
        if len(unknown):
            new = [tokens[p] for p in unknown.tolist()]
            fresh = list(dict.fromkeys(new))  # first occurrences, in order
            self.index.update(zip(fresh, range(len(self.words), len(self.words) + len(fresh))))
            self.words.extend(fresh)
            ids[unknown] = np.fromiter(map(self.index.__getitem__, new), dtype=np.int64, count=len(new))
        return ids

    def count(self, pieces: Iterable[tuple[list[str], bool]], block_tokens: int = BLOCK_TOKENS,
              keep: int = 1) -> _PairCounts:
        """Count the pieces; keep the pairs counted at least `keep` times (the others cannot be phrases)."""
        connectors = frozenset(self.words[: self.k])
        carry: list[str] = []  # an unfinished sentence's last word (and connectors after it), counted
        for tokens, ends, closed in _blocks(pieces, block_tokens):
            if carry:
                tokens, ends = carry + tokens, ends + len(carry)
            self._count_block(tokens, ends, len(carry), closed, check_at_end=not len(ends))
            carry = [] if closed else tokens[_open_tail(tokens, ends, connectors):]
        keys, pairs = self.table.items()
        held = len(self.words) - self.k + len(keys)
        self.table = CountTable()
        kept = pairs >= keep
        keys, pairs = keys[kept], pairs[kept]
        a, gap, b = self._decode(keys)
        return _PairCounts(self.words, self.k, self.unigrams[: len(self.words)].copy(), a, gap, b, pairs,
                           self.gaps.sequences, self.total, self.min_reduce, held)

    def _count_block(self, tokens: list[str], ends: np.ndarray, counted: int, closed: bool, check_at_end: bool) -> None:
        """Count a block whose first `counted` tokens were counted with the block before. With a
        budget, types are pruned at each sentence end after which more than `budget` are held (and
        at the block's end when no sentence ends in it)."""
        while tokens or len(ends):
            before = len(self.words)
            ids = self._ids(tokens)
            first, second, gap = _pairs(ids, ends, self.k, self.gaps, add=True)
            self._widen()
            keys = self._encode(ids[first], gap, ids[second])
            # a carried word pruned since it was counted is counted again: no pair outlives its words
            words_from = 0 if counted and ids[0] >= before else counted
            stop = self._overflow(ids, ends, keys, second, before, check_at_end) if self.budget else None
            if self.spool is not None:
                self.spool.write(ids[counted:], ends - counted, closed) if stop is None else self.spool.give_up()
            if stop is None:
                self._add(ids[words_from:], keys, len(tokens) - counted)
                return
            at, which = stop
            self._add(ids[words_from:at], keys[second < at], at - min(counted, at))
            self._prune()
            tokens, ends, counted = tokens[at:], ends[which + 1:] - at, max(0, counted - at)

    def _overflow(self, ids: np.ndarray, ends: np.ndarray, keys: np.ndarray, second: np.ndarray, before: int,
                  check_at_end: bool) -> Optional[tuple[int, int]]:
        """The first check point (offset, index among the sentence ends) after which more than
        `budget` types would be held, with the words first seen after it forgotten again; or None.
        A pair is a new type where its second word is, a word where it first occurs."""
        held = before - self.k + self.table.size
        fresh = len(self.words) - before
        if held + fresh + len(keys) <= self.budget:  # cannot overflow in this block
            return None
        unique, first = np.unique(keys, return_index=True)
        new_pairs = second[first[self.table.get(unique) == 0]]
        new_words = np.flatnonzero(ids >= before)
        new_words = new_words[np.unique(ids[new_words], return_index=True)[1]]  # first occurrences, in id order
        events = np.sort(np.concatenate([new_pairs, new_words]))
        points = np.append(ends, len(ids)) if check_at_end else ends
        over = np.flatnonzero(held + np.searchsorted(events, points, side="left") > self.budget)
        if not len(over):
            return None
        which = int(over[0])
        at = int(points[which])
        keep = before + int(np.searchsorted(new_words, at, side="left"))  # new ids follow first occurrence
        for word in self.words[keep:]:
            del self.index[word]
        del self.words[keep:]
        return at, which

    def _add(self, ids: np.ndarray, keys: np.ndarray, tokens: int) -> None:
        n = len(self.words)
        if len(self.unigrams) < n:
            self.unigrams = np.concatenate([self.unigrams, np.zeros(n, dtype=np.int64)])
        self.unigrams[:n] += np.bincount(ids[ids >= self.k], minlength=n)
        if len(keys):
            unique, counts = np.unique(keys, return_counts=True)
            self.table.add(unique, counts)
        self.total += tokens

    def _prune(self) -> None:
        """gensim's prune_vocab: drop every unigram and pair type counted fewer than min_reduce times."""
        floor = self.min_reduce
        self.min_reduce += 1
        keys, counts = self.table.items()
        a, gap, b = self._decode(keys)
        n = len(self.words)
        kept_words = self.unigrams[:n] >= floor
        kept_words[: self.k] = True
        kept = (counts >= floor) & kept_words[a] & kept_words[b]
        if kept_words.all() and kept.all():
            return
        new_id = np.cumsum(kept_words) - 1
        self.words = [w for w, keep in zip(self.words, kept_words.tolist()) if keep]
        self.index = {w: i for i, w in enumerate(self.words)}
        self.unigrams = np.concatenate([self.unigrams[:n][kept_words], np.zeros(1024, dtype=np.int64)])
        self.table = CountTable.from_items(self._encode(new_id[a[kept]], gap[kept], new_id[b[kept]]), counts[kept])


# --- A pass's phrases, applied to blocks of tokens --------------------------------------------------

@dataclass(frozen=True)
class Layer:
    """The phrases one pass found: each (first word, connectors..., last word), with its score
    (all above `threshold`), best first; and what the pass counted."""

    phrases: tuple[tuple[str, ...], ...]
    scores: tuple[float, ...]
    threshold: float
    tokens: int = 0  # tokens counted
    vocabulary: int = 0  # unigram and pair types held at the end (gensim's len_vocab)
    min_reduce: int = 1  # the pruning floor reached (1: nothing was pruned)


class _Matcher:
    """A layer compiled for joining: its words and gaps as ids, its phrases as int64 keys in a hash table."""

    def __init__(self, layer: Layer, connectors: Sequence[str], delimiter: str):
        self.k = len(connectors)
        self.connectors = frozenset(connectors)
        self.index = {w: i for i, w in enumerate(connectors)}
        self.gaps = _Gaps(self.k)
        a, gap, b = [], [], []
        for phrase in layer.phrases:
            a.append(self.index.setdefault(phrase[0], len(self.index)))
            b.append(self.index.setdefault(phrase[-1], len(self.index)))
            gap.append(self.gaps.add_sequence(tuple(self.index[c] for c in phrase[1:-1])))
        self.words, self.gap_count = len(self.index), len(self.gaps.sequences)
        if self.words * self.words * self.gap_count >= 1 << 63:
            raise UserError(f"too many phrases ({len(layer.phrases):,}) to apply")
        keys = self._key(np.array(a, dtype=np.int64), np.array(gap, dtype=np.int64), np.array(b, dtype=np.int64))
        self.size = len(keys)
        self.table = CountTable.from_items(keys, np.arange(1, len(keys) + 1))  # phrase index + 1
        self.strings = np.array([delimiter.join(phrase) for phrase in layer.phrases] + [""], dtype=object)

    def _key(self, a, gap, b):
        return (a * self.gap_count + gap) * self.words + b

    def join(self, tokens: Union[list[str], np.ndarray], ends: np.ndarray, closed: bool,
             ids: Optional[np.ndarray] = None) -> tuple[list[tuple[list[str], bool]], Sequence[str]]:
        """Join the phrases in a block, greedily from the left: (pieces out, tokens held back). An
        unfinished last sentence's last free word (and the connectors after it) is held back, to be
        joined with the next block's first word. `ids`: the tokens' ids here, if known."""
        if ids is None:
            ids = np.fromiter(map(self.index.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))
        first, second, gap = _pairs(ids, ends, self.k, self.gaps, add=False)
        a, b = ids[first], ids[second]
        known = np.flatnonzero((a >= self.k) & (b >= self.k))
        found = self.table.get(self._key(a[known], gap[known], b[known])) - 1
        hit, phrase = known[found >= 0], found[found >= 0]
        # a run of phrases each starting where the last ends: the 1st, 3rd, ... are joined
        f, s = first[hit], second[hit]
        starts = np.ones(len(hit), dtype=bool)
        starts[1:] = s[:-1] != f[1:]
        run_start = np.maximum.accumulate(np.where(starts, np.arange(len(hit)), 0))
        taken = (np.arange(len(hit)) - run_start) % 2 == 0
        f, s, phrase = f[taken], s[taken], phrase[taken]
        n = len(tokens)
        hold = n
        if not closed:
            hold = _open_tail(tokens, ends, self.connectors)
            if hold < n and len(s) and s[-1] == hold:  # its last word is joined already: nothing to hold
                hold = n
        if len(f) or hold < n:
            drop = np.zeros(n + 1, dtype=np.int64)
            drop[f + 1] += 1
            drop[s + 1] -= 1
            keep = np.cumsum(drop[:n]) == 0
            keep[hold:] = False
            out_arr = np.array(tokens, dtype=object)
            out_arr[f] = self.strings[phrase]
            out = out_arr[keep].tolist()
            offsets = np.concatenate([[0], np.cumsum(keep)])
            ends = offsets[ends]
            tail_end = int(offsets[n])
        else:
            out, tail_end = (tokens if isinstance(tokens, list) else tokens.tolist()), n
        pieces = []
        start = 0
        for end in ends.tolist():
            pieces.append((out[start:end], True))
            start = end
        if not closed:
            pieces.append((out[start:tail_end], False))
        return pieces, tokens[hold:]

    def stream(self, pieces: Iterable[tuple[list[str], bool]], block_tokens: int = BLOCK_TOKENS
               ) -> Iterator[tuple[list[str], bool]]:
        if not self.size:
            yield from pieces
            return
        carry: list[str] = []
        for tokens, ends, closed in _blocks(pieces, block_tokens):
            if carry:
                tokens, ends = carry + tokens, ends + len(carry)
            out, carry = self.join(tokens, ends, closed)
            yield from out

    def stream_encoded(self, spool: _Spool) -> Iterator[tuple[list[str], bool]]:
        """`stream` over a counting pass's spooled ids: no text read, no string hashed."""
        words = np.array(spool.words, dtype=object)
        here = np.fromiter(map(self.index.get, spool.words, repeat(-1)), dtype=np.int64, count=len(spool.words))
        carry = np.zeros(0, dtype=np.int64)
        for ids, ends, closed in spool.blocks():
            if len(carry):
                ids, ends = np.concatenate([carry, ids]), ends + len(carry)
            out, held = self.join(words[ids], ends, closed, here[ids])
            carry = ids[len(ids) - len(held):]
            yield from out


# --- The model: passes of phrases, learned, applied, saved ------------------------------------------

def connector_words(connectors: Union[str, Iterable[str]]) -> frozenset:
    """A connector set by name ("english", "none") or given as words."""
    if isinstance(connectors, str):
        if connectors not in CONNECTOR_SETS:
            raise UserError(f"connectors must be one of {', '.join(CONNECTOR_SETS)} or a set of words, got {connectors!r}")
        return frozenset(CONNECTOR_SETS[connectors]())
    words = frozenset(connectors)
    if not all(isinstance(w, str) and w and not any(c.isspace() for c in w) for w in words):
        raise UserError("connector words must be non-empty strings without white space")
    return words


@dataclass(frozen=True)
class Phrases:
    """Phrases learned in one or more passes, applied pass after pass (the second pass joins the
    first's phrases into longer ones: "new_york times" -> "new_york_times").

    >>> corpus = [["the", "bank", "of", "america", "is", "in", "new", "york"]] * 4
    >>> model = Phrases.learn(corpus, passes=1, min_count=1, threshold=0.5, scoring="gensim",
    ...                       connectors="english")
    >>> model.apply(["my", "bank", "of", "america", "card"])
    ['my', 'bank_of_america', 'card']
    >>> sorted(model.export())
    ['america_is', 'bank_of_america', 'is_in_new', 'new_york']
    """

    layers: tuple[Layer, ...] = ()
    scoring: str = "word2vec"
    min_count: int = 5
    delimiter: str = "_"
    connectors: frozenset = frozenset()
    _matchers: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def learn(cls, corpus: Corpus, passes: int = 2, min_count: int = Config.phrase_min_count,
              threshold: Union[None, float, Sequence[float]] = None, scoring: str = Config.phrase_scoring,
              delimiter: str = Config.phrase_delimiter, connectors: Union[str, Iterable[str]] = Config.phrase_connectors,
              max_vocab: int = DEFAULT_MAX_VOCAB, tokenizer: str = "whitespace",
              report: Optional[Callable[[str], None]] = None, block_tokens: int = BLOCK_TOKENS,
              workdir: Union[None, str, os.PathLike] = None) -> "Phrases":
        """Learn `passes` passes of phrases from `corpus` (anything read_corpus reads); each pass counts
        the output of the passes before it.

        `threshold`: one value for every pass, or one per pass (word2vec's demo-phrases.sh runs two
        passes at 200 then 100); by default DEFAULT_THRESHOLD[scoring]. `max_vocab`: at most this many
        unigram and pair types are held while counting (0: no limit). `report` is called with a line
        after each pass. `workdir`: where a pass may keep its token ids (4 bytes a token, deleted after)
        for the next pass to read instead of the text; without one every pass reads the text.
        """
        with _work_dir(workdir) as work:
            return _learn(corpus, passes, min_count, threshold, scoring, delimiter, connectors, max_vocab, tokenizer,
                          report, block_tokens, work)[0]

    def _matcher(self, p: int) -> _Matcher:
        if p not in self._matchers:
            self._matchers[p] = _Matcher(self.layers[p], sorted(self.connectors), self.delimiter)
        return self._matchers[p]

    def pieces(self, corpus: Corpus, tokenizer: str = "whitespace", block_tokens: int = BLOCK_TOKENS
               ) -> Iterator[tuple[list[str], bool]]:
        """The corpus's (tokens, ends_sentence) pieces with every pass's phrases joined; streamed in
        bounded memory, a phrase may span two pieces of one sentence."""
        stream: Iterable[tuple[list[str], bool]] = sentence_pieces(corpus, tokenizer)
        for p in range(len(self.layers)):
            stream = self._matcher(p).stream(stream, block_tokens)
        return iter(stream)

    def apply(self, tokens: Sequence[str]) -> list[str]:
        """One sentence with its phrases joined."""
        tokens = [str(t) for t in tokens]
        for p in range(len(self.layers)):
            matcher = self._matcher(p)
            if matcher.size and tokens:
                tokens = matcher.join(tokens, np.array([len(tokens)]), True)[0][0][0]
        return tokens

    def transform(self, corpus: Corpus, tokenizer: str = "whitespace") -> "PhrasedCorpus":
        """The corpus as sentences (token lists) with phrases joined: re-iterable, so it is a corpus
        read_corpus (and gensim) accepts."""
        return PhrasedCorpus(self, corpus, tokenizer)

    def export(self, p: int = -1) -> dict[str, float]:
        """Pass `p`'s phrases as gensim's export_phrases gives them: {joined phrase: score}."""
        layer = self.layers[p]
        return {self.delimiter.join(ph): s for ph, s in zip(layer.phrases, layer.scores)}

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the model as JSON (one phrase a line), atomically."""
        head = json.dumps({"format": FORMAT, "version": 1, "scoring": self.scoring, "min_count": self.min_count,
                           "delimiter": self.delimiter, "connectors": sorted(self.connectors)}, ensure_ascii=False)
        passes = []
        for layer in self.layers:
            meta = json.dumps({"threshold": layer.threshold, "tokens": layer.tokens, "vocabulary": layer.vocabulary,
                               "min_reduce": layer.min_reduce})
            rows = ",\n".join(json.dumps([list(ph), s], ensure_ascii=False, allow_nan=False)
                              for ph, s in zip(layer.phrases, layer.scores))
            passes.append(meta[:-1] + ', "phrases": [\n' + rows + "\n]}")
        text = head[:-1] + ', "passes": [\n' + ",\n".join(passes) + "\n]}\n"
        with atomic_path(path, "phrase model") as tmp:
            tmp.write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Phrases":
        """Read a model written by `save`; anything else is a UserError naming what is wrong."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"phrase model '{path}' does not exist" if not path.exists()
                            else f"phrase model '{path}' is not a file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise UserError(f"phrase model '{path}' is not valid JSON ({exc})") from None
        return _from_json(data, f"phrase model '{path}'")


@contextlib.contextmanager
def _work_dir(parent: Union[None, str, os.PathLike]) -> Iterator[Optional[Path]]:
    """A temporary directory inside `parent` (removed after), or None without a parent."""
    if parent is None:
        yield None
        return
    Path(parent).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".phrases-") as work:
        yield Path(work)


def _learn(corpus: Corpus, passes: int = 2, min_count: int = Config.phrase_min_count,
           threshold: Union[None, float, Sequence[float]] = None, scoring: str = Config.phrase_scoring,
           delimiter: str = Config.phrase_delimiter, connectors: Union[str, Iterable[str]] = Config.phrase_connectors,
           max_vocab: int = DEFAULT_MAX_VOCAB, tokenizer: str = "whitespace",
           report: Optional[Callable[[str], None]] = None, block_tokens: int = BLOCK_TOKENS,
           work: Optional[Path] = None) -> tuple[Phrases, Optional[_Spool]]:
    """Phrases.learn, and the last pass's spooled ids (in `work`) when it kept them."""
    if threshold is None:
        threshold = DEFAULT_THRESHOLD.get(scoring, 0.0)
    thresholds = [threshold] if isinstance(threshold, (int, float)) else list(threshold)
    check_options(scoring, min_count, thresholds, passes, delimiter, max_vocab)
    thresholds = [float(t) for t in thresholds] * (passes if len(thresholds) == 1 else 1)
    model = Phrases((), scoring, min_count, delimiter, connector_words(connectors))
    spool: Optional[_Spool] = None
    for p, limit in enumerate(thresholds):
        if spool is not None:  # the last pass's tokens, with its phrases joined
            pieces = model._matcher(p - 1).stream_encoded(spool)
        else:
            pieces = model.pieces(corpus, tokenizer, block_tokens)
        counter = _Counter(sorted(model.connectors), max_vocab)
        if work is not None:
            counter.spool = _Spool(work / f"pass{p + 1}.ids")
        counts = counter.count(pieces, block_tokens, keep=min_count)
        if spool is not None:
            spool.path.unlink(missing_ok=True)
        spool = counter.spool.finish(counts.words) if counter.spool is not None else None
        if counts.total == 0:
            raise UserError(f"corpus '{describe(corpus)}' has no words")
        layer = _layer(counts, scoring, min_count, limit)
        model = Phrases(model.layers + (layer,), scoring, min_count, delimiter, model.connectors)
        if report:
            pruned = f"; counts below {counts.min_reduce - 1} pruned" if counts.min_reduce > 2 else ""
            report(f"pass {p + 1}: {len(layer.phrases):,} phrases scored above {limit:g}, of {len(counts.pairs):,} "
                   f"pairs seen {min_count}+ times in {counts.total:,} tokens{pruned}")
    return model, spool


class PhrasedCorpus(Stream):
    """A corpus with phrases joined, as sentences (each iteration reads the corpus again) or, for
    read_corpus (and so the trainer), as pieces. Its text is split by its own `tokenizer`."""

    def __init__(self, model: Phrases, corpus: Corpus, tokenizer: str = "whitespace"):
        self.model, self.corpus, self.tokenizer = model, corpus, tokenizer

    def pieces(self, tokenizer: Optional[str] = None) -> Iterator[tuple[list[str], bool]]:
        return self.model.pieces(self.corpus, self.tokenizer)

    def __iter__(self) -> Iterator[list[str]]:
        return joined_sentences(self.pieces())


def learn(corpus: Corpus, passes: int = 2, **options) -> Phrases:
    """Phrases.learn: the model of all `passes` passes."""
    return Phrases.learn(corpus, passes, **options)


def phrased_pieces(corpus: Corpus, model: Phrases, tokenizer: str = "whitespace") -> Iterator[tuple[list[str], bool]]:
    """read_corpus's (tokens, ends_sentence) pieces with the model's phrases joined, for the trainer."""
    return model.pieces(corpus, tokenizer)


def _layer(counts: _PairCounts, scoring: str, min_count: int, threshold: float) -> Layer:
    n_a, n_b = counts.unigrams[counts.a], counts.unigrams[counts.b]
    chosen, score = _chosen(scoring, counts.pairs, n_a, n_b, min_count, threshold, counts.total, counts.len_vocab)
    words, gaps = counts.words, counts.gap_sequences
    found = []
    for i in np.flatnonzero(chosen).tolist():
        phrase = (words[counts.a[i]], *(words[c] for c in gaps[counts.gap[i]]), words[counts.b[i]])
        found.append((-float(score[i]), phrase))
    found.sort()
    return Layer(tuple(ph for _, ph in found), tuple(-s for s, _ in found), threshold, counts.total,
                 counts.len_vocab, counts.min_reduce)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _from_json(data, name: str) -> Phrases:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise UserError(f"{name} is malformed: {what}")

    def is_int(x) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    def is_word(x) -> bool:
        return isinstance(x, str) and bool(x) and not any(c.isspace() for c in x)

    need(isinstance(data, dict), "not a JSON object")
    need(data.get("format") == FORMAT, f"its format is not {FORMAT!r}")
    need(data.get("version") == 1, f"version {data.get('version')!r} is not 1")
    scoring = data.get("scoring")
    need(scoring in SCORINGS, f"scoring {scoring!r} is not one of {', '.join(SCORINGS)}")
    need(is_int(data.get("min_count")) and data["min_count"] >= 1, "min_count is not a positive integer")
    delimiter = data.get("delimiter")
    need(isinstance(delimiter, str) and bool(delimiter) and not any(c.isspace() for c in delimiter),
         "delimiter is not a non-empty string without white space")
    connectors = data.get("connectors")
    need(isinstance(connectors, list) and all(map(is_word, connectors)), "connectors is not a list of words")
    connectors = frozenset(connectors)
    passes = data.get("passes")
    need(isinstance(passes, list) and bool(passes), "passes is not a non-empty list")
    layers = []
    for p, entry in enumerate(passes, 1):
        need(isinstance(entry, dict), f"pass {p} is not an object")
        threshold = entry.get("threshold")
        need(isinstance(threshold, (int, float)) and not isinstance(threshold, bool), f"pass {p}'s threshold is not a number")
        rows = entry.get("phrases")
        need(isinstance(rows, list), f"pass {p}'s phrases is not a list")
        phrases, scores = [], []
        for row in rows:
            ok = (isinstance(row, list) and len(row) == 2 and isinstance(row[0], list) and len(row[0]) >= 2
                  and all(map(is_word, row[0])) and isinstance(row[1], (int, float)) and not isinstance(row[1], bool))
            need(ok, f"pass {p} has a phrase that is not [[word, ..., word], score]: {str(row)[:80]}")
            words = row[0]
            need(words[0] not in connectors and words[-1] not in connectors and all(w in connectors for w in words[1:-1]),
                 f"pass {p}'s phrase {words} does not start and end with a word and have only connectors between")
            phrases.append(tuple(words))
            scores.append(float(row[1]))
        need(len(set(phrases)) == len(phrases), f"pass {p} lists a phrase twice")
        stats = [entry.get(k, d) for k, d in (("tokens", 0), ("vocabulary", 0), ("min_reduce", 1))]
        need(all(is_int(x) and x >= 0 for x in stats), f"pass {p}'s tokens, vocabulary or min_reduce is not a count")
        layers.append(Layer(tuple(phrases), tuple(scores), float(threshold), *stats))
    return Phrases(tuple(layers), scoring, data["min_count"], delimiter, connectors)


# --- The command: learn or apply, and write the phrased corpus --------------------------------------

def write_phrased(pieces: Iterable[tuple[list[str], bool]], out: Union[str, os.PathLike]) -> tuple[int, int]:
    """Write pieces as text, one sentence a line, atomically; (sentences, tokens) written."""
    sentences = tokens_out = 0
    with atomic_path(out, "phrased corpus") as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        buf: list[str] = []
        held = 0  # tokens in buf
        open_line = False
        for tokens, ends in pieces:
            if tokens:
                if open_line:
                    buf.append(" ")
                buf.append(" ".join(tokens))
                tokens_out += len(tokens)
                held += len(tokens)
                open_line = True
            if ends:
                buf.append("\n")
                sentences += 1
                open_line = False
            if held >= 1 << 17 or len(buf) >= 4096:
                f.write("".join(buf))
                buf.clear()
                held = 0
        if open_line:
            buf.append("\n")
            sentences += 1
        f.write("".join(buf))
    return sentences, tokens_out


def phrase_corpus(corpus: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]], out: Union[str, os.PathLike],
                  model_path: Union[None, str, os.PathLike] = None, apply: Union[None, str, os.PathLike] = None,
                  report: Callable[[str], None] = print, **options) -> Phrases:
    """The `phrases` command: learn a model from `corpus` (options: Phrases.learn's) and save it to
    `model_path` (default OUT.phrases.json), or load the model `apply`; write the corpus with its
    phrases joined to `out`. Standard input (`-`) is read once into a file beside `out`."""
    from w2v_nce.corpus import stdin_spooled

    out = Path(out)
    tokenizer = options.pop("tokenizer", "whitespace")
    if apply is not None and (options or model_path is not None):
        given = sorted(options)[0] if options else "model"
        raise UserError(f"--apply uses the saved model's settings: drop --{given.replace('_', '-')}")
    model_path = Path(model_path) if model_path is not None else out.with_name(out.name + ".phrases.json")
    if apply is None and model_path.resolve() == out.resolve():
        raise UserError(f"the phrase model and the phrased corpus would both be '{out}'")
    for path in (out, model_path if apply is None else None):
        if path is not None and path.is_dir():
            raise UserError(f"cannot write '{path}': it is a directory")
    model = Phrases.load(apply) if apply is not None else None
    out.parent.mkdir(parents=True, exist_ok=True)
    with stdin_spooled(corpus, out.parent) as source, _work_dir(out.parent if model is None else None) as work:
        if model is None:
            model, spool = _learn(source, tokenizer=tokenizer, report=report, work=work, **options)
            model.save(model_path)
        else:
            spool = None
        pieces = model._matcher(len(model.layers) - 1).stream_encoded(spool) if spool else model.pieces(source, tokenizer)
        sentences, tokens = write_phrased(pieces, out)
    saved = "" if apply is not None else f" and the model to {model_path}"
    report(f"wrote {sentences:,} sentences ({tokens:,} tokens) to {out}{saved}")
    return model
