"""The window kernel (fused.window_sgd) against the examples enumerated by brute force in Python
and trained by word2vec.c's loop written out (tests/oracles.py, in float64, with the objectives'
own loss and gradient): the same windows, radii, skip-gram pairs, noise draws and updates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import require_kernel
from oracles import kernel_examples as brute_force_examples, kernel_stream as splitmix64, word2vec_loop
from w2v_nce import fused
from w2v_nce.objectives import make_objective
from w2v_nce.sampler import AliasSampler, unigram_power
from w2v_nce.vocab import HuffmanTree
from w2v_nce.windows import Examples

RADIUS_STREAM = 0x5DEECE66D


@pytest.fixture(autouse=True)
def _kernel():
    require_kernel()


def setup(seed: int, dim: int, loss: str, bias: bool = False, negatives: int = 5):
    gen = torch.Generator().manual_seed(seed)
    vocab = 60
    counts = np.arange(vocab, 0, -1) ** 2
    objective = make_objective(loss, AliasSampler(unigram_power(counts), "cpu"), negatives,
                               tree=HuffmanTree.from_counts(counts))
    rows = objective.output_rows(vocab)
    tables = dict(inp=torch.randn(vocab, dim, generator=gen) * 0.3, out=torch.randn(rows, dim, generator=gen) * 0.3,
                  bias=torch.randn(rows, generator=gen) * 0.1 if bias else None)
    ids = torch.randint(0, vocab, (300,), generator=gen, dtype=torch.int32)
    ids[torch.randperm(300, generator=gen)[:25]] = -1  # sentence ends, some next to each other
    positions = torch.nonzero(ids >= 0).squeeze(1)
    centres = positions[torch.randperm(len(positions), generator=gen)]
    return objective, tables, ids, centres


def copy(tables):
    return {k: None if v is None else v.clone() for k, v in tables.items()}


def kernel_and_loop(objective, tables, ids, centres, window, skipgram, seed, lr=0.05, hot=(0, 7), shared_noise=False):
    """(the kernel's loss, examples and tables; word2vec's loop's loss and tables) from the same start."""
    rows, const = objective.logit_offset()
    ours = copy(tables)
    loss_ours, _, n = fused.window_sgd(ours["inp"], ours["out"], ours["bias"], ids, centres, window, skipgram, lr,
                                       seed, row_offset=rows, const_offset=float(const), hot=hot,
                                       shared_noise=shared_noise, **objective.kernel_candidates())
    examples = brute_force_examples(ids.tolist(), centres.tolist(), window, seed, skipgram)
    context = torch.tensor([w for bag, _ in examples for w in bag], dtype=torch.int64)
    offsets = torch.tensor(np.cumsum([0] + [len(bag) for bag, _ in examples]), dtype=torch.int64)
    targets = torch.tensor([t for _, t in examples], dtype=torch.int64)
    drawn = None
    if objective.name != "hs":  # the noise stream, k draws per example in order (per window when shared)
        windows = [len(bag) for bag, _ in brute_force_examples(ids.tolist(), centres.tolist(), window, seed, False)]
        per = windows if shared_noise and skipgram else [1] * len(examples)
        drawn = fused.alias_sample(objective.sampler.accept, objective.sampler.alias, (len(per), objective.k), seed)
        drawn = drawn.repeat_interleave(torch.tensor(per), dim=0)
        drawn = torch.cat([targets[:, None], drawn], dim=1)
    cand = objective.complete(targets, drawn)
    batch = Examples(targets=targets, context=context, offsets=offsets)
    loss_ref, theirs = word2vec_loop(objective, batch, cand, (tables["inp"], tables["out"], tables["bias"]), lr)
    return (loss_ours, n, ours), (loss_ref, len(examples), dict(zip(("inp", "out", "bias"), theirs)))


@pytest.mark.parametrize("arch", ["cbow", "skipgram"])
@pytest.mark.parametrize("loss,dim,bias", [("hs", 19, False), ("neg", 16, False), ("nce", 21, True)])
@pytest.mark.parametrize("window", [1, 4])
def test_window_kernel_equals_word2vecs_loop_over_brute_force_examples(arch, loss, dim, bias, window):
    objective, tables, ids, centres = setup(3, dim, loss, bias)
    (loss_ours, n, ours), (loss_ref, n_ref, theirs) = kernel_and_loop(objective, tables, ids, centres, window,
                                                                      arch == "skipgram", seed=12345)
    assert n == n_ref > 0
    assert loss_ours == pytest.approx(loss_ref, rel=1e-5)
    for name in ("inp", "out", "bias"):
        if tables[name] is not None:
            torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-5)
            assert not torch.equal(ours[name], tables[name]), name


@pytest.mark.parametrize("loss", ["neg", "nce"])
def test_shared_noise_is_one_draw_per_window_for_all_its_examples(loss):
    """shared_noise (pWord2Vec's shared negatives): each window's skip-gram examples score the same
    noise words, drawn once for the window from the stream; otherwise word2vec's loop."""
    objective, tables, ids, centres = setup(4, 17, loss, bias=loss == "nce")
    (loss_ours, n, ours), (loss_ref, n_ref, theirs) = kernel_and_loop(objective, tables, ids, centres, 3, True,
                                                                      seed=99, shared_noise=True)
    assert n == n_ref > 0
    assert loss_ours == pytest.approx(loss_ref, rel=1e-5)
    for name in ("inp", "out", "bias"):
        if tables[name] is not None:
            torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("loss", ["neg", "hs"])
