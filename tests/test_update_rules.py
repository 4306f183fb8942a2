"""How a batch's updates to one row combine (Config.update), against a brute-force oracle.

The oracle walks the batch entry by entry in plain Python: it collects, for every row of
the output and input tables, the word2vec steps that the batch's examples give it, then
applies the rule's factor to the row's summed step, each rule's formula written out
literally (docs/large-batches.md).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
import torch

from w2v_nce import fused
from w2v_nce.model import Model
from w2v_nce.objectives import make_objective
from w2v_nce.sampler import AliasSampler, unigram_power
from w2v_nce.steps import Batched
from w2v_nce.updates import make_update
from w2v_nce.windows import cbow_examples

VOCAB, DIM, K, LR, CAP = 7, 4, 3, 0.2, 3.0


def _batch_and_model(seed: int):
    gen = torch.Generator().manual_seed(seed)
    counts = np.arange(VOCAB, 0, -1) * 5
    objective = make_objective("neg", AliasSampler(unigram_power(counts), "cpu"), K)
    model = Model(VOCAB, DIM, bias=False, device=torch.device("cpu"), generator=gen)
    model.inp = torch.randn(VOCAB, DIM, generator=gen)  # large enough that curvature matters
    model.out = torch.randn(VOCAB, DIM, generator=gen)
    ids = torch.randint(0, VOCAB, (60,), generator=gen)  # a small vocabulary: rows hit many times
    batch = cbow_examples(ids, 2, gen)
    batch.candidates = objective.candidates(batch.targets, gen).ids
    return model, objective, batch


def _factor(rule: str, vecs: list[np.ndarray], curv: list[float]) -> float:
    """The rule's factor for one row, from its entries' step vectors and curvature terms."""
    n = len(vecs)
    if rule == "sum":
        return 1.0
    if rule == "mean":
        return 1.0 / n
    if rule == "sqrt":
        return 1.0 / math.sqrt(n)
    if rule == "cap":
        return min(1.0, CAP / n)
    if rule == "implicit":
        return 1.0 / (1.0 + LR / 4 * sum(curv))
    return 1.0 / (1.0 + LR * sum(curv))  # directional: curv holds each term's slope bound already


def _slope_bound(g: float, shift: float) -> float:
    """max σ'(y) for y from the logit of |g| (the wrong answer's probability) to that logit
    moved by `shift` in the direction of sign(g), by cases."""
    wrong = min(max(abs(g), 1e-7), 1 - 1e-7)
    start = math.log(wrong / (1 - wrong))
    end = start + (shift if g > 0 else -shift if g < 0 else 0.0)
    if start <= 0 <= end or end <= 0 <= start:
        return 0.25
    y = min(abs(start), abs(end))
    return 1 / (1 + math.exp(-y)) * (1 - 1 / (1 + math.exp(-y)))


def _oracle(model: Model, objective, batch, rule: str) -> tuple[np.ndarray, np.ndarray]:
    inp, out = model.inp.double().numpy(), model.out.double().numpy()
    offsets, context = batch.offsets.tolist(), batch.context.tolist()
    cand = batch.candidates.tolist()
    out_steps, in_steps = defaultdict(list), defaultdict(list)
    out_probe, in_probe = defaultdict(list), defaultdict(list)  # what the curvature terms need
    for i, target in enumerate(batch.targets.tolist()):
        ctx = context[offsets[i] : offsets[i + 1]]
        h = inp[ctx].mean(0)
        rows = cand[i]
        s = out[rows] @ h
        g = 1 / (1 + np.exp(-s)) - np.array([1.0] + [0.0] * K)  # d loss / d s, negative sampling
        g[1:] *= np.array(rows[1:]) != target  # noise equal to the target is skipped
        err = -LR * (g @ out[rows])
        for j, row in enumerate(rows):
            if j > 0 and row == target:
                continue  # skipped: neither a step nor a hit on its row
            out_steps[row].append(-LR * g[j] * h)
            out_probe[row].append((h, g[j]))
        for row in ctx:
            in_steps[row].append(err)  # the whole error to every context word (cbow_mean=1)
            in_probe[row].append((out[rows], len(ctx), g))

    def apply(table, steps, probes, side):
        new = table.copy()
        for row, vecs in steps.items():
            total = np.sum(vecs, axis=0)
            curv = []
            if rule == "implicit":
                if side == "out":
                    curv = [h @ h for h, _ in probes[row]]
                else:
                    curv = [float((o * o).sum()) for o, _, _ in probes[row]]
            elif rule == "directional":
                length = np.linalg.norm(total)
                u = total / length
                if side == "out":  # the row moves score j of example i through h_i
                    for h, gj in probes[row]:
                        curv.append(_slope_bound(gj, (h @ u) * length) * (h @ u) ** 2)
                else:  # ... and a context row through out_ij / n_i, with lr n_i (the whole error)
                    for o, n, g in probes[row]:
                        curv.append(sum(_slope_bound(g[j], (o[j] @ u) * length / n) * (o[j] @ u) ** 2 / n
                                        for j in range(len(g))))
            new[row] += _factor(rule, vecs, curv) * total
        return new

    return apply(out, out_steps, out_probe, "out"), apply(inp, in_steps, in_probe, "in")


@pytest.mark.parametrize("rule", ["sum", "mean", "sqrt", "cap", "implicit", "directional"])
@pytest.mark.parametrize("seed", [0, 1])
def test_update_rule_equals_brute_force(rule, seed, monkeypatch):
    # the rules combine a batch's steps: the batched PyTorch path (the CPU kernel trains negative
    # sampling example by example, where no steps are combined; test_fused covers its batched path)
    monkeypatch.setattr(fused, "AVAILABLE", False)
    model, objective, batch = _batch_and_model(seed)
    expected_out, expected_inp = _oracle(model, objective, batch, rule)
    Batched()(model, objective, batch, LR, make_update(rule, CAP))
    np.testing.assert_allclose(model.out.numpy(), expected_out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.inp.numpy(), expected_inp, rtol=1e-4, atol=1e-5)


def test_rules_differ_on_this_batch(monkeypatch):
    monkeypatch.setattr(fused, "AVAILABLE", False)  # the batched path
    """The batch hits rows often enough that every rule gives a different update."""
    results = []
    for rule in ["sum", "mean", "sqrt", "cap", "implicit", "directional"]:
        model, objective, batch = _batch_and_model(0)
        Batched()(model, objective, batch, LR, make_update(rule, CAP))
        results.append(torch.cat([model.out, model.inp]))
    for a in range(len(results)):
        for b in range(a + 1, len(results)):
            assert not torch.allclose(results[a], results[b], atol=1e-4), (a, b)


def test_directional_damps_less_than_implicit():
    """Along the row's own move (h.u)^2 <= |h|^2 and the slope bound is <= 1/4, so directional
    never damps an output row more than implicit does."""
    model, objective, batch = _batch_and_model(0)
    base = model.out.clone()
    Batched()(model, objective, batch, LR, make_update("directional", CAP))
    moved_directional = (model.out - base).norm(dim=1)
    model2, objective2, batch2 = _batch_and_model(0)
    Batched()(model2, objective2, batch2, LR, make_update("implicit", CAP))
    moved_implicit = (model2.out - base).norm(dim=1)
    assert (moved_directional >= moved_implicit - 1e-6).all()
    assert (moved_directional > moved_implicit + 1e-4).any()
