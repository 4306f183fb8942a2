"""Word vectors as a plain (words, matrix) pair, and word2vec text/binary file I/O.

Querying and I/O of vectors live here, apart from training (like gensim's KeyedVectors).

>>> v = Vectors(["king", "queen"], np.array([[3.0, 4.0], [1.0, 0.0]]))
>>> len(v), v.dim, "king" in v, v.index["queen"]
(2, 2, True, 1)
>>> v.unit()[0].tolist()
[0.6000000238418579, 0.800000011920929]

Both file formats are the ones word2vec.c and gensim read and write: a header line
"COUNT DIM", then one entry per word, either "word v1 v2 ...\\n" (text) or the word's
UTF-8 bytes, a space, DIM little-endian float32 and "\\n" (binary).
"""

from __future__ import annotations

import codecs
import io
import os
import re
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from w2v_nce.atomic import atomic_path
from w2v_nce.errors import UserError

PathLike = str | os.PathLike

_FLOAT32_LE = np.dtype("<f4")
_SNIFF_BYTES = 64 * 1024
_HEADER_BYTES = 4096  # a longer first line is no header (and is not read whole)
_ROWS_PER_CHUNK = 1024
_WHITESPACE = re.compile(r"\s")


@dataclass(eq=False)
class Vectors:
    """One float32 row per word, rows in `words` order (most frequent first, by convention).

    Treat as immutable: `unit()` is cached.
    """

    words: list[str]
    matrix: np.ndarray
    index: dict[str, int] = field(init=False, repr=False)
    _unit: np.ndarray | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.words = list(self.words)
        self.matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.words):
            raise ValueError(
                f"matrix of shape {self.matrix.shape} does not fit {len(self.words)} words"
            )
        self.index = {word: row for row, word in enumerate(self.words)}
        if len(self.index) != len(self.words):
            duplicate = next(w for row, w in enumerate(self.words) if self.index[w] != row)
            raise ValueError(f"duplicate word {duplicate!r}")

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def keyed_vectors(self):
        """These vectors as a gensim `KeyedVectors` (sharing no memory with `matrix`)."""
        from gensim.models import KeyedVectors

        kv = KeyedVectors(self.dim, dtype=np.float32)
        kv.add_vectors(self.words, self.matrix)
        return kv

    def unit(self) -> np.ndarray:
        """Rows scaled to unit L2 length (all-zero rows stay zero); computed once."""
        if self._unit is None:
            norms = np.linalg.norm(self.matrix, axis=1, keepdims=True)
            self._unit = self.matrix / np.where(norms > 0, norms, 1).astype(np.float32)
        return self._unit


# --------------------------------------------------------------------------- saving


def save_word2vec(vectors: Vectors, path: PathLike, binary: bool = False) -> None:
    """Write `vectors` in word2vec text (default) or binary format, atomically (`write_word2vec`)."""
    write_word2vec(vectors.words, vectors.matrix, path, binary)


def write_word2vec(words: Sequence[str], matrix: np.ndarray, path: PathLike, binary: bool = False) -> None:
    """Write `words` with their rows of `matrix` (any float array, rows may be strided: the trainer's
    padded table is written without a copy) in word2vec text (default) or binary format.

    The data goes to a hidden temporary file next to `path`, which replaces `path` only once
    complete and synced (atomic_path): an interrupted or failed save leaves no partial file (and an old file intact).
    Text values are written with 9 significant digits, which read back to the same float32.
    """
    path = Path(path)
    bad = next((w for w in words if not w or _WHITESPACE.search(w)), None)
    if bad is not None:
        raise UserError(f"cannot write vectors file '{path}': word {bad!r} is empty or contains whitespace")
    with atomic_path(path, "vectors file") as tmp, open(tmp, "wb") as out:
        out.write(f"{len(words)} {matrix.shape[1]}\n".encode())
        for chunk in (_encode_binary if binary else _encode_text)(words, matrix):
            out.write(chunk)