@pytest.mark.parametrize("dim", [16, 21])
def test_row_padded_tables_train_as_contiguous_ones(loss, dim):
    """Model.align_rows lays rows a cache line apart: the kernel reads them at that stride and gives the
    same tables, bit for bit, as on contiguous ones, and never writes the padding."""
    from w2v_nce.model import Model
    objective, tables, ids, centres = setup(5, dim, loss)
    (_, _, plain), _ = kernel_and_loop(objective, tables, ids, centres, 3, True, seed=5)
    model = Model.__new__(Model)
    model.inp, model.out = tables["inp"].clone(), tables["out"].clone()
    model.align_rows()
    width = -(-dim // 16) * 16
    assert model.inp.stride(0) == model.out.stride(0) == width and model.inp.data_ptr() % 64 == 0
    rows, const = objective.logit_offset()
    fused.window_sgd(model.inp, model.out, None, ids, centres, 3, True, 0.05, 5, row_offset=rows,
                     const_offset=float(const), hot=(0, 7), **objective.kernel_candidates())
    assert torch.equal(model.inp, plain["inp"]) and torch.equal(model.out, plain["out"])
    full = model.inp.as_strided((len(model.inp), width), (width, 1))
    assert not full[:, dim:].any()


@pytest.mark.parametrize("loss", ["neg", "nce"])
def test_window_kernel_past_a_block_of_repeated_noise(loss):
    """More candidates than the kernel scores ahead at once (64), most of them repeats of a few
    frequent words: a repeat must be scored against its row as the earlier step left it."""
    objective, tables, ids, centres = setup(2, 19, loss, bias=True, negatives=70)
    (loss_ours, n, ours), (loss_ref, _, theirs) = kernel_and_loop(objective, tables, ids, centres, 2, False, seed=7)
    assert objective.k + 1 > 64
    assert loss_ours == pytest.approx(loss_ref, rel=1e-5)
    for name in ("inp", "out", "bias"):
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-5)


def test_window_kernel_radii_are_uniform():
    """The radius stream draws 1..window uniformly: a chi-square test over many centres (the
    brute-force test above fixes the stream; this one checks what it is)."""
    from scipy import stats

    window = 5
    radii = splitmix64(7 ^ RADIUS_STREAM)
    counts = np.bincount([1 + next(radii) % window for _ in range(50_000)], minlength=window + 1)[1:]
    assert stats.chisquare(counts).pvalue > 1e-3


def test_window_kernel_refuses_bad_arguments():
    objective, tables, ids, centres = setup(0, 8, "neg")
    noise = (objective.sampler.accept, objective.sampler.alias, objective.k, True)
    with pytest.raises(ValueError, match="ids must be"):
        fused.window_sgd(tables["inp"], tables["out"], None, ids.long(), centres, 2, False, 0.1, 1, noise=noise)
    with pytest.raises(ValueError, match="noise or tree"):
        fused.window_sgd(tables["inp"], tables["out"], None, ids, centres, 2, False, 0.1, 1)
    with pytest.raises(ValueError, match="window"):
        fused.window_sgd(tables["inp"], tables["out"], None, ids, centres, 0, False, 0.1, 1, noise=noise)


def test_saturated_candidates_take_no_step():
    """With `saturated`, a candidate whose logit is already beyond it on its label's side (|g| <
    σ(-6)) takes no step; every other one steps as word2vec.c's loop does. Oracle: that loop in
    float64 over the brute-force examples, with the rule written out."""
    objective, tables, ids, centres = setup(5, 16, "hs")
    tables = {k: None if v is None else v * 10 for k, v in tables.items()}  # scores of several units: many saturate
    seed, lr, window, limit = 99, 0.05, 3, 6.0
    ours = copy(tables)
    loss, _, n = fused.window_sgd(ours["inp"], ours["out"], None, ids, centres, window, False, lr, seed,
                                  tree=(objective.points, objective.path_labels, objective.path_mask), saturated=limit)
    inp, out = tables["inp"].double(), tables["out"].double()
    skipped = stepped = 0
    expected_loss = 0.0
    for bag, target in brute_force_examples(ids.tolist(), centres.tolist(), window, seed, skipgram=False):
        h = inp[bag].mean(0)
        err = torch.zeros_like(h)
        for node, label, keep in zip(objective.points[target], objective.path_labels[target], objective.path_mask[target]):
            if not keep:
                continue
            y = float(out[node] @ h)
            if (y > limit) if label > 0.5 else (y < -limit):
                skipped += 1
                expected_loss += math.exp(-abs(y))
                continue
            stepped += 1
            expected_loss += math.log1p(math.exp(-abs(y))) + max(y, 0.0) - float(label) * y
            g = 1 / (1 + math.exp(-y)) - float(label)
            err -= lr * g * out[node]
            out[node] -= lr * g * h
        inp.index_add_(0, torch.tensor(bag), err.expand(len(bag), -1))
    assert skipped > 100 and stepped > 100
    torch.testing.assert_close(ours["inp"], inp.float(), rtol=0, atol=2e-4)
    torch.testing.assert_close(ours["out"], out.float(), rtol=0, atol=2e-4)
    assert loss == pytest.approx(expected_loss, rel=1e-4)
