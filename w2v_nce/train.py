"""Training, top to bottom: build the parts, loop over the epochs, save.

`train` is the whole job: read the run it resumes or continues (w2v_nce.grow), build the
vocabulary, the trainer and its first tables, encode the corpus, then for each epoch
`Trainer.run_epoch`, `end_epoch` (evaluations, the held-out loss, the callbacks: whether to stop)
and a checkpoint, and at the end vectors.txt (the best epoch's, with a held-out text) and
metrics.json. `Trainer` holds what a run builds once: the objective (w2v_nce.objectives), the
update rule (w2v_nce.updates), the model (w2v_nce.model), the step path (w2v_nce.steps, chosen
once and recorded), the random generator and the progress.

Data flows one way: a background thread turns each chunk of the encoded corpus into the step's
work (subsampled, shuffled examples with their noise words, or the kernel's centre words), and
the workers (Hogwild threads on the CPU, one stream on a GPU) train slices of it while the
learning rate decays linearly with the words processed (`LinearDecay`).

Under torchrun every process runs `train` on its shard of the corpus (w2v_nce.distributed): the
trainer calls a `sync` after its slices and at each epoch's end, and `Dist.master`, the one
process that writes files and draws the progress bar.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from w2v_nce import distributed
from w2v_nce.atomic import remove_stale_temporaries, write_text
from w2v_nce.checkpoint import (CHECKPOINT, checkpoint_config, checkpoint_vocab, grow_config, input_table,
                                load_checkpoint, restore, resume_config, save_checkpoint)
from w2v_nce.config import Config, phrase_thresholds, to_toml
from w2v_nce.corpus import Corpus, describe, reads_stdin, stdin_spooled
from w2v_nce.diagnose import HeldOut
from w2v_nce.distributed import Dist
from w2v_nce.encoded import EncodedCorpus
from w2v_nce.errors import UserError
from w2v_nce.grow import FrozenRows, Parent, carry_over, init_vectors, lineage_of, read_parent
from w2v_nce.grow import vocabulary as grown_vocabulary
from w2v_nce.model import Model
from w2v_nce.objectives import objective_for
from w2v_nce.phrases import PHRASE_MODEL, PhrasedCorpus, Phrases
from w2v_nce.steps import choose_step, train_slices
from w2v_nce.subwords import subwords_for
from w2v_nce.updates import make_update
from w2v_nce.vectors import Vectors, write_word2vec
from w2v_nce.vocab import Vocab, build_vocabulary, word_count


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was asked for but no CUDA GPU is available (use --device cpu)")
    return torch.device(name)


@dataclass(frozen=True)
class LinearDecay:
    """word2vec's learning rate: from `start` down linearly with the words processed (all ranks'),
    reaching start × `floor` after `total_words`."""

    start: float
    total_words: float
    floor: float

    def at(self, words: float) -> float:
        return self.start * max(self.floor, 1.0 - words / self.total_words)


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    words_done: int = 0  # in-vocabulary tokens processed (drives the LR schedule)
    examples: int = 0
    seconds: float = 0.0
    loss_sum: float = 0.0  # over the last completed epoch
    loss_count: int = 0  # examples of the last completed epoch
    history: list = dataclasses.field(default_factory=list)  # one dict per epoch (metrics.json)
    curve: list = dataclasses.field(default_factory=list)  # [words done, mean loss per example] per chunk
    best_epoch: int = 0  # with a held-out text: the epoch of the lowest held-out loss so far
    best_heldout: float | None = None
    stopped: str | None = None  # why training stopped before cfg.epochs: "patience" or "callback"


def prefetch(items: Iterator, depth: int = 1) -> Iterator:
    """Iterate over `items`, computing the next ones on a background thread meanwhile (making a
    chunk's work overlaps with training on the previous one)."""
    queue: Queue = Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        torch.set_num_threads(1)
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put(item, timeout=0.1)
                        break
                    except Full:
                        pass
                if stop.is_set():
                    return
            queue.put(done)
        except BaseException as exc:  # handed to the consumer
            queue.put(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class Trainer:
    """One training run's parts, built once; `run_epoch` trains one pass, `state_dict` is the checkpoint."""

    def __init__(self, cfg: Config, vocab: Vocab, dist: Dist = Dist(), state: dict | None = None):
        self.cfg, self.vocab = cfg, vocab
        self.device = dist.place(resolve_device(cfg.device))
        self.workers = (cfg.threads or dist.cores()) if self.device.type == "cpu" else 1
        # One generator for initialisation, subsampling, windows and noise; during training only
        # the thread that makes the work draws from it, so runs are reproducible (threads=1).
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.objective = objective_for(cfg, vocab.counts, self.device)
        self.rule = make_update(cfg.update, cfg.update_cap)
        rows = self.objective.output_rows(len(vocab))
        log_unigram = torch.from_numpy(np.log(vocab.counts / vocab.counts.sum())) if rows == len(vocab) else None
        # a resumed run keeps the buckets its checkpoint stores (fastText's full table, if it was saved so)
        subwords, seed = subwords_for(cfg, vocab.words), cfg.seed
        if state is not None and subwords is not None:
            _, subwords, seed = input_table(state, cfg, vocab.words)
        self.model = Model(len(vocab), cfg.dim, cfg.use_bias, self.device, self.generator, bias_init=log_unigram,
                           out_rows=rows, subwords=subwords, init=False, bucket_seed=seed)
        self.step, self.step_reason = choose_step(cfg.step, self.model, self.objective, self.rule, cfg.programs,
                                                  cfg.subword_bags)
        self.step.prepare(self.model)  # the tables' layout before their values: one bucket table in memory, not two
        if state is None:
            self.model.draw_inputs(self.generator)
        if (seed := dist.data_seed(cfg.seed)) is not None:  # the tables start alike on all ranks, the data draws differ
            self.generator.manual_seed(seed)
        self.keep_prob = torch.tensor(vocab.keep_prob(cfg.sample), dtype=torch.float32, device=self.device)
        self.sync = distributed.make_sync(cfg, dist, self.model, self.objective)
        self.progress = Progress()
        self.frozen: torch.Tensor | None = None  # input rows kept as they are (lock_init)
        self.best_inp: torch.Tensor | None = None  # the word vectors of the best epoch (heldout), on the CPU
        if state is not None:
            restore(self.model, self.objective, state)
            self.progress = Progress(**state.get("progress", {}))
            streams = state.get("rank_generators") or []  # one per rank (torchrun); else rank 0's alone
            if len(streams) == dist.world:
                self.generator.set_state(streams[dist.rank])
            elif dist.master and "generator" in state:
                self.generator.set_state(state["generator"])
            if state.get("frozen_rows") is not None:
                self.freeze(state["frozen_rows"])
            self.best_inp = _best_vectors(state.get("best_inp"), len(vocab), cfg.dim)

    def freeze(self, rows: torch.Tensor) -> None:
        """Keep input rows `rows` as they are now for the rest of the run (w2v_nce.grow.FrozenRows)."""
        self.step = FrozenRows(self.step, self.model.inp, rows)
        self.frozen = self.step.rows.cpu()

    def note_heldout(self, loss: float) -> None:
        """Record the last epoch's held-out loss; keep its input vectors if it is the best so far."""
        progress = self.progress
        progress.history[-1]["heldout"] = loss
        if progress.best_heldout is None or loss < progress.best_heldout:
            progress.best_epoch, progress.best_heldout = progress.epoch, loss
            self.best_inp = self.model.word_vectors().detach().to("cpu", copy=True)  # not the n-gram rows

    def work(self, chunk: np.ndarray):
        """A chunk's work for the step: its ids subsampled, then examples or centre words."""
        ids = torch.from_numpy(chunk)
        if self.device.type == "cuda":  # a pinned copy goes up without the host waiting for it
            ids = ids.pin_memory().to(self.device, non_blocking=True)
        kept = self.step.subsample(ids.to(self.device), self.keep_prob, self.generator)
        return self.step.work(kept, self.cfg, self.objective, self.generator)

    def train_chunks(self, encoded: EncodedCorpus, schedule: LinearDecay, words: float, bar: tqdm | None = None):
        """Train one pass over `encoded`, this rank's word counter starting at `words`. Nothing
        here waits for a GPU (tested in scripts/gpu_matrix.sh) except the progress bar's loss, at
        most once a second. Returns (summed loss, examples: tensors on the device, or an int;
        this rank's counter at the end; words trained; [words, summed loss, examples] per chunk)."""
        cfg, sync = self.cfg, self.sync
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        examples_done, epoch_words, curve = 0, 0, []
        shown = [-math.inf]  # when the bar last showed the loss
        chunks = ((self.work(chunk), word_count(chunk)) for chunk in encoded.chunks(cfg.chunk_tokens))
        for work, chunk_words in prefetch(chunks):
            def words_at(unit: int) -> float:
                """This rank's words processed once training reaches `unit` of this chunk's work."""
                return words + chunk_words * unit / max(len(work), 1)

            def lr_at(unit: int) -> float:
                return schedule.at(sync.words(words_at(unit)))

            def report(unit: int, loss: torch.Tensor, examples) -> None:
                bar.update(int(sync.words(words_at(unit))) - bar.n)
                if time.perf_counter() - shown[0] >= 1.0:  # reading the loss waits for the device
                    shown[0] = time.perf_counter()
                    bar.set_postfix(loss=f"{float(loss) / max(int(examples), 1):.4f}", lr=f"{lr_at(unit):.5f}",
                                    refresh=False)

            chunk_loss, chunk_examples = train_slices(
                self.step, self.model, self.objective, self.rule, work, self.step.slice_size(cfg), lr_at, self.workers,
                report=report if bar is not None else None, after_slice=lambda unit: sync.step(words_at(unit)))
            loss_sum += chunk_loss
            examples_done += chunk_examples
            words += chunk_words
            epoch_words += chunk_words
            curve.append([sync.words(words), chunk_loss, chunk_examples])
            if bar is not None:
                bar.update(int(sync.words(words)) - bar.n)
        return loss_sum, examples_done, words, epoch_words, curve

    def run_epoch(self, encoded: EncodedCorpus, corpus_words: int, bar: tqdm | None = None) -> None:
        """One pass over `encoded`; the LR decays over all `cfg.epochs` passes of `corpus_words`
        (under torchrun, all ranks' words)."""
        cfg, progress, sync = self.cfg, self.progress, self.sync
        if self.device.type == "cpu":
            torch.set_num_threads(1)  # one core per worker thread (and the work maker's)
        schedule = LinearDecay(cfg.start_lr * sync.lr_scale, cfg.epochs * corpus_words, cfg.min_lr_ratio)
        start = time.perf_counter()
        words = sync.begin_epoch(progress.words_done)  # this rank's count (one process: the words done)
        loss_sum, examples_done, words, epoch_words, curve = self.train_chunks(encoded, schedule, words, bar)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        if curve:  # one read of the device for all chunks
            counts = torch.stack([torch.as_tensor(c[2], dtype=torch.float64, device=self.device) for c in curve])
            losses = torch.stack([torch.as_tensor(c[1], dtype=torch.float64, device=self.device) for c in curve])
            means = (losses / counts.clamp(min=1)).tolist()
            progress.curve += [[c[0], mean] for c, mean in zip(curve, means)]
        examples_done = int(examples_done)
        # all ranks' tables made equal; the epoch's words, loss and examples summed over the ranks
        epoch_words, loss, examples_done = sync.end_epoch(words, epoch_words, float(loss_sum), examples_done)
        seconds = time.perf_counter() - start
        progress.seconds += seconds
        progress.epoch += 1
        progress.words_done += int(epoch_words)
        progress.examples += int(examples_done)
        progress.loss_sum, progress.loss_count = loss, int(examples_done)
        if not math.isfinite(progress.loss_sum):
            raise UserError(f"training diverged (loss is {progress.loss_sum}); lower --lr")
        progress.history.append({
            "epoch": progress.epoch,
            "loss": progress.loss_sum / max(progress.loss_count, 1),
            "words": progress.words_done,
            "seconds": round(seconds, 3),
            "words_per_sec": round(epoch_words / max(seconds, 1e-9), 1),
            "lr": schedule.at(progress.words_done),
        })

    def state_dict(self, rank_generators: list | None = None) -> dict:
        """The checkpoint; `rank_generators`, every rank's random stream under torchrun (for --resume)."""
        extra = {"rank_generators": rank_generators} if rank_generators and len(rank_generators) > 1 else {}
        return {
            "config": dataclasses.asdict(self.cfg),
            "words": self.vocab.words,
            "counts": torch.from_numpy(self.vocab.counts),
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict(),
            "progress": dataclasses.asdict(self.progress),
            "generator": self.generator.get_state(),
            "frozen_rows": self.frozen,
            "best_inp": self.best_inp,
            **extra,
        }

    def word_rows(self, best: bool = False) -> torch.Tensor:
        """[V, dim] the word vectors now (with subwords, each the mean of its row and its n-grams'
        rows, as fastText's .vec), or with `best` those of the best epoch (when a held-out text chose
        one); without subwords a view of the input table (its rows padded for the kernel: no copy)."""
        return self.best_inp if best and self.best_inp is not None else self.model.word_vectors().cpu()

    def vectors(self, best: bool = False) -> Vectors:
        """`word_rows` as Vectors (a contiguous copy, with a word index: for querying)."""
        return Vectors(self.vocab.words, self.word_rows(best).numpy())


def _best_vectors(saved, words: int, dim: int) -> torch.Tensor | None:
    """A checkpoint's best-epoch word vectors (untrusted): None, or a [words, dim] table."""
    if saved is None:
        return None
    if not isinstance(saved, torch.Tensor) or tuple(saved.shape) != (words, dim):
        raise UserError("checkpoint's best-epoch vectors do not fit its table")
    return saved.to(torch.float32)


class StopTraining(Exception):
    """Raised by an epoch callback (`train(callbacks=...)`, the API's `Word2Vec(callbacks=...)`) to
    end training after this epoch: its checkpoint, vectors and metrics are written as at the last."""


Callback = Callable[[Trainer, dict], Any]  # (the trainer, a copy of the epoch's history record)


def train(corpus: Corpus, out_dir: Path | str, cfg: Config, resume: bool = False, progress_bar: bool = True,
          dist: Dist | None = None, asked: dict[str, Any] | None = None, init: Path | str | None = None,
          update_vocab: bool = False, callbacks: Sequence[Callback] = ()) -> dict | None:
    """Train on `corpus`; write vectors.txt, checkpoint.pt, config.toml and metrics.json
    into `out_dir`, and return the metrics.

    With `resume`, continue from `out_dir`'s checkpoint (a new run if there is none yet) under
    the resume rule (w2v_nce.checkpoint.resume_config): `asked` are the settings the user gave
    (a TOML file's keys and explicit options; by default every field of `cfg`), and only the
    resumable ones among them may differ from the run's own.

    With `init`, a run directory, start from its tables and settings instead (w2v_nce.grow,
    checkpoint.grow_config): on its vocabulary, or with `update_vocab` on it grown by `corpus`'s
    words. `init` is only read; `out_dir` must be another directory.

    After every epoch each of `callbacks` is called with the trainer and a copy of the epoch's
    history record; one that raises StopTraining ends the run after that epoch.

    Under torchrun every process calls this (w2v_nce.distributed): each trains its shard of the
    corpus, and the master (rank 0) alone reads and writes `out_dir`, runs the callbacks and
    returns the metrics; the other ranks return None. `dist` is for tests and callers that set up
    the process group.
    """
    out_dir = Path(out_dir)
    asked = dataclasses.asdict(cfg) if asked is None else asked
    if update_vocab and init is None:
        raise UserError("update_vocab grows the vocabulary of a trained model: give the run to continue (--init RUN)")
    with distributed.session(resolve_device(cfg.device).type, cfg.dist_timeout, dist) as dist:
        if reads_stdin(corpus) and dist.world > 1:
            raise UserError("standard input cannot be shared out between torchrun's processes: give files")
        with stdin_spooled(corpus, _make_dir(out_dir) if reads_stdin(corpus) else out_dir) as text:
            start = Start(None if init is None else Path(init), update_vocab, tuple(callbacks))
            return _train(text, out_dir, cfg, resume, progress_bar, dist, describe(corpus), asked, start)


@dataclass(frozen=True)
class Start:
    """Where a run starts and what it calls at every epoch's end (`train`'s init, update_vocab, callbacks)."""

    init: Path | None = None
    update_vocab: bool = False
    callbacks: tuple[Callback, ...] = ()


def _make_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory '{path}': {exc.strerror or exc}") from None
    return path


def _train(corpus: Corpus, out_dir: Path, cfg: Config, resume: bool, progress_bar: bool, dist: Dist,
           name: str, asked: dict[str, Any], start: Start) -> dict | None:
    master = dist.master

    def saved_run() -> tuple[Config, dict | None, Parent | None]:
        """The settings the run trains with, and the checkpoint it resumes from or the run it
        continues (every rank takes them)."""
        if out_dir.exists() and not out_dir.is_dir():
            raise UserError(f"output directory '{out_dir}' is an existing file")
        if resume and (out_dir / CHECKPOINT).exists():
            state = load_checkpoint(out_dir / CHECKPOINT)
            if start.init is not None:
                check_lineage(state, start.init, out_dir)
            return resume_config(checkpoint_config(state), asked), state, None
        if start.init is not None:
            parent = read_parent(start.init, out_dir)
            return grow_config(parent.loaded.cfg, asked, f"run '{start.init}'"), None, parent
        return cfg, None, None

    cfg, state, parent = dist.from_master(saved_run)
    dist.same_files(corpus)
    if cfg.patience is not None and cfg.heldout is None:  # checked here: a resumed run may have its held-out text
        raise UserError("patience is set but heldout is not: add --heldout FILE")
    saved_phrases = out_dir if state is not None else parent.run_dir if parent is not None else None
    phrases = phrase_model(corpus, out_dir, cfg, saved_phrases, dist, progress_bar)
    if phrases is not None:  # counted and encoded with its phrases joined, as its `phrases` output would be
        corpus = PhrasedCorpus(phrases, corpus, cfg.tokenizer)
    if master and progress_bar and (note := dist.shard_note(corpus)):
        tqdm.write(f"note: {note}", file=sys.stderr)
    if state is not None:
        vocab, corpus_tokens = checkpoint_vocab(state), None
    elif parent is not None:
        vocab, corpus_tokens = grown_vocabulary(parent, corpus, cfg, start.update_vocab, dist)
    else:
        vocab, corpus_tokens = build_vocabulary(corpus, cfg, dist)
    trainer = Trainer(cfg, vocab, dist, state)
    if master and progress_bar and trainer.sync.note:
        tqdm.write(f"note: {trainer.sync.note}", file=sys.stderr)
    if state is None:  # a new run's tables: the parent's rows, then pretrained vectors
        initialise(trainer, parent, dist)
    heldout = dist.from_master(lambda: HeldOut(cfg.heldout, vocab, trainer.objective, cfg.window, cfg.arch,
                                               cfg.tokenizer, cfg.heldout_examples, cfg.seed,
                                               cfg.subwords)) if cfg.heldout else None
    lineage = parent.lineage() if parent is not None else lineage_of(state or {})  # the runs this one continues
    state = parent = None  # their tables are copied into the trainer's: let them go (a bucket table is large)
    if master:
        remove_stale_temporaries(_make_dir(out_dir))  # what runs killed in out_dir left (ids, half-written files)
        write_text(out_dir / "config.toml", to_toml(cfg))

    scratch = out_dir if master else Path(tempfile.gettempdir())  # the other ranks write nothing into out_dir
    encoded = dist.together(lambda: EncodedCorpus(dist.shard(corpus), vocab, scratch, cfg.tokenizer))
    progress = trainer.progress
    try:
        corpus_words = dist.total(encoded.words)
        if corpus_words == 0:
            raise UserError(f"corpus '{name}' has no words left after building the vocabulary")
        total_words = cfg.epochs * corpus_words
        show = progress_bar and master
        bar = tqdm(total=total_words, initial=min(progress.words_done, total_words), unit="w",
                   unit_scale=True, disable=not show, dynamic_ncols=True, smoothing=0.1)
        progress.stopped = "patience" if out_of_patience(progress, cfg) else None  # a resumed run may have more
        while progress.epoch < cfg.epochs and progress.stopped is None:
            trainer.run_epoch(encoded, corpus_words, bar if show else None)
            progress.stopped = dist.from_master(lambda: end_epoch(trainer, heldout, start.callbacks))
            streams = dist.gather(trainer.generator.get_state())  # every rank's, for --resume
            if master:
                save_checkpoint({**trainer.state_dict(streams), "corpus": name, "lineage": lineage},
                                out_dir / CHECKPOINT)
        bar.close()
    finally:
        encoded.close()
    if not master:
        return None

    write_word2vec(trainer.vocab.words, trainer.word_rows(best=True).numpy(), out_dir / "vectors.txt")
    metrics = {
        "corpus": name,
        "device": str(trainer.device),
        "step": trainer.step.name,
        "step_reason": trainer.step_reason,
        "arch": cfg.arch,
        "loss": cfg.loss,
        "vocab_size": len(vocab),
        "corpus_words": corpus_words,
        "corpus_tokens": corpus_tokens,
        "epochs": progress.epoch,
        "words": progress.words_done,
        "examples": progress.examples,
        "seconds": round(progress.seconds, 3),
        "words_per_sec": round(progress.words_done / max(progress.seconds, 1e-9), 1),
        "final_loss": progress.loss_sum / max(progress.loss_count, 1),
        "ranks": dist.world,
        "phrase_model": PHRASE_MODEL if phrases is not None else None,
        "phrases_per_pass": [len(layer.phrases) for layer in phrases.layers] if phrases is not None else None,
        **trainer.objective.state_dict(),
        "lineage": lineage,
        "frozen_rows": None if trainer.frozen is None else len(trainer.frozen),
        "heldout_measure": heldout.measure if heldout is not None else None,
        "heldout_examples": len(heldout.examples) if heldout is not None else None,
        "best_epoch": progress.best_epoch if heldout is not None else None,  # vectors.txt holds its vectors
        "best_heldout": progress.best_heldout,
        "stopped": progress.stopped,
        "history": progress.history,
        "curve": progress.curve,
    }
    write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def initialise(trainer: Trainer, parent: Parent | None, dist: Dist) -> None:
    """A new run's tables, over the fresh ones the trainer drew: the rows of the run it continues
    (w2v_nce.grow.carry_over), then the vectors of `init_vectors`, frozen with `lock_init`."""
    cfg = trainer.cfg
    if parent is not None:
        carry_over(trainer.model, trainer.objective, parent.loaded, trainer.vocab)
    if cfg.init_vectors is not None:
        def read() -> torch.Tensor:  # every rank reads the file; the master alone warns
            with warnings.catch_warnings():
                if not dist.master:
                    warnings.simplefilter("ignore")
                return init_vectors(trainer.model, trainer.vocab, cfg.init_vectors)

        rows = dist.together(read)
        if cfg.lock_init:
            trainer.freeze(rows)


def end_epoch(trainer: Trainer, heldout: HeldOut | None, callbacks: Sequence[Callback]) -> str | None:
    """On the master, after an epoch: its evaluations and held-out loss into its history record,
    then the callbacks; why training stops now (see Progress.stopped), or None."""
    cfg, progress = trainer.cfg, trainer.progress
    if trainer.device.type == "cpu":
        torch.set_num_threads(trainer.workers)  # run_epoch left one thread to each of its workers
    if cfg.eval_each_epoch:  # outside run_epoch's clock
        from w2v_nce.evaluate import epoch_scores

        progress.history[-1].update(epoch_scores(trainer.vectors()))
    if heldout is not None:
        trainer.note_heldout(heldout.loss(trainer.model, trainer.objective))
    asked_to_stop = False
    for callback in callbacks:
        try:
            callback(trainer, dict(progress.history[-1]))
        except StopTraining:
            asked_to_stop = True
    return "callback" if asked_to_stop else "patience" if out_of_patience(progress, cfg) else None


def out_of_patience(progress: Progress, cfg: Config) -> bool:
    """Whether `cfg.patience` epochs have passed without a better held-out loss."""
    return cfg.patience is not None and progress.best_heldout is not None and \
        progress.epoch - progress.best_epoch >= cfg.patience


def check_lineage(state: dict, init: Path, out_dir: Path) -> None:
    """Resuming a run with `init` given: it must be the run that `out_dir` continues."""
    lineage = state.get("lineage")
    parent = lineage[-1].get("run") if isinstance(lineage, list) and lineage and isinstance(lineage[-1], dict) else None
    if parent != str(init.resolve()):
        raise UserError(f"'{out_dir}' resumes a run that continues {repr(parent) if parent else 'no run'}, not --init "
                        f"'{init}' (leave --init out to resume it)")


def phrase_model(corpus: Corpus, out_dir: Path, cfg: Config, saved: Path | None, dist: Dist,
                 progress_bar: bool = False) -> Phrases | None:
    """The run's phrases (`cfg.phrases` passes; None for none), on every rank: the master learns
    them from the whole corpus and saves them as OUT/phrases.json, or reads back the model of the
    run in `saved` (the run resumed, or the run continued, whose model it saves into OUT too); the
    other ranks wait for its model."""
    if not cfg.phrases:
        return None
    path = out_dir / PHRASE_MODEL

    def learned() -> Phrases:
        if saved is not None:
            model = Phrases.load(saved / PHRASE_MODEL)
            settings = (len(model.layers), model.scoring, model.min_count, model.delimiter)
            if settings != (cfg.phrases, cfg.phrase_scoring, cfg.phrase_min_count, cfg.phrase_delimiter):
                raise UserError(f"phrase model '{saved / PHRASE_MODEL}' is not the run's: it has {settings[0]} passes, "
                                f"scoring {settings[1]}, min_count {settings[2]}, delimiter {settings[3]!r}")
            if saved != out_dir:
                model.save(path)
            return model
        report = (lambda line: tqdm.write(f"phrases: {line}", file=sys.stderr)) if progress_bar else None
        model = Phrases.learn(corpus, cfg.phrases, cfg.phrase_min_count, list(phrase_thresholds(cfg)),
                              cfg.phrase_scoring, cfg.phrase_delimiter, cfg.phrase_connectors, cfg.phrase_max_vocab,
                              cfg.tokenizer, report=report, workdir=_make_dir(out_dir))
        model.save(path)
        return dataclasses.replace(model, _matchers={})  # its compiled matchers stay here

    return dist.from_master(learned)
