"""The Python API: train, query and keep a model as gensim users do.

`Word2Vec(**options)` takes any `Config` key; `train` takes a path, a directory, a list of
those or sentences as token lists; `wv` is a gensim `KeyedVectors` of the input vectors (with
`subwords=True`, a `FastTextKeyedVectors`: `model.wv["unseenword"]` works);
`predict` gives p(word | context); a model is its run directory (the CLI's `--out`).
`train` on a trained (or loaded) model continues it on new text into a new run directory (the
CLI's `train --init RUN`), with `update_vocab=True` adding the new words. `callbacks` are called
at every epoch's end with the model as it is then and the epoch's history record.

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
from typing import Any, Callable, Sequence

import torch

from w2v_nce.atomic import atomic_path
from w2v_nce.checkpoint import CHECKPOINT, Loaded, checkpoint_config, load_checkpoint, load_model
from w2v_nce.config import Config, apply_overrides, asked
from w2v_nce.corpus import Corpus
from w2v_nce.errors import UserError
from w2v_nce.phrases import PHRASE_MODEL, Phrases
from w2v_nce.train import Trainer, train

RUN_FILES = (CHECKPOINT, "config.toml", "metrics.json", "vectors.txt", PHRASE_MODEL)


Callback = Callable[["Word2Vec", dict], Any]


class Word2Vec:
    """A model: its settings, and once trained, its run directory and tables.

    `callbacks`: functions f(model, record) called at the end of every epoch, with this model as
    it is then (`wv`, `predict` and `run_dir` show the run being trained) and a copy of the
    epoch's history record (epoch, loss, words, seconds, lr, and with a held-out text `heldout`,
    with eval_each_epoch the scores). A callback that raises `w2v_nce.StopTraining` ends the run
    after this epoch, as if it were the last; any other exception fails the run (its last
    checkpoint stays)."""

    def __init__(self, config: str | Path | None = None, callbacks: Sequence[Callback] = (), **options):
        self._asked = asked(config, options)  # what resuming compares with the run's own settings
        self.config: Config = apply_overrides(Config(), self._asked)
        self.callbacks = list(callbacks)
        self.run_dir: Path | None = None
        self.metrics: dict | None = None
        self._state: dict | None = None
        self._wv = None
        self._loaded: Loaded | None = None
        self._phrases: Phrases | None = None
        self._training: Trainer | None = None  # while a callback runs: the run being trained

    def train(self, corpus: Corpus, out_dir: str | Path | None = None, resume: bool = False,
              progress_bar: bool = False, update_vocab: bool = False, **options) -> "Word2Vec":
        """Train on `corpus`, writing the run into `out_dir` (default: a new temporary directory,
        or this model's own run directory when resuming). `options` are Config keys for this run
        and the next ones (epochs=1, lr=0.01...).

        A model already trained or loaded continues: its tables and settings start a new run in
        `out_dir` (another directory than its own, which is only read), on its vocabulary, whose
        unknown words the new text loses, or with `update_vocab` on the vocabulary grown by the
        new text's words seen min_count times (gensim's build_vocab(update=True) then train);
        the learning rate starts again at its α₀. `resume=True` instead finishes its own
        interrupted run. Under torchrun every process calls this and rank 0's model holds the
        run; on the other ranks `metrics` stays None."""
        given = {**self._asked, **options}
        apply_overrides(Config(), given)  # bad options fail here, before anything is read
        init = self.run_dir if self.run_dir is not None and not resume else None
        if out_dir is None:
            out_dir = self.run_dir if resume and self.run_dir else Path(tempfile.mkdtemp(prefix="w2v-nce-"))
        before, config = self.run_dir, self.config
        try:
            self.metrics = train(corpus, out_dir, apply_overrides(self.config, options), resume=resume,
                                 progress_bar=progress_bar, asked=given, init=init, update_vocab=update_vocab,
                                 callbacks=[self._during(f, Path(out_dir)) for f in self.callbacks])
        except BaseException:
            if self._training is not None:  # a callback saw the failed run: back to the model as it was
                self.config, self.run_dir, self._state, self._training = config, None, None, None
                if before is not None:
                    self._open(before)
            raise
        self._asked = given
        if self.metrics is not None:  # None: a torchrun rank but 0 (rank 0 writes the run)
            self._open(Path(out_dir))
        return self

    @classmethod
    def load(cls, run_dir: str | Path) -> "Word2Vec":
        """The model trained into `run_dir` (by `train`, `save` or the CLI's `train --out`)."""
        model = cls.__new__(cls)
        model.metrics = None
        model.callbacks = []
        model._training = None
        model._open(Path(run_dir))
        model._asked = {}  # a loaded model resumes (and continues) as it was trained, unless told otherwise
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
        self._wv = self._loaded = self._phrases = self._training = None

    def _during(self, callback: Callback, run_dir: Path) -> Callable[[Trainer, dict], Any]:
        """`callback` as the trainer calls it: with this model showing the run being trained."""

        def call(trainer: Trainer, record: dict) -> Any:
            self._training, self.run_dir, self.config = trainer, run_dir, trainer.cfg
            self._state = self._wv = self._loaded = self._phrases = None
            return callback(self, record)

        return call

    def _run(self) -> Path:
        if self.run_dir is None:
            raise UserError("the model has not been trained yet: call train() first")
        return self.run_dir

    def _checkpoint(self) -> dict:
        self._run()
        if self._state is None and self._training is not None:
            self._state = self._training.state_dict()  # the tables as they are at this epoch's end
        return self._state

    def _model(self) -> Loaded:
        if self._loaded is None:
            self._loaded = load_model(self._checkpoint())
        return self._loaded

    def __repr__(self) -> str:
        where = f", run_dir='{self.run_dir}'" if self.run_dir else ""
        return f"Word2Vec(arch={self.config.arch!r}, loss={self.config.loss!r}, dim={self.config.dim}{where})"
