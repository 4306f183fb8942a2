"""The corpus encoded as word ids in a temporary file of the run, read back in chunks each epoch."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from w2v_nce.corpus import Corpus
from w2v_nce.vocab import Vocab, word_count


def _malloc_trim():
    """glibc's malloc_trim, or a no-op where the C library has none."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


# The memory a chunk's work freed stays in glibc's per-thread arenas, and without a trim the peak
# resident set grows with the number of chunks, the corpus's length (docs/results.md, growth curves).
release_freed_memory = _malloc_trim()


class EncodedCorpus:
    """The corpus as int32 ids in a temporary file, read back in chunks (bounded memory)."""

    def __init__(self, corpus: Corpus, vocab: Vocab, workdir: Path, tokenizer: str = "whitespace"):
        """Encode `corpus` into a temporary file in `workdir` (`words` may be 0: `train` checks all
        ranks' words)."""
        fd, name = tempfile.mkstemp(prefix=f".ids-{os.getpid()}-", suffix=".bin", dir=workdir)
        self.path = Path(name)
        self.words = 0  # in-vocabulary tokens
        try:
            with os.fdopen(fd, "wb") as f:
                for ids in vocab.encode(corpus, tokenizer):
                    ids.tofile(f)
                    self.words += word_count(ids)
        except BaseException:
            self.close()
            raise
        self.length = self.path.stat().st_size // 4  # ids (a shard may have none)

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        # read, not mapped: the pages of a mapped file count in the process's resident memory
        with open(self.path, "rb") as f:
            for _ in range(0, self.length, size):
                release_freed_memory()
                yield np.fromfile(f, dtype=np.int32, count=size)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
