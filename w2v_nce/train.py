"""Training: corpus -> vocabulary -> encoded ids -> examples -> SGD, with checkpoints.

The update rule is word2vec's, batched: every example's gradient is applied with the
full learning rate (the batch's updates are summed, not averaged), output rows are
updated with the error times h, and every input word of a bag receives the whole input
error (gensim's cbow_mean=1; a skip-gram bag is one word). The learning rate decays
linearly with words processed. A row that many examples of one batch update at once is
damped (`Config.update`, an UpdateRule from w2v_nce.updates: by default a cap on its hits)
so that large batches do not overshoot; see docs/large-batches.md.

Data flows one way: a background thread turns each chunk of the encoded corpus into
shuffled examples of `Config.arch` (w2v_nce.windows) with their noise words drawn, and the
workers (Hogwild threads on the CPU, one stream on a GPU) take batches from it. On the CPU
every loss but the dense softmax runs through the fused C kernel (w2v_nce.fused) when it was
built: hs, neg and nce example by example inside it, rnce and is with the objective computing
the loss and its gradient in Python, as on the PyTorch path.

`Trainer` holds what a run builds once and runs an epoch; `train` is the whole job. Under
torchrun every process runs `train` on its shard of the corpus (w2v_nce.distributed): two hooks
make that so, a `sync` that the trainer calls after its batches and at each epoch's end, and
`Dist.master`, the one process that writes files and draws the progress bar.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from w2v_nce import distributed, fused
from w2v_nce.atomic import atomic_path, remove_stale_temporaries, write_text
from w2v_nce.config import Config, apply_overrides, to_toml
from w2v_nce.corpus import Corpus, describe, reads_stdin, stdin_spooled
from w2v_nce.distributed import Dist
from w2v_nce.errors import UserError
from w2v_nce.model import Model
from w2v_nce.objectives import Candidates, LogisticObjective, Objective, make_objective
from w2v_nce.sampler import AliasSampler, unigram_power
from w2v_nce.updates import CountingRule, UpdateRule, make_update
from w2v_nce.vectors import Vectors, save_word2vec
from w2v_nce.vocab import HuffmanTree, Vocab, word_count
from w2v_nce.windows import EXAMPLES, Centres, Examples, subsample

CHECKPOINT = "checkpoint.pt"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was asked for but no CUDA GPU is available (use --device cpu)")
    return torch.device(name)


class EncodedCorpus:
    """The corpus as int32 ids in a temporary file, read back in chunks (bounded memory)."""

    def __init__(self, corpus: Corpus, vocab: Vocab, workdir: Path, tokenizer: str = "whitespace"):
        """Encode `corpus` into a temporary file in `workdir` (`words` may be 0: `train` checks all
        ranks' words)."""
        remove_stale_temporaries(workdir)  # killed runs' ids, spooled stdin, unfinished writes
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
                yield np.fromfile(f, dtype=np.int32, count=size)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


HOT_ROWS = 256  # output rows each CPU kernel thread trains in a private copy per batch (docs/performance.md)
SATURATED = 6.0  # the window kernel does not step a candidate classified beyond this logit (word2vec.c's MAX_EXP)
DEFAULT_RULE = make_update(Config.update, Config.update_cap)  # Config's default (stateless: one serves all)


def sgd_step(model: Model, objective: Objective, batch: Examples | Centres, lr: float,
             generator: torch.Generator | None, rule: UpdateRule = DEFAULT_RULE, backend: str | None = None) -> torch.Tensor:
    """word2vec's SGD on one batch; returns the summed loss of the batch (a 0-d tensor).

    Output rows move by -lr x their gradient, every input row of a bag by -lr x d(loss)/dh of
    its example. On the batched paths all examples' steps are taken against the same parameters
    and `rule` combines the steps one row gets from several examples (w2v_nce.updates); the CPU
    kernel's sequential paths take them one example after another (`step_backend`). A batch of
    `Centres` is for the "windows" backend, which makes its examples itself.
    """
    return STEPS[backend or step_backend(model, objective, rule)](model, objective, batch, lr, generator, rule)


def _candidates(objective: Objective, batch: Examples, generator: torch.Generator | None) -> Candidates:
    drawn = batch.candidates if batch.candidates is not None else objective.draw(batch.targets, generator)
    return objective.complete(batch.targets, drawn)


def _pytorch_step(model: Model, objective: Objective, batch: Examples, lr: float, generator: torch.Generator | None,
                  rule: UpdateRule) -> torch.Tensor:
    """sgd_step in tensor operations: every example's step against the same parameters."""
    cand = _candidates(objective, batch, generator)
    h = model.context_vectors(batch.context, batch.offsets)
    scores, out = model.scores(h, cand.ids)
    loss, g = objective.loss_grad(scores, cand)
    objective.update(g, lr)
    if cand.ids is None:  # the exact softmax moves every output row: a dense update, the plain sum
        step = g.mul_(-lr)  # [B, V]: scaled in place (no rule reads g for the dense update)
        err = step @ out  # [B, dim], computed before `out` moves, as in word2vec
        model.out.addmm_(step.T, h)
        if model.bias is not None:
            model.bias.add_(step.sum(0))
    else:
        step = g * -lr  # the step on each score (0 outside the mask); the rules read the gradient g itself
        err = torch.bmm(step[:, None, :], out).squeeze(1)
        flat = cand.ids.reshape(-1)
        steps = (step[:, :, None] * h[:, None, :]).reshape(len(flat), -1)
        factor = rule.output_factors(cand.ids, h, steps, len(model.out), lr, g, cand.mask)
        if factor is not None:
            step = step * factor.view_as(step)
            steps *= factor[:, None]
        model.out.index_add_(0, flat, steps)
        if model.bias is not None:
            model.bias.index_add_(0, flat, step.reshape(-1))
    ctx_steps = err.repeat_interleave(batch.sizes, dim=0, output_size=len(batch.context))
    factor = rule.input_factors(batch, out, ctx_steps, len(model.inp), lr, g)
    if factor is not None:
        ctx_steps *= factor[:, None]
    model.inp.index_add_(0, batch.context, ctx_steps)
    return loss.sum()


def step_backend(model: Model, objective: Objective, rule: UpdateRule, windows: bool = False) -> str:
    """Which implementation sgd_step runs, decided from the parts alone:

      windows     (when asked for) the fused CPU kernel makes the examples of a chunk's centre
                  words itself and trains them as `sequential` does: no example arrays
      sequential  the fused CPU kernel trains a logistic loss (hs, neg, nce) example by example,
                  in word2vec's own order: each step lands before the next example is scored, so
                  no two steps of a batch meet and the batch's update rule has nothing to combine
      fused       the fused CPU kernel's batched forward and backward (rnce, is), the loss in Python
      pytorch     tensor ops: the GPU, the dense softmax, the curvature rules, no kernel built

    The kernel takes a rule that only counts hits (the default); implicit and directional need
    the scores' curvature and run in PyTorch.
    """
    if not fused.usable(model.inp) or objective.dense or not rule.counts_only:
        return "pytorch"
    if isinstance(objective, LogisticObjective):
        return "windows" if windows else "sequential"
    return "fused"


def _sequential_step(model: Model, objective: LogisticObjective, batch: Examples, lr: float,
                     generator: torch.Generator | None, rule: UpdateRule) -> torch.Tensor:
    """sgd_step through the kernel's example-by-example logistic loop (w2v_nce.fused.logistic_sgd)."""
    cand = _candidates(objective, batch, generator)
    rows, const = objective.logit_offset()
    loss, grad_sum = fused.logistic_sgd(model.inp, model.out, model.bias, batch.context, batch.offsets, cand.ids,
                                        cand.mask, cand.labels, rows, float(const), lr,
                                        hot=objective.hot_rows(len(model.out), HOT_ROWS))
    objective.update_from_sum(grad_sum, len(batch), lr)
    return torch.tensor(loss, dtype=torch.float64)


def _window_step(model: Model, objective: LogisticObjective, batch: Centres, lr: float,
                 generator: torch.Generator | None, rule: UpdateRule) -> torch.Tensor:
    """sgd_step through the kernel's example maker and logistic loop (w2v_nce.fused.window_sgd)."""
    rows, const = objective.logit_offset()
    loss, grad_sum, examples = fused.window_sgd(
        model.inp, model.out, model.bias, batch.ids, batch.centres, batch.window, batch.skipgram, lr, batch.seed,
        row_offset=rows, const_offset=float(const), hot=objective.hot_rows(len(model.out), HOT_ROWS),
        saturated=SATURATED, **objective.kernel_candidates())
    batch.trained[0] += examples  # under the GIL: Hogwild threads add their counts one at a time
    objective.update_from_sum(grad_sum, max(examples, 1), lr)
    return torch.tensor(loss, dtype=torch.float64)


def _fused_step(model: Model, objective: Objective, batch: Examples, lr: float, generator: torch.Generator | None,
                rule: CountingRule) -> torch.Tensor:
    """sgd_step's arithmetic through the fused CPU kernel (w2v_nce.fused): the same scores, loss
    and updates, without the [B, K, dim] intermediates."""
    cand = _candidates(objective, batch, generator)
    h, scores = fused.forward(model.inp, model.out, model.bias, batch.context, batch.offsets, cand.ids, cand.mask)
    loss, g = objective.loss_grad(scores, cand)
    objective.update(g, lr)
    g.mul_(-lr)
    out_factor = rule.count_factors(cand.ids, len(model.out), cand.mask)
    in_factor = rule.count_factors(batch.context, len(model.inp))
    fused.backward(model.inp, model.out, model.bias, batch.context, batch.offsets, cand.ids, cand.mask, h, g,
                   out_factor, in_factor)
    return loss.sum()


STEPS = {"windows": _window_step, "sequential": _sequential_step, "fused": _fused_step, "pytorch": _pytorch_step}


def run_batches(model: Model, objective: Objective, rule: UpdateRule, examples: Examples | Centres, cfg: Config,
                lr_at, workers: int, report=None, after_batch=None, backend: str | None = None) -> torch.Tensor:
    """Train on `examples` (noise words drawn ahead) in batches of cfg.batch_size; return the summed loss.

    With workers > 1 (CPU), that many threads share the batches and update the tables
    without locks, as word2vec's and gensim's threads do (Hogwild); torch releases the GIL
    inside its kernels, so they run in parallel. The first worker calls `after_batch` with the
    examples done so far after each of its batches (the ranks' synchronisation: while it runs,
    the other workers go on training, as Hogwild threads do).
    """
    starts = range(0, len(examples), cfg.batch_size)
    seen = [0] * workers
    totals = [torch.zeros((), dtype=torch.float64, device=model.inp.device) for _ in range(workers)]
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        if workers > 1:
            torch.set_num_threads(1)  # OpenMP's thread count is per thread: set it in each worker
        try:
            for lo in starts[slot::workers]:
                hi = min(lo + cfg.batch_size, len(examples))
                totals[slot] += sgd_step(model, objective, examples.slice(lo, hi), lr_at(lo), None, rule, backend)
                seen[slot] += hi - lo
                if after_batch is not None and slot == 0:
                    after_batch(sum(seen))
                if report is not None and slot == 0 and (lo // cfg.batch_size) % (16 * workers) == 0:
                    report(sum(seen), float(totals[slot]) / max(seen[slot], 1))
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    if workers == 1:
        work(0)
    else:
        threads = [threading.Thread(target=work, args=(slot,), daemon=True) for slot in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return sum(totals)


def prefetch(items: Iterator, depth: int = 1) -> Iterator:
    """Iterate over `items`, computing the next ones on a background thread meanwhile.

    Making a chunk's examples takes a fifth of the time of training on them; this way it
    overlaps with training instead of leaving the other cores idle.
    """
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


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    words_done: int = 0  # in-vocabulary tokens processed (drives the LR schedule)
    examples: int = 0
    seconds: float = 0.0
    loss_sum: float = 0.0  # over the last completed epoch
    loss_count: int = 0
    history: list = dataclasses.field(default_factory=list)  # one dict per epoch (metrics.json)
    curve: list = dataclasses.field(default_factory=list)  # [words done, mean loss] per chunk


def load_checkpoint(path: Path | str) -> dict:
    """A checkpoint written by train, loaded without running any code it might carry
    (`weights_only`: tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        with warnings.catch_warnings():  # an untrusted file's pickle protocol must not print warnings
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # garbage, or objects that only a full unpickler would build
        raise UserError(f"checkpoint '{path}' cannot be read: it is not a file of tensors and plain data "
                        "(anything else is refused: loading it could run code)") from None
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise UserError(f"checkpoint '{path}' cannot be read: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise UserError(f"checkpoint '{path}' is not a w2v-nce checkpoint")
    missing = {"config", "words", "counts", "model"} - set(state)
    if missing:
        raise UserError(f"checkpoint '{path}' is not a w2v-nce checkpoint (missing {sorted(missing)[0]})")
    return state


def checkpoint_config(state: dict) -> Config:
    """The Config a checkpoint was trained with (one from before `arch` existed was CBOW)."""
    return apply_overrides(Config(), state["config"])


def vectors_from_checkpoint(state: dict, which: str = "input") -> Vectors:
    """The checkpoint's input vectors (word2vec's syn0), or its output rows (syn1neg): one per
    word for every loss but hs, whose output rows belong to the Huffman tree's inner nodes."""
    words = list(state["words"])
    if which == "input":
        return Vectors(words, state["model"]["inp"].numpy().astype(np.float32))
    rows = state["model"]["out"]
    if len(rows) != len(words):
        loss = state["config"].get("loss")
        raise UserError(f"the {loss} model has {len(rows):,} output rows for {len(words):,} words: they are not "
                        "word vectors (hs keeps one per inner node of its tree); export --which input")
    return Vectors(words, rows.numpy().astype(np.float32))


class Trainer:
    """One training run's parts, built once: the noise sampler, the objective, the update rule,
    the model, the example maker of `cfg.arch`, the random generator and the progress.

    `run_epoch` trains one pass over an encoded corpus; `state_dict` is the checkpoint.
    The Python API and the CLI both drive it through `train`.
    """

    def __init__(self, cfg: Config, vocab: Vocab, state: dict | None = None, dist: Dist = Dist()):
        self.cfg, self.vocab = cfg, vocab
        self.device = dist.place(resolve_device(cfg.device))
        # Hogwild worker threads on the CPU, one core each (run_epoch)
        self.workers = (cfg.threads or dist.cores()) if self.device.type == "cpu" else 1
        # One generator for initialisation, subsampling, windows and noise; during training only
        # the thread that makes the examples draws from it, so runs are reproducible (threads=1).
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        sampler = AliasSampler(unigram_power(vocab.counts, cfg.noise_power), self.device)
        tree = HuffmanTree.from_counts(vocab.counts) if cfg.loss == "hs" else None
        self.objective = make_objective(cfg.loss, sampler, cfg.negatives, cfg.log_z, cfg.learn_log_z,
                                        cfg.remove_accidental_hits, tree=tree)
        self.rule = make_update(cfg.update, cfg.update_cap)
        rows = self.objective.output_rows(len(vocab))
        log_unigram = torch.from_numpy(np.log(vocab.counts / vocab.counts.sum())) if rows == len(vocab) else None
        self.model = Model(len(vocab), cfg.dim, cfg.use_bias, self.device, self.generator, bias_init=log_unigram,
                           out_rows=rows)
        if (seed := dist.data_seed(cfg.seed)) is not None:  # the tables start alike on all ranks, the data draws differ
            self.generator.manual_seed(seed)
        self.make_examples = EXAMPLES[cfg.arch]
        # W2V_NCE_NO_WINDOWS=1: the examples made in torch, as before the window kernel (paired measurements)
        windows = not os.environ.get("W2V_NCE_NO_WINDOWS")
        self.backend = step_backend(self.model, self.objective, self.rule, windows=windows)
        self.keep_prob = torch.tensor(vocab.keep_prob(cfg.sample), dtype=torch.float32, device=self.device)
        self.sync = distributed.make_sync(cfg, dist, self.model, self.objective)
        self.progress = Progress()
        if state is not None:
            try:
                self.model.load_state_dict(state["model"])
                self.objective.load_state_dict(state.get("objective", {}))
                self.progress = Progress(**state.get("progress", {}))
                streams = state.get("rank_generators") or []  # one per rank (torchrun); else rank 0's alone
                if len(streams) == dist.world:
                    self.generator.set_state(streams[dist.rank])
                elif dist.master and "generator" in state:
                    self.generator.set_state(state["generator"])
            except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
                raise UserError(f"checkpoint does not fit its own config: {str(exc).splitlines()[0]}") from None

    @classmethod
    def from_checkpoint(cls, state: dict, device: str = "cpu") -> "Trainer":
        """The parts of a checkpoint's run, on `device`: for querying a trained model."""
        cfg = dataclasses.replace(checkpoint_config(state), device=device)
        return cls(cfg, Vocab(list(state["words"]), state["counts"].numpy()), state)

    def examples(self, chunk: np.ndarray) -> Examples | Centres:
        """A chunk's examples, with the random part of their candidates drawn in one go (or, for
        the kernel that makes its own, the chunk's centre words)."""
        ids = torch.from_numpy(chunk).to(self.device)
        kept = subsample(ids, self.keep_prob, self.generator)
        if self.backend == "windows":
            return Centres.of(kept, self.cfg.window, self.cfg.arch, self.generator, shuffle=self.cfg.shuffle)
        examples = self.make_examples(kept, self.cfg.window, self.generator, shuffle=self.cfg.shuffle)
        examples.candidates = self.objective.draw(examples.targets, self.generator)
        return examples

    def run_epoch(self, encoded: EncodedCorpus, bar: tqdm | None = None, corpus_words: int | None = None) -> None:
        """One pass over `encoded`, the LR decaying linearly over all `cfg.epochs` passes of
        `corpus_words` (under torchrun all ranks' words; by default `encoded`'s)."""
        cfg, progress, sync = self.cfg, self.progress, self.sync
        if self.device.type == "cpu":
            torch.set_num_threads(1)  # one core per worker thread (and the example maker's)
        total_words = cfg.epochs * (corpus_words or encoded.words)
        start = time.perf_counter()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        loss_count = examples_done = epoch_words = 0
        words = sync.begin_epoch(progress.words_done)  # this rank's count (one process: the words done)
        chunks = ((self.examples(chunk), word_count(chunk)) for chunk in encoded.chunks(cfg.chunk_tokens))

        def lr_after(global_words: float) -> float:
            """word2vec's linear decay, once all ranks together have processed `global_words`."""
            return cfg.start_lr * sync.lr_scale * max(cfg.min_lr_ratio, 1.0 - global_words / total_words)

        for examples, chunk_words in prefetch(chunks):
            words_before = words

            def words_at(example: int) -> float:
                """This rank's corpus words processed once training reaches `example` of this chunk."""
                return words_before + chunk_words * example / max(len(examples), 1)

            def lr_at(example: int) -> float:
                return lr_after(sync.words(words_at(example)))

            def report(example: int, loss: float) -> None:
                bar.update(int(sync.words(words_at(example))) - bar.n)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr_at(example):.5f}", refresh=False)

            def after_batch(example: int) -> None:
                sync.step(words_at(example))

            chunk_loss = run_batches(self.model, self.objective, self.rule, examples, cfg, lr_at, self.workers,
                                     report if bar is not None else None, after_batch, self.backend)
            loss_sum += chunk_loss
            loss_count += examples.trained_examples
            examples_done += examples.trained_examples
            words += chunk_words
            epoch_words += chunk_words
            progress.curve.append([sync.words(words), float(chunk_loss) / max(examples.trained_examples, 1)])
            if bar is not None:
                bar.update(int(sync.words(words)) - bar.n)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        # all ranks' tables made equal; the epoch's words, loss and examples summed over the ranks
        epoch_words, loss, loss_count, examples_done = sync.end_epoch(
            words, epoch_words, float(loss_sum), loss_count, examples_done)
        seconds = time.perf_counter() - start
        progress.seconds += seconds
        progress.epoch += 1
        progress.words_done += int(epoch_words)
        progress.examples += int(examples_done)
        progress.loss_sum, progress.loss_count = loss, int(loss_count)
        if not math.isfinite(progress.loss_sum):
            raise UserError(f"training diverged (loss is {progress.loss_sum}); lower --lr")
        progress.history.append({
            "epoch": progress.epoch,
            "loss": progress.loss_sum / max(loss_count, 1),
            "words": progress.words_done,
            "seconds": round(seconds, 3),
            "words_per_sec": round(epoch_words / max(seconds, 1e-9), 1),
            "lr": lr_after(progress.words_done),
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
            **extra,
        }

    def save_checkpoint(self, path: Path, rank_generators: list | None = None) -> None:
        with atomic_path(path, "checkpoint") as tmp:
            torch.save(self.state_dict(rank_generators), tmp)

    def vectors(self) -> Vectors:
        return Vectors(self.vocab.words, self.model.inp.cpu().numpy())


def train(corpus: Corpus, out_dir: Path | str, cfg: Config, resume: bool = False,
          progress_bar: bool = True, dist: Dist | None = None) -> dict | None:
    """Train on `corpus`; write vectors.txt, checkpoint.pt, config.toml and metrics.json
    into `out_dir`, and return the metrics. With `resume`, continue from `out_dir`'s checkpoint
    (a new run if there is none yet).

    Under torchrun every process calls this (w2v_nce.distributed): each trains its shard of the
    corpus, and the master (rank 0) alone reads and writes `out_dir` and returns the metrics; the
    other ranks return None. `dist` is for tests and callers that set up the process group.
    """
    out_dir = Path(out_dir)
    with distributed.session(resolve_device(cfg.device).type, cfg.dist_timeout, dist) as dist:
        if reads_stdin(corpus) and dist.world > 1:
            raise UserError("standard input cannot be shared out between torchrun's processes: give files")
        with stdin_spooled(corpus, _make_dir(out_dir) if reads_stdin(corpus) else out_dir) as text:
            return _train(text, out_dir, cfg, resume, progress_bar, dist, describe(corpus))


def _make_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory '{path}': {exc.strerror or exc}") from None
    return path


def _train(corpus: Corpus, out_dir: Path, cfg: Config, resume: bool, progress_bar: bool, dist: Dist,
           name: str) -> dict | None:
    master = dist.master

    def saved_run() -> tuple[Config, dict | None]:
        """The master's settings, and the checkpoint it resumes from (every rank takes both)."""
        if out_dir.exists() and not out_dir.is_dir():
            raise UserError(f"output directory '{out_dir}' is an existing file")
        return cfg, load_checkpoint(out_dir / CHECKPOINT) if resume and (out_dir / CHECKPOINT).exists() else None

    cfg, state = dist.from_master(saved_run)
    if state is not None:
        vocab = Vocab(list(state["words"]), state["counts"].numpy())
        corpus_tokens = None
    else:
        vocab, corpus_tokens = dist.vocabulary(corpus, cfg)
    trainer = Trainer(cfg, vocab, state, dist)
    if master:
        write_text(_make_dir(out_dir) / "config.toml", to_toml(cfg))

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
        while progress.epoch < cfg.epochs:
            trainer.run_epoch(encoded, bar if show else None, corpus_words)
            if cfg.eval_each_epoch and master:  # outside run_epoch's clock
                from w2v_nce.evaluate import epoch_scores

                progress.history[-1].update(epoch_scores(trainer.vectors()))
            streams = dist.gather(trainer.generator.get_state())  # every rank's, for --resume
            if master:
                trainer.save_checkpoint(out_dir / CHECKPOINT, streams)
        bar.close()
    finally:
        encoded.close()
    if not master:
        return None

    save_word2vec(trainer.vectors(), out_dir / "vectors.txt")
    metrics = {
        "corpus": name,
        "device": str(trainer.device),
        "cpu_kernel": trainer.backend != "pytorch",  # the fused C kernel ran the steps
        "step": trainer.backend,
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
        **trainer.objective.state_dict(),
        "history": progress.history,
        "curve": progress.curve,
    }
    write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics

