"""The fused CPU kernel against the PyTorch path it replaces (oracle: embedding_bag, bmm,
index_add_ on the same batch), at a size that exercises its vector loops and their tails, for
CBOW and skip-gram bags and for sampled and tree (masked) candidates."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import require_kernel
from w2v_nce import fused
from w2v_nce.model import Model
from w2v_nce.objectives import make_objective
from w2v_nce.sampler import AliasSampler, unigram_power
from w2v_nce.steps import choose_step
from w2v_nce.updates import make_update
from w2v_nce.vocab import HuffmanTree
from w2v_nce.windows import EXAMPLES


@pytest.fixture(autouse=True)
def _kernel():
    require_kernel()


def _setup(seed: int, dim: int, bias: bool, loss: str = "nce", arch: str = "cbow", negatives: int = 6):
    gen = torch.Generator().manual_seed(seed)
    vocab = 50
    counts = np.arange(vocab, 0, -1) * 7
    objective = make_objective(loss, AliasSampler(unigram_power(counts), "cpu"), negatives,
                               tree=HuffmanTree.from_counts(counts))
    rows = objective.output_rows(vocab)
    model = Model(vocab, dim, bias=bias, device=torch.device("cpu"), generator=gen, out_rows=rows)
    model.inp = torch.randn(vocab, dim, generator=gen)
    model.out = torch.randn(rows, dim, generator=gen)
    if bias:
        model.bias = torch.randn(rows, generator=gen)
    ids = torch.randint(0, vocab, (400,), generator=gen)
    ids[::37] = -1  # sentence ends
    batch = EXAMPLES[arch](ids, 4, gen, shuffle=True)
    batch.candidates = objective.draw(batch.targets, gen)
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


def test_masked_candidates_score_zero_and_do_not_move():
    model, objective, batch = _setup(0, 8, bias=True, loss="hs")
    cand = objective.complete(batch.targets, None)
    assert not cand.mask.all()  # Huffman paths of different lengths: padding
    _, scores = fused.forward(model.inp, model.out, model.bias, batch.context, batch.offsets, cand.ids, cand.mask)
    assert (scores[~cand.mask] == 0).all()
    before = model.out.clone()
    step = torch.where(cand.mask, torch.zeros_like(scores), torch.full_like(scores, 1e3))  # only padding "moves"
    h, _ = fused.forward(model.inp, model.out, model.bias, batch.context, batch.offsets, cand.ids, cand.mask)
    fused.backward(model.inp, model.out, model.bias, batch.context, batch.offsets, cand.ids, cand.mask, h, step,
                   None, None)
    assert torch.equal(model.out, before)


def test_bad_arguments_are_refused():
    model, objective, batch = _setup(0, 8, bias=False, loss="neg")
    with pytest.raises(ValueError, match="int64"):
        fused.forward(model.inp, model.out, None, batch.context.int(), batch.offsets, batch.candidates)
    with pytest.raises(ValueError, match="float32"):
        fused.forward(model.inp.double(), model.out, None, batch.context, batch.offsets, batch.candidates)
    with pytest.raises(ValueError, match="offsets"):
        fused.forward(model.inp, model.out, None, batch.context, batch.offsets[:-1], batch.candidates)


def test_out_of_range_ids_are_refused_when_checking(monkeypatch):
    monkeypatch.setattr(fused, "CHECK_IDS", True)
    model, objective, batch = _setup(0, 8, bias=False, loss="neg")
    bad = batch.candidates.clone()
    bad[3, 2] = len(model.out)
    with pytest.raises(ValueError, match="out of range"):
        fused.forward(model.inp, model.out, None, batch.context, batch.offsets, bad)


@pytest.mark.parametrize("dim", [8, 19])
@pytest.mark.parametrize("loss, arch", [("rnce", "cbow"), ("is", "cbow"), ("rnce", "skipgram")])
@pytest.mark.parametrize("update, cap", [("sum", 256.0), ("cap", 3.0)])
def test_batched_step_equals_pytorch_path(dim, loss, arch, update, cap, monkeypatch):
    results = []
    for available in (True, False):
        model, objective, batch = _setup(1, dim, bias=True, loss=loss, arch=arch)
        monkeypatch.setattr(fused, "AVAILABLE", available)  # after drawing: the same noise words for both
        step, _ = choose_step("auto", model, objective, make_update(update, cap))
        assert step.name == ("batched_kernel" if available else "batched")
        loss_sum, _ = step(model, objective, batch, 0.05, make_update(update, cap))
        results.append((float(loss_sum), model.inp, model.out, model.bias))
    (l1, inp1, out1, b1), (l2, inp2, out2, b2) = results
    assert l1 == pytest.approx(l2, rel=1e-5)
    torch.testing.assert_close(inp1, inp2, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out1, out2, rtol=1e-4, atol=1e-5)
    if b1 is not None:
        torch.testing.assert_close(b1, b2, rtol=1e-4, atol=1e-5)
    assert not torch.equal(inp1, _setup(1, dim, bias=False)[0].inp)  # the step moved the tables


# --------------------------------------------------------------------------- word2vec text


def _float32_cases() -> np.ndarray:
    """Every kind of float32: random bit patterns (all exponents, denormals, inf, nan of both
    signs), the powers of ten and their neighbours (where log10's floor is off by one), values
    whose 9-digit rounding is a tie or near one, and typical vector values."""
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2**32, size=400_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    tens = np.array([10.0**k for k in range(-45, 39)], dtype=np.float32)
    near = np.concatenate([np.nextafter(tens, np.float32(np.inf)), np.nextafter(tens, np.float32(0)), tens])
    odd = np.arange(1, 64, 2, dtype=np.float64)
    ties = np.ldexp(odd[:, None], -np.arange(0, 60)[None, :]).astype(np.float32).ravel()  # 2^-13: 10 digits, a tie
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-9, 1e9, 999999999.0, 99999999.5,
                        np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45], dtype=np.float32)
    typical = rng.standard_normal(100_000).astype(np.float32) * 0.3
    values = np.concatenate([bits, near, -near, ties, special, typical])
    return np.concatenate([values, np.zeros(-len(values) % 100, dtype=np.float32)]).reshape(-1, 100)


def test_rows_format_as_python_s_percent_9g_byte_for_byte():
    """The kernel's word2vec text is Python's '%.9g' of every value (correctly rounded, so it
    reads back to the same float32), for rows of a strided table too."""
    rows = _float32_cases()
    exact = [Decimal(float(v)).normalize().as_tuple().digits for v in rows.ravel()[-200_000:] if math.isfinite(v) and v]
    assert sum(len(d) == 10 and d[-1] == 5 for d in exact) > 20  # ties at the 9th digit: half to even
    padded = np.zeros((len(rows), 112), dtype=np.float32)
    padded[:, :100] = rows
    for table in (rows, padded[:, :100]):
        text, ends = fused.format_rows(table)
        expected = [" " + " ".join("%.9g" % v for v in row) + "\n" for row in table.tolist()]
        assert text.decode().splitlines(keepends=True) == expected
        assert ends.tolist() == np.cumsum([len(line) for line in expected]).tolist()


def test_a_text_vectors_file_is_the_same_with_or_without_the_kernel(tmp_path, monkeypatch):
    from w2v_nce import vectors

    rows = _float32_cases()[:2000]
    words = [f"w{i}" for i in range(len(rows))]
    vectors.write_word2vec(words, rows, tmp_path / "fast.txt")
    monkeypatch.setattr(fused, "AVAILABLE", False)
    vectors.write_word2vec(words, rows, tmp_path / "python.txt")
    assert (tmp_path / "fast.txt").read_bytes() == (tmp_path / "python.txt").read_bytes()
