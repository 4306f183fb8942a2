"""The fused CPU kernel against the PyTorch path it replaces (oracle: embedding_bag, bmm,
index_add_ on the same batch), at a size that exercises its vector loops and their tails."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import require_kernel
from w2v_nce import fused
from w2v_nce.model import Model
from w2v_nce.objectives import make_objective
from w2v_nce.sampler import AliasSampler, unigram_power
from w2v_nce.train import sgd_step
from w2v_nce.updates import make_update
from w2v_nce.windows import cbow_examples


@pytest.fixture(autouse=True)
def _kernel():
    require_kernel()


def _setup(seed: int, dim: int, bias: bool, loss: str = "nce"):
    gen = torch.Generator().manual_seed(seed)
    vocab = 50
    objective = make_objective(loss, AliasSampler(unigram_power(np.arange(vocab, 0, -1) * 7), "cpu"), 6)
    model = Model(vocab, dim, bias=bias, device=torch.device("cpu"), generator=gen)
    model.inp = torch.randn(vocab, dim, generator=gen)
    model.out = torch.randn(vocab, dim, generator=gen)
    if bias:
        model.bias = torch.randn(vocab, generator=gen)
    ids = torch.randint(0, vocab, (400,), generator=gen)
    ids[::37] = -1  # sentence ends
    batch = cbow_examples(ids, 4, gen, shuffle=True)
    batch.candidates = objective.candidates(batch.targets, gen).ids
    return model, objective, batch


@pytest.mark.parametrize("dim", [1, 8, 19, 100])
@pytest.mark.parametrize("bias", [False, True])
def test_forward_equals_embedding_bag_and_bmm(dim, bias):
    model, _, batch = _setup(0, dim, bias)
    h, scores = fused.forward(model.inp, model.out, model.bias, batch.context, batch.offsets, batch.candidates)
    want_h = F.embedding_bag(batch.context, model.inp, batch.offsets[:-1], mode="mean")
    want = torch.bmm(model.out[batch.candidates], want_h[:, :, None]).squeeze(2)
    if bias:
        want += model.bias[batch.candidates]
    torch.testing.assert_close(h, want_h, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scores, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dim", [8, 19])
@pytest.mark.parametrize("loss", ["neg", "nce", "rnce"])
@pytest.mark.parametrize("update, cap", [("sum", 256.0), ("cap", 3.0)])
def test_step_equals_pytorch_path(dim, loss, update, cap, monkeypatch):
    results = []
    for available in (True, False):
        monkeypatch.setattr(fused, "AVAILABLE", available)
        model, objective, batch = _setup(1, dim, bias=loss != "neg", loss=loss)
        loss_sum = sgd_step(model, objective, batch, 0.05, None, make_update(update, cap))
        results.append((float(loss_sum), model.inp, model.out, model.bias))
    (l1, inp1, out1, b1), (l2, inp2, out2, b2) = results
    assert l1 == pytest.approx(l2, rel=1e-5)
    torch.testing.assert_close(inp1, inp2, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out1, out2, rtol=1e-4, atol=1e-5)
    if b1 is not None:
        torch.testing.assert_close(b1, b2, rtol=1e-4, atol=1e-5)
    assert not torch.equal(inp1, _setup(1, dim, bias=False)[0].inp)  # the step moved the tables
