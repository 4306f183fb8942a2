"""The SGD step paths, chosen once per run from its parts (`choose_step`) and recorded.

The update is word2vec's: every example's gradient is applied with the full learning rate,
output rows move by the error times h, and every input word of a bag receives the whole input
error (gensim's cbow_mean=1; a skip-gram bag is one word). With subwords a bag is all its words'
rows and each row receives the whole error, as fastText's unsupervised Model::update applies it
(its normalizeGradient divides only in supervised training). Three implementations:

  window_kernel   the fused C kernel (w2v_nce.fused.window_sgd) makes a chunk's examples itself
                  and trains the logistic losses (hs, neg, nce) example by example, in word2vec's
                  own order: each step lands before the next example is scored
  batched_kernel  the fused C kernel's batched forward and backward for rnce and is, the loss and
                  its gradient in Python (twice the PyTorch step's speed on the CPU:
                  docs/performance.md, "The batched kernel")
  batched         tensor operations: the dense softmax, rnce and is on a GPU, and every loss on any
                  device with `step = "batched"`
  triton_kernel   the window kernel's training on a GPU (w2v_nce.triton_kernel): `programs` programs
                  each train their own slice of a chunk's centre words example by example, as the
                  CPU kernel's threads do, all at once; one launch a chunk (docs/gpu.md)

A batched step computes all its examples against the same parameters; the update rule
(w2v_nce.updates) combines the steps one row gets from several of them. Each implementation makes
its own work from a chunk of subsampled ids (`work`) and trains a slice of it (`__call__`),
returning the summed loss and the number of examples it trained.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Callable

import torch

from w2v_nce import fused
from w2v_nce.config import Config
from w2v_nce.errors import UserError
from w2v_nce.model import Model
from w2v_nce.objectives import Candidates, LogisticObjective, Objective
from w2v_nce.updates import CountingRule, UpdateRule
from w2v_nce.windows import Centres, Examples, PaddedCentres, example_maker, subsample, subsample_padded

KERNEL_CENTRES = 4096  # centre words per window-kernel call: how often its threads report, and syncs can run
HOT_ROWS = 256  # output rows each kernel thread trains in a private copy per call (docs/performance.md)
SATURATED = 6.0  # the window kernel takes no step for a candidate classified beyond this logit on its label's side
CBOW_SHUFFLE_BLOCK = 64  # CBOW: centres shuffled in runs, so neighbouring windows' input rows stay in cache
TRITON_BY_DEFAULT = False  # `auto` takes the Triton kernel on CUDA once a GPU has passed scripts/gpu_matrix.sh


class Step:
    """One step path: makes a chunk's work and trains slices of it."""

    name = ""

    def prepare(self, model: Model) -> None:
        """Lay out the model's tables as this step reads them best (once, before training)."""

    def slice_size(self, cfg: Config) -> int:
        """Units of work (examples, or centre words for the window kernel) per call."""
        return cfg.batch_size

    def subsample(self, ids: torch.Tensor, keep_prob: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A chunk's ids with frequent words dropped (w2v_nce.windows.subsample)."""
        return subsample(ids, keep_prob, generator)

    def work(self, kept: torch.Tensor, cfg: Config, objective: Objective,
             generator: torch.Generator | None) -> Examples | Centres:
        """A chunk's examples from its subsampled ids, with the random part of their candidates drawn."""
        examples = example_maker(cfg.arch, cfg.subwords)(kept, cfg.window, generator, shuffle=cfg.shuffle)
        examples.candidates = objective.draw(examples.targets, generator)
        return examples

    def __call__(self, model: Model, objective: Objective, batch, lr: float, rule: UpdateRule,
                 lr_end: float | None = None) -> tuple[torch.Tensor, int | torch.Tensor]:
        """Train `batch` at learning rate `lr` (the Triton kernel decays it to `lr_end` over the
        batch; the others train it at `lr`); return (its summed loss, a 0-d tensor; the examples
        trained, an int or a 0-d tensor)."""
        raise NotImplementedError


def _row_bags(model: Model, batch: Examples) -> Examples:
    """`batch` with each bag of words as its bag of input rows (the same without subwords)."""
    if model.subwords is None:
        return batch
    rows, offsets = model.input_bags(batch.context, batch.offsets)
    return Examples(targets=batch.targets, context=rows, offsets=offsets, candidates=batch.candidates)


def _candidates(objective: Objective, batch: Examples) -> Candidates:
    drawn = batch.candidates if batch.candidates is not None else objective.draw(batch.targets, None)
    return objective.complete(batch.targets, drawn)


class Batched(Step):
    """Tensor operations: every example's step against the same parameters."""

    name = "batched"

    def __call__(self, model, objective, batch, lr, rule, lr_end=None):
        cand = _candidates(objective, batch)
        batch = _row_bags(model, batch)
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
        return loss.sum(), len(batch)


class BatchedKernel(Step):
    """The batched step's arithmetic through the fused CPU kernel: the same scores, loss and
    updates, without the [B, K, dim] intermediates."""

    name = "batched_kernel"

    def prepare(self, model):
        model.align_rows()

    def __call__(self, model, objective, batch, lr, rule: CountingRule, lr_end=None):
        cand = _candidates(objective, batch)
        batch = _row_bags(model, batch)
        h, scores = fused.forward(model.inp, model.out, model.bias, batch.context, batch.offsets, cand.ids, cand.mask)
        loss, g = objective.loss_grad(scores, cand)
        objective.update(g, lr)
        g.mul_(-lr)
        out_factor = rule.count_factors(cand.ids, len(model.out), cand.mask)
        in_factor = rule.count_factors(batch.context, len(model.inp))
        fused.backward(model.inp, model.out, model.bias, batch.context, batch.offsets, cand.ids, cand.mask, h, g,
                       out_factor, in_factor)
        return loss.sum(), len(batch)


class WindowKernel(Step):
    """The kernel makes the examples of a slice of centre words and trains them one by one."""

    name = "window_kernel"

    def __init__(self, cached_bags: bool = False):
        self.cached_bags = cached_bags  # subword CBOW: Config.subword_bags == "cached"

    def prepare(self, model):
        model.align_rows()

    def slice_size(self, cfg):
        return KERNEL_CENTRES

    def work(self, kept, cfg, objective, generator):
        block = CBOW_SHUFFLE_BLOCK if cfg.arch == "cbow" else 1
        return Centres.of(kept, cfg.window, cfg.arch, generator, shuffle=cfg.shuffle, shared_noise=cfg.shared_negatives,
                          block=block)

    def __call__(self, model, objective: LogisticObjective, batch: Centres, lr, rule, lr_end=None):
        rows, const = objective.logit_offset()
        loss, grad_sum, examples = fused.window_sgd(
            model.inp, model.out, model.bias, batch.ids, batch.positions, batch.window, batch.skipgram, lr, batch.seed,
            row_offset=rows, const_offset=float(const), hot=objective.hot_rows(len(model.out), HOT_ROWS),
            saturated=SATURATED, shared_noise=batch.shared_noise, subwords=model.kernel_subwords(),
            cached_bags=self.cached_bags, **objective.kernel_candidates())
        objective.update_from_sum(grad_sum, max(examples, 1), lr)
        return torch.tensor(loss, dtype=torch.float64), examples


class TritonKernel(Step):
    """The window kernel's training on a GPU: `programs` programs, each training its slice of the
    chunk's centre words one example after another, Hogwild across programs; one launch a chunk.
    The chunk is subsampled and shuffled on the device at a fixed size: nothing waits for the GPU."""

    name = "triton_kernel"

    def __init__(self, programs: int):
        self.programs = programs

    def slice_size(self, cfg):
        return cfg.chunk_tokens  # the whole chunk: one launch

    def subsample(self, ids, keep_prob, generator):
        return subsample_padded(ids, keep_prob, generator)

    def work(self, kept, cfg, objective, generator):
        return PaddedCentres.of(kept, cfg.window, cfg.arch, generator, shuffle=cfg.shuffle,
                                shared_noise=cfg.shared_negatives)

    def __call__(self, model, objective: LogisticObjective, batch: PaddedCentres, lr, rule, lr_end=None):
        from w2v_nce import triton_kernel  # imports triton: only for runs that take this step

        rows, const = objective.logit_offset()
        loss, grad_sum, examples = triton_kernel.window_sgd(
            model.inp, model.out, model.bias, batch.ids, batch.positions, batch.window, batch.skipgram, lr, batch.seed,
            self.programs, row_offset=rows, const_offset=const, saturated=SATURATED, lr_end=lr_end, first=batch.start,
            shared_noise=batch.shared_noise, **objective.kernel_candidates())
        objective.update_from_sum(grad_sum, examples.clamp(min=1), lr)
        return loss, examples


def triton_unusable(table: torch.Tensor) -> str | None:
    """Why the Triton kernel cannot train `table`, or None when it can (without importing triton)."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    if table.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return f"the tables are on {table.device.type} (the Triton kernel runs on CUDA)"
    if table.dtype != torch.float32:
        return "the tables are not float32"
    return None


def choose_step(asked: str, model: Model, objective: Objective, rule: UpdateRule,
                programs: int = Config.programs, subword_bags: str = Config.subword_bags) -> tuple[Step, str]:
    """The step path for `asked` (Config.step) and the run's parts, and why: chosen once per run.

    The kernels serve float32 tables (the C kernel's on the CPU, the Triton kernel's on CUDA),
    sampled or tree candidates (not the dense softmax) and rules that only count hits (the
    curvature rules need the batched step); the Triton kernel serves the logistic losses only."""
    unfit = [why for bad, why in (
        (objective.dense, f"loss {objective.name} scores every output row"),
        (not rule.counts_only, f"update {rule.name} needs the scores' curvature"),
    ) if bad]
    if asked == "batched":
        return Batched(), "asked for (step = batched)"
    on_gpu = model.inp.device.type == "cuda"
    if asked == "triton" or (asked == "auto" and on_gpu):
        why = triton_unusable(model.inp)
        problems = ([why] if why else []) + unfit + [why for bad, why in (
            (not isinstance(objective, LogisticObjective), f"loss {objective.name} is not one of hs, neg, nce"),
            (model.subwords is not None, "the Triton kernel has no subwords (minn, maxn) yet"),
        ) if bad]
        if asked == "triton":
            if problems:
                raise UserError(f"step = triton cannot train this run: {problems[0]} (use --step batched or auto)")
            return TritonKernel(programs), "asked for (step = triton)"
        if not problems and TRITON_BY_DEFAULT:
            return TritonKernel(programs), "the Triton kernel serves this run"
        return Batched(), problems[0] if problems else "the Triton kernel is not yet the default on a GPU (--step triton)"
    reasons = [why for bad, why in (
        (not fused.AVAILABLE, "the fused kernel is not built" + (" (W2V_NCE_NO_KERNEL)" if fused.DISABLED else "")),
        (not fused.usable(model.inp), f"the tables are on {model.inp.device.type}"),
    ) if bad] + unfit
    if reasons:
        if asked == "kernel":
            raise UserError(f"step = kernel cannot train this run: {reasons[0]} (use --step batched or auto)")
        return Batched(), reasons[0]
    kernel = WindowKernel(subword_bags == "cached") if isinstance(objective, LogisticObjective) else BatchedKernel()
    return kernel, "the kernel serves this run"


def train_slices(step: Step, model: Model, objective: Objective, rule: UpdateRule, work, size: int,
                 lr_at: Callable[[int], float], workers: int, report: Callable | None = None,
                 after_slice: Callable | None = None) -> tuple[torch.Tensor, int]:
    """Train `work` in slices of `size` units; return (the summed loss, the examples trained).

    With workers > 1 (CPU), that many threads share the slices and update the tables without
    locks, as word2vec's and gensim's threads do (Hogwild); the kernel and torch release the GIL,
    so they run in parallel. Each thread counts its own loss and examples, added after the join.
    The first thread calls `after_slice` with the units done so far after each of its slices (the
    ranks' synchronisation: while it runs, the other threads go on training) and `report` with
    (units done, its summed loss, its examples) every few slices: reading those waits for a GPU,
    so `report` decides whether to.
    """
    starts = range(0, len(work), size)
    units = [0] * workers  # written by one thread each
    examples = [0] * workers
    totals = [torch.zeros((), dtype=torch.float64, device=model.inp.device) for _ in range(workers)]
    errors: list[BaseException] = []

    def run(slot: int) -> None:
        if workers > 1:
            torch.set_num_threads(1)  # OpenMP's thread count is per thread: set it in each worker
        try:
            for n, lo in enumerate(starts[slot::workers]):
                hi = min(lo + size, len(work))
                loss, trained = step(model, objective, work.slice(lo, hi), lr_at(lo), rule, lr_end=lr_at(hi))
                totals[slot] += loss
                examples[slot] += trained
                units[slot] += hi - lo
                if slot == 0 and after_slice is not None:
                    after_slice(sum(units))
                if slot == 0 and report is not None and n % 16 == 0:
                    report(sum(units), totals[0], examples[0])
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    if workers == 1:
        run(0)
    else:
        threads = [threading.Thread(target=run, args=(slot,), daemon=True) for slot in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return sum(totals), sum(examples)
