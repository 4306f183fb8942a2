"""The step paths as the trainer drives them (w2v_nce.steps.train_slices): the loss reported is per
example on every path, each worker thread counts its own work, and the kernel's results do not
depend on batch_size (which only the batched step uses)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from conftest import require_kernel, write_twin_corpus
from oracles import small_cfg
from w2v_nce.checkpoint import load_checkpoint
from w2v_nce.model import Model
from w2v_nce.objectives import make_objective
from w2v_nce.sampler import AliasSampler, unigram_power
from w2v_nce.steps import Step, WindowKernel, train_slices
from w2v_nce.train import train
from w2v_nce.updates import make_update


def test_the_reported_loss_is_per_example_for_skipgram():
    """Skip-gram's kernel trains several pairs per centre word: the progress bar's loss divides the
    summed loss by the pairs (examples), as metrics.json does, not by the centre words."""
    require_kernel()
    gen = torch.Generator().manual_seed(0)
    counts = np.arange(30, 0, -1) * 5
    objective = make_objective("neg", AliasSampler(unigram_power(counts)), 5)
    model = Model(30, 8, bias=False, device=torch.device("cpu"), generator=gen)
    step = WindowKernel()
    work = step.work(torch.randint(0, 30, (500,), generator=gen), small_cfg(arch="skipgram", window=3),
                     objective, gen)
    reports = []
    loss, examples = train_slices(step, model, objective, make_update("cap", 64.0), work, len(work),
                                  lambda unit: 0.05, workers=1, report=lambda units, mean: reports.append(mean))
    assert examples > 2 * len(work)  # pairs, not centres
    assert reports == [pytest.approx(float(loss) / examples)]


class CountingStep(Step):
    """Returns a known loss and example count per slice, and notes which thread ran it."""

    def __init__(self):
        self.threads: set[str] = set()

    def __call__(self, model, objective, batch, lr, rule):
        self.threads.add(threading.current_thread().name)  # unique, unlike an ident a finished thread frees
        return torch.tensor(0.5, dtype=torch.float64), 3 * len(batch)


class Units(list):
    def slice(self, lo, hi):
        return self[lo:hi]


def test_each_worker_thread_counts_its_own_examples():
    model = Model(4, 2, bias=False, device=torch.device("cpu"), generator=torch.Generator())
    step = CountingStep()
    loss, examples = train_slices(step, model, None, None, Units(range(1000)), 7, lambda unit: 0.1, workers=2)
    assert examples == 3000 and float(loss) == 0.5 * len(range(0, 1000, 7))
    assert len(step.threads) == 2


def test_the_kernel_does_not_depend_on_batch_size(tmp_path):
    """batch_size is the batched step's: the window kernel's tables are the same bit for bit at any."""
    require_kernel()
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, sentences=400)
    tables = []
    for batch_size in (64, 4096):
        metrics = train(corpus, tmp_path / str(batch_size), small_cfg(batch_size=batch_size, epochs=1),
                        progress_bar=False)
        assert metrics["step"] == "window_kernel"
        tables.append(load_checkpoint(tmp_path / str(batch_size) / "checkpoint.pt")["model"]["inp"])
    assert torch.equal(*tables)
