"""Training: corpus -> vocabulary -> encoded ids -> CBOW batches -> SGD, with checkpoints.

The update rule is word2vec's, batched: every example's gradient is applied with the
full learning rate (the batch's updates are summed, not averaged), output rows are
updated with the error times h, and every context word receives the whole input error
(gensim's cbow_mean=1). The learning rate decays linearly with words processed. A row
that many examples of one batch update at once is damped (`Config.update`, an UpdateRule
from w2v_nce.updates: by default a cap on its hits) so that large batches do not overshoot;
see the README.

Data flows one way: a background thread turns each chunk of the encoded corpus into
shuffled CBOW examples with their noise words drawn, and the workers (Hogwild threads on
the CPU, one stream on a GPU) take batches from it. On the CPU the sampled losses' steps
run through the fused C kernel (w2v_nce.fused) when it was built; the objective computes the
loss and its gradient on the scores either way.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from w2v_nce import fused
from w2v_nce.atomic import atomic_path, write_text
from w2v_nce.config import Config, to_toml
from w2v_nce.corpus import count_words
from w2v_nce.errors import UserError
from w2v_nce.model import CBOW
from w2v_nce.objectives import Candidates, Objective, SampledObjective, make_objective
from w2v_nce.sampler import AliasSampler, unigram_power
from w2v_nce.updates import CountingRule, UpdateRule, make_update
from w2v_nce.vectors import Vectors, save_word2vec
from w2v_nce.vocab import Vocab, word_count
from w2v_nce.windows import Examples, cbow_examples, subsample

CHECKPOINT = "checkpoint.pt"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was asked for but no CUDA GPU is available (use --device cpu)")
    return torch.device(name)


class EncodedCorpus:
    """The corpus as int32 ids in a temporary file, read back in chunks (bounded memory)."""

    def __init__(self, corpus: Path, vocab: Vocab, workdir: Path):
        fd, name = tempfile.mkstemp(prefix=".ids-", suffix=".bin", dir=workdir)
        self.path = Path(name)
        self.words = 0  # in-vocabulary tokens
        try:
            with os.fdopen(fd, "wb") as f:
                for ids in vocab.encode(corpus):
                    ids.tofile(f)
                    self.words += word_count(ids)
            if self.words == 0:
                raise UserError(f"corpus '{corpus}' has no words left after building the vocabulary")
        except BaseException:
            self.close()
            raise
        self.ids = np.memmap(self.path, dtype=np.int32, mode="r")

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(self.ids), size):
            yield np.array(self.ids[start : start + size])

    def close(self) -> None:
        self.ids = None
        self.path.unlink(missing_ok=True)


DEFAULT_RULE = make_update(Config.update, Config.update_cap)  # Config's default (stateless: one serves all)


def sgd_step(model: CBOW, objective: Objective, batch: Examples, lr: float, generator: torch.Generator | None,
             rule: UpdateRule = DEFAULT_RULE) -> torch.Tensor:
    """One batched word2vec SGD step; returns the summed loss of the batch (a 0-d tensor).

    Output rows move by -lr x their gradient, every context word by -lr x d(loss)/dh of its
    example; `rule` combines the steps one row gets from several examples (w2v_nce.updates).
    """
    if batch.candidates is None:
        cand = objective.candidates(batch.targets, generator)
    else:
        cand = Candidates(ids=batch.candidates, targets=batch.targets)
    if kernel_runs(model, objective, rule):
        return _fused_step(model, objective, batch, cand, lr, rule)
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
        step = g * -lr  # the step on each score; the rules read the gradient g itself
        err = torch.bmm(step[:, None, :], out).squeeze(1)
        flat = cand.ids.reshape(-1)
        steps = (step[:, :, None] * h[:, None, :]).reshape(len(flat), -1)
        factor = rule.output_factors(cand.ids, h, steps, len(model.out), lr, g)
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


def kernel_runs(model: CBOW, objective: Objective, rule: UpdateRule) -> bool:
    """Whether sgd_step takes the fused CPU kernel: a sampled loss, a rule that only counts hits,
    and tables the kernel can train (it was built; CPU, float32)."""
    return isinstance(objective, SampledObjective) and rule.counts_only and fused.usable(model.inp)


def _fused_step(model: CBOW, objective: Objective, batch: Examples, cand: Candidates, lr: float,
                rule: CountingRule) -> torch.Tensor:
    """sgd_step's arithmetic through the fused CPU kernel (w2v_nce.fused): the same scores, loss
    and updates, without the [B, 1+k, dim] intermediates."""
    h, scores = fused.forward(model.inp, model.out, model.bias, batch.context, batch.offsets, cand.ids)
    loss, g = objective.loss_grad(scores, cand)
    objective.update(g, lr)
    g.mul_(-lr)
    out_factor = rule.count_factors(cand.ids, len(model.out))
    in_factor = rule.count_factors(batch.context, len(model.inp))
    fused.backward(model.inp, model.out, model.bias, batch.context, batch.offsets, cand.ids, h, g,
                   out_factor, in_factor)
    return loss.sum()


def run_batches(model: CBOW, objective: Objective, rule: UpdateRule, examples: Examples, cfg: Config, lr_at,
                workers: int, report=None) -> torch.Tensor:
    """Train on `examples` (noise words drawn ahead) in batches of cfg.batch_size; return the summed loss.

    With workers > 1 (CPU), that many threads share the batches and update the tables
    without locks, as word2vec's and gensim's threads do (Hogwild); torch releases the GIL
    inside its kernels, so they run in parallel.
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
                totals[slot] += sgd_step(model, objective, examples.slice(lo, hi), lr_at(lo), None, rule)
                seen[slot] += hi - lo
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


