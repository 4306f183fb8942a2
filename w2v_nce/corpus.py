"""Streaming tokenizer: a corpus file (plain or .gz) as whitespace tokens, in bounded memory.

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
import gzip
import zlib
from collections import Counter
from pathlib import Path
from typing import BinaryIO, Iterator

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


def read_pieces(path: Path | str, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[list[str], bool]]:
    """Yield (tokens, ends_sentence) pieces in file order.

    Raises UserError for a missing, binary (NUL bytes) or non-UTF-8 file.
    """
    path = Path(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    carry = ""
    offset = 0
    with _open(path) as f:
        while True:
            try:
                raw = f.read(block_bytes)
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
                yield line.split(), i < len(lines) - 1
            if not raw:
                return


def count_words(path: Path | str) -> tuple[Counter, int]:
    """Word counts and the total number of tokens."""
    counts: Counter = Counter()
    total = 0
    for tokens, _ in read_pieces(path):
        counts.update(tokens)
        total += len(tokens)
    if total == 0:
        raise UserError(f"corpus '{path}' has no words")
    return counts, total
