"""The Python API: train, query and keep a model as gensim users do.

`Word2Vec(**options)` takes any `Config` key; `train` takes a path, a directory, a list of
those or sentences as token lists; `wv` is a gensim `KeyedVectors` of the input vectors (with
`subwords=True`, a `FastTextKeyedVectors`: `model.wv["unseenword"]` works);
`predict` gives p(word | context); a model is its run directory (the CLI's `--out`).

>>> from w2v_nce import Word2Vec
>>> sentences = [["the", "king", "rules"], ["the", "queen", "rules"]] * 200
>>> model = Word2Vec(dim=8, epochs=2, min_count=1, window=2, threads=1, loss="nce").train(sentences)
>>> sorted(model.wv.index_to_key)
['king', 'queen', 'rules', 'the']
>>> words = [w for w, _ in model.predict(["the", "rules"], topn=4)]
>>> sorted(words)
['king', 'queen', 'rules', 'the']
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from w2v_nce.atomic import atomic_path
from w2v_nce.checkpoint import CHECKPOINT, Loaded, checkpoint_config, load_checkpoint, load_model
from w2v_nce.config import Config, apply_overrides, asked
from w2v_nce.corpus import Corpus
from w2v_nce.errors import UserError
from w2v_nce.phrases import PHRASE_MODEL, Phrases
from w2v_nce.train import train

RUN_FILES = (CHECKPOINT, "config.toml", "metrics.json", "vectors.txt", PHRASE_MODEL)


class Word2Vec:
    """A model: its settings, and once trained, its run directory and tables."""

    def __init__(self, config: str | Path | None = None, **options):
        self._asked = asked(config, options)  # what resuming compares with the run's own settings
        self.config: Config = apply_overrides(Config(), self._asked)
        self.run_dir: Path | None = None
        self.metrics: dict | None = None
        self._state: dict | None = None
        self._wv = None
        self._loaded: Loaded | None = None
        self._phrases: Phrases | None = None

    def train(self, corpus: Corpus, out_dir: str | Path | None = None, resume: bool = False,
              progress_bar: bool = False) -> "Word2Vec":
        """Train on `corpus`, writing the run into `out_dir` (default: a new temporary directory,
        or this model's own run directory when resuming). Under torchrun every process calls this
        and rank 0's model holds the run; on the other ranks `metrics` stays None."""
        if out_dir is None:
            out_dir = self.run_dir if resume and self.run_dir else Path(tempfile.mkdtemp(prefix="w2v-nce-"))
        self.metrics = train(corpus, out_dir, self.config, resume=resume, progress_bar=progress_bar, asked=self._asked)
        if self.metrics is not None:  # None: a torchrun rank but 0 (rank 0 writes the run)
            self._open(Path(out_dir))
        return self

    @classmethod
    def load(cls, run_dir: str | Path) -> "Word2Vec":
        """The model trained into `run_dir` (by `train`, `save` or the CLI's `train --out`)."""
        model = cls.__new__(cls)
        model.metrics = None
        model._open(Path(run_dir))
        model._asked = {}  # a loaded model resumes as it was trained, unless told otherwise
        return model

    def save(self, run_dir: str | Path) -> None:
        """Copy this model's run (checkpoint, config, metrics, vectors) into `run_dir`."""
        source, target = self._run(), Path(run_dir)
        if target.resolve() == source.resolve():
            return
        for name in RUN_FILES:
            if (source / name).exists():
                with atomic_path(target / name) as tmp:
                    shutil.copyfile(source / name, tmp)

    @property
    def wv(self):
        """The input vectors as a gensim `KeyedVectors` (word counts in its "count" attribute); with
        subwords a `FastTextKeyedVectors`, which gives any word a vector (w2v_nce.fasttext_io)."""
        if self._wv is None:
            from w2v_nce.fasttext_io import keyed_vectors

            self._wv = keyed_vectors(self._checkpoint())
        return self._wv

    @property
    def phrases(self) -> Phrases | None:
        """The phrase model the run joined its corpus with (`phrases=N`), or None: `apply` it to
        new text, or to the words of a query, to look them up as the model knows them."""
        if not self.config.phrases:
            return None
        if self._phrases is None:
            self._phrases = Phrases.load(self._run() / PHRASE_MODEL)
        return self._phrases

    @torch.no_grad()
    def predict(self, context: Sequence[str], topn: int = 10) -> list[tuple[str, float]]:
        """The `topn` most probable centre words given the context words, with p(word | context).

        The distribution is the model's exact one, normalised over the whole vocabulary (for hs,
        the product along each word's Huffman path): for nce that is the softmax of the scores,
        not exp(score) taken at its word; docs/results.md measures how close the two are.
        Skip-gram models a single context word; with several, their input vectors are averaged.
        Unknown context words are left out. Negative sampling's scores estimate no
        probability: a UserError.
        """
        loaded = self._model()
        if not loaded.objective.models_probability:
            raise UserError(f"predict needs a model of p(word | context): {loaded.objective.why_no_probability} "
                            "(train with --loss softmax, hs or nce)")
        ids = [loaded.vocab.index[w] for w in context if w in loaded.vocab.index]
        if not ids:
            raise UserError(f"none of the context words {list(context)!r} is in the vocabulary")
        h = loaded.model.context_vectors(*loaded.model.input_bags(torch.tensor(ids), torch.tensor([0, len(ids)])))
        scores, _ = loaded.model.scores(h, None)
        log_p = loaded.objective.vocab_log_prob(scores.double())[0]
        top = torch.topk(log_p, min(topn, len(log_p)))
        return [(loaded.vocab.words[i], float(p)) for p, i in zip(top.values.exp(), top.indices.tolist())]

    # -- internals

    def _open(self, run_dir: Path) -> None:
        self._state = load_checkpoint(run_dir / CHECKPOINT)
        self.config = checkpoint_config(self._state)
        self.run_dir = run_dir
        self._wv = self._loaded = self._phrases = None

    def _run(self) -> Path:
        if self.run_dir is None:
            raise UserError("the model has not been trained yet: call train() first")
        return self.run_dir

    def _checkpoint(self) -> dict:
        self._run()
        return self._state

    def _model(self) -> Loaded:
        if self._loaded is None:
            self._loaded = load_model(self._checkpoint())
        return self._loaded

    def __repr__(self) -> str:
        where = f", run_dir='{self.run_dir}'" if self.run_dir else ""
        return f"Word2Vec(arch={self.config.arch!r}, loss={self.config.loss!r}, dim={self.config.dim}{where})"
