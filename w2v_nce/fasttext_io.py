"""A run's vectors as fastText's users keep them: gensim's `FastTextKeyedVectors`, Facebook's .bin,
and the vector of any word, seen or not.

A subword run's input table holds V word rows and then the rows of the buckets its words use
(w2v_nce.subwords); gensim's `vectors_vocab` and `vectors_ngrams` are the word rows and the full
buckets x dim table, the buckets no row stores at their initial values (subwords.full_buckets), as
in fastText's own table. A word's vector (`vectors`, what fastText's .vec and our vectors.txt hold)
is the mean of its own row and its n-grams' rows. An unseen word's vector is the mean of its
n-grams' rows alone (fastText's getWordVector, gensim's get_vector).

Facebook's .bin is written through gensim's `save_facebook_model`, from a gensim `FastText` model
object made from our tables and settings; both gensim's `load_facebook_model` and fastText's
`load_model` read it (tests/test_fasttext_io.py). `open_vectors` opens what the query commands take:
a run directory, such a .bin, or a word2vec text or binary file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from w2v_nce.atomic import atomic_path
from w2v_nce.errors import UserError

FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")  # the first 4 bytes of Facebook's .bin (FILEFORMAT_MAGIC_INT32)


def keyed_vectors(state: dict, fasttext: bool = False):
    """A checkpoint's word vectors as gensim holds them: a `FastTextKeyedVectors` for a subword run
    (`kv["anyword"]` works), a `KeyedVectors` otherwise (with `fasttext`, a FastTextKeyedVectors
    without buckets); word counts in the "count" attribute. The word rows are a view of the
    checkpoint's table; the n-gram table is fastText's, every bucket a row (subwords.full_buckets)."""
    import torch
    from gensim.models import KeyedVectors
    from gensim.models.fasttext import FastTextKeyedVectors

    from w2v_nce.checkpoint import checkpoint_config, input_table
    from w2v_nce.model import fits_in_memory
    from w2v_nce.subwords import bag_means, full_buckets

    cfg = checkpoint_config(state)
    words = list(state["words"])
    table, subwords, seed = input_table(state, cfg, words)
    table = table.float()
    vectors = table.numpy()
    if subwords is not None:  # each word's mean with its n-grams (w2v_nce.model.Model.word_vectors)
        vectors = bag_means(table, torch.from_numpy(subwords.offsets), torch.from_numpy(subwords.rows)).numpy()
        kv = FastTextKeyedVectors(cfg.dim, cfg.minn, cfg.maxn, cfg.buckets, dtype=np.float32)
    elif fasttext:
        kv = FastTextKeyedVectors(cfg.dim, cfg.minn, 0, 0, dtype=np.float32)
    else:
        kv = KeyedVectors(cfg.dim, dtype=np.float32)
    kv.add_vectors(words, vectors)
    kv.allocate_vecattrs(attrs=["count"], types=[np.int64])
    kv.expandos["count"][:] = state["counts"].numpy()
    if subwords is not None:
        fits_in_memory(len(table) + cfg.buckets, cfg.dim)  # fastText's whole table, next to the run's
        kv.vectors_vocab = table.numpy()[: len(words)]
        kv.vectors_ngrams = full_buckets(table, len(words), subwords.stored, seed, cfg.buckets)
        # each word's n-gram buckets (gensim's recalc_char_ngram_buckets, from our layout at once)
        kv.buckets_word = np.split((subwords.full_rows() - len(words)).astype(np.uint32), subwords.offsets[1:-1])
        kv.buckets_word = [b[1:] for b in kv.buckets_word]  # the word's own row left out
    elif fasttext:
        kv.vectors_vocab, kv.vectors_ngrams = kv.vectors, np.zeros((0, cfg.dim), dtype=np.float32)
    return kv


def gensim_model(state: dict):
    """A gensim `FastText` model holding a checkpoint's tables and settings (what gensim's
    save_facebook_model writes): input rows in `wv`, output rows as syn1neg (syn1 for hs, which
    fastText sizes one row per word: the last is zero)."""
    import torch
    from gensim.models import FastText

    from w2v_nce.checkpoint import checkpoint_config

    cfg = checkpoint_config(state)
    words = list(state["words"])
    model = FastText(vector_size=cfg.dim, window=cfg.window, epochs=cfg.epochs, min_count=cfg.min_count,
                     sample=cfg.sample, sg=int(cfg.arch == "skipgram"), hs=int(cfg.loss == "hs"),
                     negative=0 if cfg.loss == "hs" else cfg.negatives, min_n=cfg.minn, max_n=cfg.maxn,
                     bucket=cfg.buckets if cfg.subwords else 0)
    model.wv = keyed_vectors(state, fasttext=True)  # a word-level run: fastText's model without buckets
    model.corpus_total_words = int(state["counts"].sum())
    out = state["model"]["out"].float()
    if cfg.loss == "hs":
        model.syn1 = torch.cat([out, torch.zeros(len(words) - len(out), cfg.dim)]).numpy()
    else:
        model.syn1neg = out.numpy()
    return model


def save_fasttext_bin(state: dict, path: Path | str) -> None:
    """Facebook's .bin of a checkpoint, written atomically (gensim's save_facebook_model)."""
    from gensim.models.fasttext import save_facebook_model

    model = gensim_model(state)
    with atomic_path(Path(path), "fastText model") as tmp:
        save_facebook_model(model, str(tmp))


def open_vectors(path: Path | str):
    """What a query command is given: a run directory (its checkpoint: a gensim KeyedVectors, or
    FastTextKeyedVectors with subwords), Facebook's .bin (gensim's load_facebook_vectors), or a
    word2vec text or binary file (w2v_nce.vectors.Vectors)."""
    from w2v_nce.vectors import load_word2vec

    path = Path(path)
    if path.is_dir():  # torch from here on, for the checkpoint (a vectors file needs none)
        from w2v_nce.checkpoint import CHECKPOINT, load_checkpoint

        if not (path / CHECKPOINT).is_file():
            raise UserError(f"'{path}' is a directory but not a run (no {CHECKPOINT} in it)")
        return keyed_vectors(load_checkpoint(path / CHECKPOINT))
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise UserError(f"vectors file '{path}' does not exist") from None
    except OSError as exc:
        raise UserError(f"cannot read vectors file '{path}': {exc.strerror or exc}") from None
    if head == FASTTEXT_MAGIC:
        return _load_bin(path)
    return load_word2vec(path)


def _load_bin(path: Path):
    from gensim.models.fasttext import load_facebook_vectors

    try:
        return load_facebook_vectors(str(path))
    except Exception as exc:  # gensim raises many types for a damaged file
        raise UserError(f"fastText model '{path}' cannot be read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def has_subwords(kv) -> bool:
    """Whether `kv` gives vectors to unseen words (a FastTextKeyedVectors with buckets)."""
    return getattr(kv, "bucket", 0) > 0 and getattr(kv, "max_n", 0) > 0


def can_answer(kv, word: str) -> bool:
    """Whether `kv` has a vector for `word`: a known word, or with subwords one with n-grams."""
    if word in kv.key_to_index:
        return True
    if not has_subwords(kv):
        return False
    from w2v_nce.subwords import ngrams

    return bool(ngrams(word, kv.min_n, kv.max_n))


def word_vector(kv, word: str) -> np.ndarray:
    """`word`'s vector: its own if known, else with subwords the mean of its n-grams' rows; a
    UserError for a word without either."""
    if not can_answer(kv, word):
        raise UserError(unknown_word(kv, word))
    return kv.get_vector(word)


def unknown_word(kv, word: str) -> str:
    """Why `kv` has no vector for `word`."""
    if has_subwords(kv):
        return (f"word '{word}' is not in the vocabulary and has no character n-grams of {kv.min_n} to {kv.max_n} "
                "characters")
    return f"word '{word}' is not in the vocabulary (and the model has no subwords to build one from)"
