"""Streaming tokenizer: a corpus (files plain or .gz, directories of them, standard input, or sentences
given as token lists) as tokens (white space or gensim's simple_preprocess), in bounded memory.

Lines are sentences (CBOW windows do not cross them, as in gensim and word2vec.c). A
single 100 MB line such as text8 is fine: the file is read in fixed-size blocks and
only a partial token is carried between them.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "c.txt")
>>> _ = open(path, "w").write("the cat sat\\non the mat\\n")
>>> [(tokens, end) for tokens, end in read_pieces(path, block_bytes=4) if tokens or end]
[(['the'], False), (['cat'], False), (['sat'], False), ([], True), (['on'], False), (['the'], False), (['mat'], False), ([], True)]

(A line end that falls at a block's edge comes as an empty piece that ends the sentence.)
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import os
import re
import shutil
import sys
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Sequence, Union

from w2v_nce.errors import UserError

BLOCK_BYTES = 1 << 22


def _open(path: Path) -> BinaryIO:
    if not path.exists():
        raise UserError(f"corpus '{path}' does not exist")
    if path.is_dir():
        raise UserError(f"corpus '{path}' is a directory, not a file")
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def simple_tokens(text: str) -> list[str]:
    """gensim's simple_preprocess with accents folded: lowercase tokens of 2-15 letters.

    >>> simple_tokens("Héllo, World! I'm 42 -- naïve")
    ['hello', 'world', 'naive']
    """
    from gensim.utils import simple_preprocess

    return simple_preprocess(text, deacc=True)


TOKENIZERS = {"whitespace": str.split, "simple": simple_tokens}  # Config.tokenizer's choices


def read_pieces(path: Path | str, block_bytes: int = BLOCK_BYTES, tokenizer: str = "whitespace",
                start: int = 0, stop: int | None = None) -> Iterator[tuple[list[str], bool]]:
    """Yield (tokens, ends_sentence) pieces in file order, each piece's text split by `tokenizer`
    (pieces end at white space, so no token is cut). `start`, `stop`: only bytes [start, stop) of
    a plain file (a `ByteRange`'s part of it; they must not fall inside a token or a character).

    Raises UserError for a missing, binary (NUL bytes) or non-UTF-8 file.
    """
    path = Path(path)
    tokenize = TOKENIZERS[tokenizer]
    decoder = codecs.getincrementaldecoder("utf-8")()
    carry = ""
    offset = start
    with _open(path) as f:
        if start:
            f.seek(start)
        while True:
            try:
                raw = f.read(block_bytes if stop is None else min(block_bytes, stop - offset))
            except (OSError, EOFError, zlib.error) as exc:  # includes a corrupt .gz
                raise UserError(f"corpus '{path}' cannot be read: {exc}") from None
            if b"\x00" in raw:
                raise UserError(f"corpus '{path}' looks binary (NUL byte near byte {offset + raw.index(0)})")
            try:
                text = carry + decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                raise UserError(f"corpus '{path}' is not UTF-8 (bad byte near byte {offset + exc.start})") from None
            offset += len(raw)
            if raw:
                cut = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t"), text.rfind("\r"))
                if cut < 0:
                    carry = text
                    continue
                text, carry = text[:cut], text[cut:]
            lines = text.split("\n")
            for i, line in enumerate(lines):
                yield tokenize(line), i < len(lines) - 1
            if not raw:
                return


Corpus = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], Iterable[Sequence[str]]]


STDIN = "-"


def _paths(corpus: Corpus) -> list:
    return [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus) if _is_path_list(corpus) else []


def reads_stdin(corpus: Corpus) -> bool:
    return any(str(item) == STDIN for item in _paths(corpus))


@contextlib.contextmanager
def stdin_spooled(corpus: Corpus, workdir: Path) -> Iterator[Corpus]:
    """The corpus with `-` (standard input) replaced by a temporary file in `workdir` holding what
    standard input gave: training reads its corpus more than once. The file is removed after."""
    if not reads_stdin(corpus):
        yield corpus
        return
    items = _paths(corpus)
    fd, name = tempfile.mkstemp(prefix=f".stdin-{os.getpid()}-", suffix=".txt", dir=workdir)
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 22)
        spooled = [name if str(item) == STDIN else item for item in items]
        yield spooled[0] if isinstance(corpus, (str, os.PathLike)) else spooled
    finally:
        Path(name).unlink(missing_ok=True)


def corpus_files(corpus: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The files of a corpus given as a path, a directory (every regular file inside, sorted, as
    gensim's PathLineSentences reads it) or a list of those.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for name in ("b.txt", "a.txt.gz", ".hidden"):
    ...     _ = (d / name).write_text("x")
    >>> [p.name for p in corpus_files(d)]
    ['a.txt.gz', 'b.txt']
    """
    items = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not inside:
                raise UserError(f"corpus directory '{path}' has no files")
            files.extend(inside)
        else:
            files.append(path)
    if not files:
        raise UserError("no corpus given")
    return files


def describe(corpus: Corpus) -> str:
    """How error messages and metrics name a corpus."""
    if isinstance(corpus, (str, os.PathLike)):
        return "<stdin>" if str(corpus) == STDIN else str(corpus)
    if _is_path_list(corpus):
        return ", ".join(map(describe, corpus))
    if isinstance(corpus, (Shard, ByteRange)):
        return f"{describe(corpus.corpus)} (part {corpus.index + 1} of {corpus.count})"
    if isinstance(corpus, Stream):
        return describe(corpus.corpus)
    return "<token lists>"


def _is_path_list(corpus) -> bool:
    return isinstance(corpus, (list, tuple)) and bool(corpus) and all(isinstance(p, (str, os.PathLike)) for p in corpus)


def read_corpus(corpus: Corpus, tokenizer: str = "whitespace") -> Iterator[tuple[list[str], bool]]:
    """(tokens, ends_sentence) pieces of a corpus: a path, a directory, a list of those, or an
    iterable of sentences given as token lists (read once per pass: it must be re-iterable, a
    list or an object whose __iter__ starts over, as gensim asks of its corpora). `tokenizer`
    splits the text of files; sentences given as token lists are taken as they are.

    >>> [p for p in read_corpus([["a", "b"], ["c"]])]
    [(['a', 'b'], True), (['c'], True)]
    """
    if isinstance(corpus, Stream):
        yield from corpus.pieces(tokenizer)
        return
    if isinstance(corpus, (str, os.PathLike)) or _is_path_list(corpus):
        for path in corpus_files(corpus):
            yield from read_pieces(path, tokenizer=tokenizer)
        return
    if isinstance(corpus, (str, bytes)) or not isinstance(corpus, Iterable):
        raise UserError(f"a corpus is a path, a directory, a list of those or sentences of tokens, got {type(corpus).__name__}")
    for sentence in corpus:
        if isinstance(sentence, str):
            raise UserError("a corpus of sentences must give each sentence as a list of tokens, not a string")
        yield [str(token) for token in sentence], True


def reduce_counts(counts: Counter, budget: int, floor: int = 0) -> tuple[Counter, int]:
    """word2vec.c's ReduceVocab: while `counts` holds more than `budget` types, drop every type
    counted at most `floor` + 1 times and raise the floor by one. Returns the counts (first-seen
    order kept) and the new floor; `budget` 0 is no limit.

    A type dropped once starts again from zero if it comes back, so a count can be low by at most
    the final floor: the price of counting a corpus with more types than memory.

    >>> reduce_counts(Counter({"a": 3, "b": 1, "c": 2, "d": 1}), budget=2)
    (Counter({'a': 3, 'c': 2}), 1)
    >>> reduce_counts(Counter({"a": 3, "b": 1}), budget=5)
    (Counter({'a': 3, 'b': 1}), 0)
    """
    while budget and len(counts) > budget:
        floor += 1
        counts = Counter({w: c for w, c in counts.items() if c > floor})
    return counts, floor


def count_tokens(corpus: Corpus, budget: int = 0, tokenizer: str = "whitespace") -> tuple[Counter, int]:
    """Word counts (at most `budget` types: `reduce_counts`) and the number of tokens, which may be 0."""
    counts: Counter = Counter()
    total = floor = 0
    for tokens, _ in read_corpus(corpus, tokenizer):
        counts.update(tokens)
        total += len(tokens)
        if budget and len(counts) > budget:  # checked per piece: a piece is a line or a 4 MB block
            counts, floor = reduce_counts(counts, budget, floor)
    return counts, total


def count_words(corpus: Corpus, budget: int = 0, tokenizer: str = "whitespace") -> tuple[Counter, int]:
    """Word counts and the total number of tokens; with `budget`, at most that many types are held
    (`reduce_counts` prunes the rarest when the table passes it, as word2vec.c does)."""
    counts, total = count_tokens(corpus, budget, tokenizer)
    if total == 0:
        raise UserError(f"corpus '{describe(corpus)}' has no words")
    return counts, total


def merge_counts(parts: Iterable[Counter], budget: int = 0) -> Counter:
    """The sum of several counts (the ranks' shards), within `budget` types as `reduce_counts`
    keeps them; a type first seen in an earlier part comes first.

    >>> merge_counts([Counter({"a": 2, "b": 1}), Counter({"c": 1, "a": 1})])
    Counter({'a': 3, 'b': 1, 'c': 1})
    """
    merged: Counter = Counter()
    floor = 0
    for part in parts:
        merged.update(part)
        merged, floor = reduce_counts(merged, budget, floor)
    return merged


class Stream:
    """A corpus that reads another one (`corpus`) its own way, and gives read_corpus its pieces: a
    Shard of it, or it with phrases joined (w2v_nce.phrases.PhrasedCorpus)."""

    corpus: Corpus

    def pieces(self, tokenizer: str = "whitespace") -> Iterator[tuple[list[str], bool]]:
        raise NotImplementedError


@dataclass(frozen=True)
class Shard(Stream):
    """Part `index` of `count` of a corpus, for one of several processes: the corpus is cut into
    units (a sentence, or `unit_tokens` tokens of a longer one, such as text8's single line) and
    the part keeps units index, index + count, ... A unit cut short of its sentence's end ends a
    sentence here (the next unit belongs to another part).

    >>> corpus = [["a", "b"], ["c"], ["d", "e", "f"]]
    >>> [p for p in read_corpus(Shard(corpus, 1, 2, unit_tokens=2))]
    [(['c'], True), (['f'], True)]
    >>> [p for p in read_corpus(Shard(corpus, 0, 2, unit_tokens=2))]
    [(['a', 'b'], True), (['d', 'e'], True)]
    """

    corpus: Corpus
    index: int
    count: int
    unit_tokens: int = 10_000

    def pieces(self, tokenizer: str = "whitespace") -> Iterator[tuple[list[str], bool]]:
        unit = filled = 0
        for tokens, ends in read_corpus(self.corpus, tokenizer):
            at = 0  # tokens[at:] are left (an index: slicing off the front would copy a long line's rest each time)
            while True:
                n = min(len(tokens) - at, self.unit_tokens - filled)
                filled += n
                done = filled == self.unit_tokens or (ends and at + n == len(tokens))
                if unit % self.count == self.index and (n or done):
                    yield tokens[at: at + n], done
                at += n
                if done:
                    unit, filled = unit + 1, 0
                if at == len(tokens):
                    break


def gzipped(path: Path) -> bool:
    """Whether `path` is gzip-compressed (by its magic bytes, as `_open` reads it); False if unreadable."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


_SPACE = re.compile(rb"[ \t\r\n]")  # where read_pieces may cut a piece: never inside a token or a character


def boundary(files: Sequence[Path], sizes: Sequence[int], at: int, reach: int) -> tuple[int, bool]:
    """The cut of plain `files` (of `sizes` bytes), taken as one byte space, nearest after byte `at`:
    (offset, mid_line). The next line start: `at` itself if it is one (a file's start is one), else
    just past the first newline in the `reach` bytes from byte at - 1. With no newline there (a
    line longer than `reach`, such as text8's single line) the first white space byte at or after
    `at` (space, tab, CR; a newline there moves the cut past it): the cut falls between two
    tokens, and ends a sentence on both sides (mid_line), as `Shard`'s 10,000-token units of a long
    line do. A file's end is always a cut. Whatever the rule, a cut is an ASCII byte or a line
    start, so it never falls inside a UTF-8 sequence or a token.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); f = d / "c.txt"
    >>> _ = f.write_bytes(b"ab cd\\nef gh ij kl\\n")
    >>> [boundary([f], [18], at, reach=8) for at in (0, 1, 6, 8, 14)]
    [(0, False), (6, False), (6, False), (8, True), (18, False)]
    """
    start = 0
    for path, size in zip(files, sizes):
        if at < start + size:
            break
        start += size
    else:
        return start, False  # at or past the end
    q = at - start
    if q == 0:
        return at, False
    with open(path, "rb") as f:
        f.seek(q - 1)
        window = f.read(reach)
        newline = window.find(b"\n")
        if newline >= 0:
            return start + q + newline, False
        if q - 1 + len(window) >= size:
            return start + size, False  # the file's last line, unended
        tail, offset = window[1:], q  # bytes from `offset` on, read on while no space comes
        while tail or (tail := f.read(reach)):
            space = _SPACE.search(tail)
            if space:
                cut = offset + space.start()
                return (start + cut + 1, False) if tail[space.start()] == 10 else (start + cut, True)
            offset += len(tail)
            tail = b""
    return start + size, False


@dataclass(frozen=True)
class ByteRange(Stream):
    """Part `index` of `count` of a corpus of plain (uncompressed) files, the files taken in corpus
    order as one byte space: bytes [cut(index · T / count), cut((index + 1) · T / count)) of its T
    bytes, each cut moved forward to a line start, or to a white space when no line start comes
    within the reach: `boundary`, with the reach the read block (`block_bytes`, 4 MiB) or a
    quarter of a part if smaller, so that no part is off its share by more than that (text8's
    100 MB line is cut at spaces; lines shorter than the reach never are). A process reads its
    range only (seeking to it), and the parts read in order give every token once, in corpus
    order: every line, with a line cut between two parts read as two sentences. fastText's
    threads seek to threadId · size / threads likewise, but start mid-word and read on past the
    next thread's start. Parts may be empty (a file smaller than the number of parts).
    `block_bytes` 0: BLOCK_BYTES. With `file_ends`, a file's last line ends a sentence even
    without a newline (as w2v_nce.phrases reads a corpus of files; read_corpus runs it on into the
    next file's first line).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("the cat sat\\non the mat\\n")
    >>> _ = (d / "b.txt").write_text("a dog\\n")
    >>> [list(ByteRange(d, i, 3).sentences()) for i in range(3)]
    [[['the', 'cat', 'sat']], [['on', 'the', 'mat']], [['a', 'dog']]]
    """

    corpus: Corpus
    index: int
    count: int
    block_bytes: int = 0
    file_ends: bool = False

    def segments(self) -> list[tuple[Path, int, int, bool]]:
        """(file, start, stop, ends) of each file this part reads bytes [start, stop) of; ends:
        the part ends inside a line there, or (`file_ends`) at the file's end: its last piece then
        ends a sentence."""
        files = corpus_files(self.corpus)
        sizes = [_size(path) for path in files]
        total = sum(sizes)
        reach = min(self.block_bytes or BLOCK_BYTES, max(1, total // (4 * self.count)))
        (lo, _), (hi, mid_line) = (boundary(files, sizes, k * total // self.count, reach)
                                   for k in (self.index, self.index + 1))
        parts = []
        start = 0
        for path, size in zip(files, sizes):
            a, b = max(lo, start), min(hi, start + size)
            if a < b:
                ends = (mid_line and b == hi) or (self.file_ends and b == start + size)
                parts.append((path, a - start, b - start, ends))
            start += size
        return parts

    def pieces(self, tokenizer: str = "whitespace") -> Iterator[tuple[list[str], bool]]:
        for path, start, stop, ends in self.segments():
            open_tokens = False  # tokens since the last sentence end (sentence_pieces' rule at a file's end)
            for tokens, ended in read_pieces(path, self.block_bytes or BLOCK_BYTES, tokenizer, start, stop):
                open_tokens = (open_tokens or bool(tokens)) and not ended
                yield tokens, ended
            if ends and open_tokens:
                yield [], True

    def sentences(self, tokenizer: str = "whitespace") -> Iterator[list[str]]:
        """The part's sentences (a last one unended included)."""
        return joined_sentences(self.pieces(tokenizer))


def joined_sentences(pieces: Iterable[tuple[list[str], bool]]) -> Iterator[list[str]]:
    """(tokens, ends_sentence) pieces joined into sentences, a last one unended included."""
    sentence: list[str] = []
    for tokens, ends in pieces:
        sentence.extend(tokens)
        if ends:
            yield sentence
            sentence = []
    if sentence:
        yield sentence


def file_sizes(corpus: Corpus) -> list[tuple[str, int | None]] | None:
    """The files of a corpus of paths with their sizes (None: missing), or None for a corpus of
    another kind: what every node must see alike for the ranks' shards to tile the corpus."""
    if isinstance(corpus, Stream):
        return file_sizes(corpus.corpus)
    if not (isinstance(corpus, (str, os.PathLike)) or _is_path_list(corpus)):
        return None
    sizes = []
    for path in corpus_files(corpus):
        try:
            sizes.append((str(path), path.stat().st_size))
        except OSError:
            sizes.append((str(path), None))
    return sizes


def _size(path: Path) -> int:
    """A file's bytes; a missing one is the error one process would give when reading it."""
    try:
        return path.stat().st_size
    except OSError:
        _open(path)  # says what is wrong (missing, a directory)
        raise