def _examples(chunk: np.ndarray, keep_prob: torch.Tensor, cfg: Config, objective: Objective,
              generator: torch.Generator) -> Examples:
    """A chunk's CBOW examples, with the noise words of every example drawn in one go."""
    ids = torch.from_numpy(chunk).to(keep_prob.device)
    examples = cbow_examples(subsample(ids, keep_prob, generator), cfg.window, generator, shuffle=cfg.shuffle)
    examples.candidates = objective.candidates(examples.targets, generator).ids
    return examples


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


def _save_checkpoint(path: Path, cfg: Config, vocab: Vocab, model: CBOW, objective: Objective,
                     progress: Progress, generator: torch.Generator) -> None:
    state = {
        "config": dataclasses.asdict(cfg),
        "words": vocab.words,
        "counts": torch.from_numpy(vocab.counts),
        "model": model.state_dict(),
        "objective": objective.state_dict(),
        "progress": dataclasses.asdict(progress),
        "generator": generator.get_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path | str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        missing = {"config", "words", "counts", "model"} - set(state)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise UserError(f"checkpoint '{path}' cannot be read: {str(exc).splitlines()[0]}") from None
    if missing:
        raise UserError(f"checkpoint '{path}' is not a w2v-nce checkpoint (missing {sorted(missing)[0]})")
    return state


def vectors_from_checkpoint(state: dict) -> Vectors:
    return Vectors(list(state["words"]), state["model"]["inp"].numpy().astype(np.float32))


def train(corpus: Path | str, out_dir: Path | str, cfg: Config, resume: bool = False,
          progress_bar: bool = True) -> dict:
    """Train on `corpus`; write vectors.txt, checkpoint.pt, config.toml and metrics.json
    into `out_dir`, and return the metrics."""
    corpus, out_dir = Path(corpus), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output directory '{out_dir}' is an existing file")
    device = resolve_device(cfg.device)
    workers = 1
    if device.type == "cpu":  # Hogwild worker threads, one core each
        workers = cfg.threads or os.cpu_count() or 1
        torch.set_num_threads(1)
    # One generator for initialisation, subsampling, windows and noise; during training only the
    # thread that makes the examples draws from it, so runs are reproducible (with threads=1).
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    state = load_checkpoint(out_dir / CHECKPOINT) if resume else None
    if state is not None:
        vocab = Vocab(list(state["words"]), state["counts"].numpy())
        corpus_tokens = None
    else:
        counts, corpus_tokens = count_words(corpus)
        vocab = Vocab.from_counts(counts, cfg.min_count, cfg.max_vocab)

    sampler = AliasSampler(unigram_power(vocab.counts, cfg.noise_power), device)
    objective = make_objective(cfg.loss, sampler, cfg.negatives, cfg.log_z, cfg.learn_log_z,
                               cfg.remove_accidental_hits)
    rule = make_update(cfg.update, cfg.update_cap)
    log_unigram = torch.from_numpy(np.log(vocab.counts / vocab.counts.sum()))
    model = CBOW(len(vocab), cfg.dim, cfg.use_bias, device, generator, bias_init=log_unigram)
    progress = Progress()
    if state is not None:
        model.load_state_dict(state["model"])
        objective.load_state_dict(state.get("objective", {}))
        progress = Progress(**state["progress"])
        generator.set_state(state["generator"])
    keep_prob = torch.tensor(vocab.keep_prob(cfg.sample), dtype=torch.float32, device=device)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory '{out_dir}': {exc.strerror or exc}") from None
    write_text(out_dir / "config.toml", to_toml(cfg))

    encoded = EncodedCorpus(corpus, vocab, out_dir)
    try:
        total_words = cfg.epochs * encoded.words
        bar = tqdm(total=total_words, initial=min(progress.words_done, total_words), unit="w",
                   unit_scale=True, disable=not progress_bar, dynamic_ncols=True, smoothing=0.1)
        while progress.epoch < cfg.epochs:
            start = time.perf_counter()
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            loss_count = 0
            chunks = (
                (_examples(chunk, keep_prob, cfg, objective, generator), word_count(chunk))
                for chunk in encoded.chunks(cfg.chunk_tokens)
            )
            for examples, chunk_words in prefetch(chunks):
                words_before = progress.words_done

                def words_at(example: int) -> float:
                    """Corpus words processed once training reaches `example` of this chunk."""
                    return words_before + chunk_words * example / max(len(examples), 1)

                def lr_at(example: int) -> float:
                    return cfg.lr * max(cfg.min_lr_ratio, 1.0 - words_at(example) / total_words)

                def report(example: int, loss: float) -> None:
                    bar.update(int(words_at(example)) - bar.n)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr_at(example):.5f}", refresh=False)

                chunk_loss = run_batches(model, objective, rule, examples, cfg, lr_at, workers,
                                         report if progress_bar else None)
                loss_sum += chunk_loss
                loss_count += len(examples)
                progress.words_done += chunk_words
                progress.examples += len(examples)
                bar.update(progress.words_done - bar.n)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            progress.seconds += time.perf_counter() - start
            progress.epoch += 1
            progress.loss_sum, progress.loss_count = float(loss_sum), loss_count
            if not math.isfinite(progress.loss_sum):
                raise UserError(f"training diverged (loss is {progress.loss_sum}); lower --lr")
            _save_checkpoint(out_dir / CHECKPOINT, cfg, vocab, model, objective, progress, generator)
        bar.close()
    finally:
        encoded.close()

    vectors = Vectors(vocab.words, model.inp.cpu().numpy())
    save_word2vec(vectors, out_dir / "vectors.txt")
    metrics = {
        "corpus": str(corpus),
        "device": str(device),
        "cpu_kernel": kernel_runs(model, objective, rule),  # the fused C kernel ran the steps
        "loss": cfg.loss,
        "vocab_size": len(vocab),
        "corpus_words": encoded.words,
        "corpus_tokens": corpus_tokens,
        "epochs": progress.epoch,
        "words": progress.words_done,
        "examples": progress.examples,
        "seconds": round(progress.seconds, 3),
        "words_per_sec": round(progress.words_done / max(progress.seconds, 1e-9), 1),
        "final_loss": progress.loss_sum / max(progress.loss_count, 1),
        **objective.state_dict(),
    }
    write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