def _encode_text(words: Sequence[str], matrix: np.ndarray) -> Iterator[bytes]:
    """Chunks of "word v1 v2 ...\\n" lines ('%.9g' round-trips any float32 exactly), the numbers
    formatted by the C kernel where it is built (the same bytes, ~8x faster) and worth loading:
    torch, which it needs, already imported, or a matrix large enough to repay the import."""
    fused = None
    if "torch" in sys.modules or matrix.size > 5_000_000:
        from w2v_nce import fused
    row_format = "%s " + " ".join(["%.9g"] * matrix.shape[1]) + "\n"
    for start in range(0, len(words), _ROWS_PER_CHUNK):
        names = words[start : start + _ROWS_PER_CHUNK]
        if fused is not None and fused.AVAILABLE:
            text, ends = fused.format_rows(matrix[start : start + _ROWS_PER_CHUNK])
            cuts = [0, *ends.tolist()]
            yield b"".join(w.encode() + text[a:b] for w, a, b in zip(names, cuts, cuts[1:]))
            continue
        rows = matrix[start : start + _ROWS_PER_CHUNK].astype(np.float32).tolist()
        yield "".join(row_format % (w, *r) for w, r in zip(names, rows)).encode()


def _encode_binary(words: Sequence[str], matrix: np.ndarray) -> Iterator[bytes]:
    """Chunks of b"word " + DIM little-endian float32 + b"\\n" entries, as word2vec.c writes."""
    for start in range(0, len(words), _ROWS_PER_CHUNK):
        rows = matrix[start : start + _ROWS_PER_CHUNK].astype(_FLOAT32_LE)
        yield b"".join(w.encode() + b" " + r.tobytes() + b"\n" for w, r in zip(words[start : start + _ROWS_PER_CHUNK], rows))


# --------------------------------------------------------------------------- loading


def load_word2vec(path: PathLike, binary: bool | None = None) -> Vectors:
    """Read a word2vec text or binary file (written by us, gensim or word2vec.c).

    `binary=None` guesses the format: a NUL byte or invalid UTF-8 in the first 64 KiB after
    the header means binary. Any malformed input raises `UserError` naming file and line.

    The header is not trusted: memory is allocated for no more rows than the rest of the file can
    hold, so a header claiming more vectors than the file has is an error, not an allocation.
    """
    name = f"vectors file '{path}'"
    try:
        with open(path, "rb") as file:
            count, dim = _parse_header(file.readline(_HEADER_BYTES), name)
            regular = stat.S_ISREG(os.fstat(file.fileno()).st_mode)
            f = file if regular else io.BytesIO(file.read())  # a pipe's size is known once it is read
            start = f.tell()
            size = f.seek(0, os.SEEK_END) - start  # bytes after the header
            f.seek(start)
            if binary is None:
                binary = _looks_binary(f.read(_SNIFF_BYTES))
                f.seek(start)
            if binary:
                return _read_binary(f.read(), count, dim, name)
            return _read_text(f, count, dim, size, name)
    except FileNotFoundError:
        raise UserError(f"{name} does not exist") from None
    except OSError as exc:
        raise UserError(f"cannot read {name}: {exc.strerror or exc}") from None


def _parse_header(line: bytes, name: str) -> tuple[int, int]:
    """'COUNT DIM' -> (count, dim).

    >>> _parse_header(b"3 100\\n", "f")
    (3, 100)
    """
    if not line:
        raise UserError(f"{name} is empty")
    fields = line.split()
    try:
        count, dim = (int(x) for x in fields)
        if not 0 <= count < 1 << 63 or not 1 <= dim < 1 << 63:
            raise ValueError
    except ValueError:
        shown = line[:40].decode("utf-8", "replace").strip()
        raise UserError(f"{name} line 1: expected a header 'COUNT DIM', found '{shown}'") from None
    return count, dim


def _looks_binary(sniff: bytes) -> bool:
    """NUL or invalid UTF-8 (a character cut by the sniff's end excepted) means binary.

    >>> _looks_binary(b"the 0.5 -1.25\\n"), _looks_binary(b"the \\x00\\x00\\x80\\x3f")
    (False, True)
    """
    if b"\0" in sniff:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sniff, final=len(sniff) < _SNIFF_BYTES)
    except UnicodeDecodeError:
        return True
    return False


def _read_text(lines, count: int, dim: int, size: int, name: str) -> Vectors:
    """Rows from `lines`, the `size` bytes after the header; each row takes at least 2 x dim + 1 of
    them ("w 1 2"), so no more than that many rows are allocated, whatever the header says."""
    words: list[str] = []
    first_line: dict[str, str] = {}
    room = min(count, size // (2 * dim + 1))
    matrix = np.empty((room, dim), dtype=np.float32)
    line_no = 1
    for raw in lines:
        line_no += 1
        where = f"{name} line {line_no}"
        if len(words) == count:
            if raw.strip():
                raise UserError(f"{where}: more rows than the {count} the header says")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{where}: not valid UTF-8 (is this a binary file?)") from None
        word, *values = text.rstrip().split(" ")
        if not word:
            raise UserError(f"{where}: line starts with a space or is empty, expected a word")
        if len(values) != dim:
            raise UserError(f"{where}: expected {dim} values, found {len(values)}")
        try:
            matrix[len(words)] = np.array(values, dtype=np.float32)
        except ValueError:
            bad = next(v for v in values if not _is_float(v))
            raise UserError(f"{where}: value '{bad[:20]}' of word '{word}' is not a number") from None
        except IndexError:  # more rows than its size allowed when opened
            raise UserError(f"{name} changed while being read") from None
        _add_word(words, first_line, word, f"line {line_no}", matrix, where)
    if len(words) < count:
        raise UserError(f"{name} has {len(words)} rows but its header says {count}"
                        + _at_most(count, room, dim, size, "rows"))
    return Vectors(words, matrix)


def _read_binary(data: bytes, count: int, dim: int, name: str) -> Vectors:
    """Entries from `data`, the bytes after the header; each takes at least 4 x dim + 2 of them
    (a one-byte word, a space, the floats), so no more than that many rows are allocated."""
    words: list[str] = []
    first_entry: dict[str, str] = {}
    vector_bytes = dim * _FLOAT32_LE.itemsize
    room = min(count, len(data) // (vector_bytes + 2))
    matrix = np.empty((room, dim), dtype=np.float32)
    pos = 0
    for entry in range(1, count + 1):
        where = f"{name} (binary) word {entry}"
        while data[pos : pos + 1] == b"\n":  # word2vec.c ends each vector with one
            pos += 1
        space = data.find(b" ", pos)
        if space < 0 or space + 1 + vector_bytes > len(data):
            raise UserError(f"{name} (binary) ends after {entry - 1} of the {count} words its header says"
                            + _at_most(count, room, dim, len(data), "words"))
        raw_word = data[pos:space]
        if not raw_word or b"\n" in raw_word:
            raise UserError(f"{where}: expected a word followed by a space (is this a text file?)")
        try:
            word = raw_word.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{where}: not valid UTF-8 (is this a text file?)") from None
        matrix[entry - 1] = np.frombuffer(data, _FLOAT32_LE, dim, space + 1)
        _add_word(words, first_entry, word, f"word {entry}", matrix, where)
        pos = space + 1 + vector_bytes
    if data[pos:].strip(b"\n"):
        raise UserError(f"{name} (binary): data after the {count} words its header says")
    return Vectors(words, matrix)


def _at_most(count: int, room: int, dim: int, size: int, rows: str) -> str:
    """What the file could hold, when its header claims more.

    >>> _at_most(10**11, 2, 300, 1500, "rows")
    ' (its 1500 bytes after the header hold at most 2 rows of 300 values)'
    """
    return f" (its {size} bytes after the header hold at most {room} {rows} of {dim} values)" if count > room else ""


def _add_word(
    words: list[str], first: dict[str, str], word: str, at: str, matrix: np.ndarray, where: str
) -> None:
    """Append `word`, whose vector is already in `matrix[len(words)]`; `at` locates it."""
    if word in first:
        raise UserError(f"{where}: duplicate word '{word}' (first seen at {first[word]})")
    if not np.isfinite(matrix[len(words)]).all():
        raise UserError(f"{where}: vector of word '{word}' has a non-finite value")
    first[word] = at
    words.append(word)


def _is_float(text: str) -> bool:
    try:
        np.float32(text)
    except ValueError:
        return False
    return True
