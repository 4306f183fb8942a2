"""The GPU path against the CPU, for a machine with CUDA (CI has none: skipped there).

Oracle: the CPU PyTorch path, which the other tests check against brute force and autograd;
the GPU runs the same code on other kernels (atomics in index_add_, a CUDA generator), so
what can differ is device handling. The Triton kernel (step = triton) has the C kernel as its
oracle, as on the CPU (tests/test_triton_kernel.py; scripts/gpu_matrix.sh builds the C kernel
first). scripts/gpu_matrix.sh runs this file before it measures. W2V_NCE_TEST_DEVICE=cpu runs it
on the CPU instead (a dry run of the tests themselves: the Triton kernel then in Triton's
interpreter, and its training tests skipped).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from w2v_nce import fused
from w2v_nce.model import Model
from w2v_nce.objectives import make_objective, objective_for
from w2v_nce.sampler import AliasSampler, unigram_power
from w2v_nce.steps import Batched
from w2v_nce.subwords import Subwords
from w2v_nce.train import train
from w2v_nce.updates import make_update
from w2v_nce.vectors import load_word2vec
from w2v_nce.vocab import SENTENCE_END
from w2v_nce.windows import Examples, PaddedCentres, cbow_examples, example_maker, subsample, subsample_padded
from conftest import require_kernel, require_triton, write_twin_corpus
from oracles import SEED, assert_same_training, c_kernel, copy_tables, kernel_case, small_cfg

DEVICE = torch.device(os.environ.get("W2V_NCE_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="no CUDA GPU")

VOCAB, DIM = 300, 24


def _on(batch: Examples, device: torch.device) -> Examples:
    return Examples(
        targets=batch.targets.to(device), context=batch.context.to(device), offsets=batch.offsets.to(device),
        host_offsets=batch.host_offsets, candidates=None if batch.candidates is None else batch.candidates.to(device),
    )


def _step(device: torch.device, loss: str, update: str, arch: str = "cbow",
          buckets: int = 0) -> tuple[Model, object]:
    """One SGD step on `device` from the same start (with `buckets`, subwords); returns the model and
    the objective."""
    gen = torch.Generator().manual_seed(0)
    counts = np.arange(VOCAB, 0, -1) * 3
    objective = make_objective(loss, AliasSampler(unigram_power(counts), device), 5, learn_log_z=loss == "nce")
    layout = Subwords.build([f"w{i}ord{i % 7}" for i in range(VOCAB)], 3, 6, buckets) if buckets else None
    model = Model(VOCAB, DIM, bias=loss != "neg", device=device, generator=torch.Generator(device=device),
                  subwords=layout)
    model.inp = (torch.randn(VOCAB + buckets, DIM, generator=gen) * 0.3).to(device)
    model.out = (torch.randn(VOCAB, DIM, generator=gen) * 0.3).to(device)
    if model.bias is not None:
        model.bias = torch.randn(VOCAB, generator=gen).to(device)
    ids = torch.randint(0, VOCAB // 3, (4000,), generator=gen)  # frequent rows: some pass the cap
    ids[::41] = SENTENCE_END
    batch = example_maker(arch, buckets > 0)(ids, 4, gen, shuffle=True)
    if loss != "softmax":  # drawn once on the CPU, so that both devices score the same candidates
        noise = AliasSampler(unigram_power(counts)).sample((len(batch), 5), gen)
        batch.candidates = torch.cat([batch.targets[:, None], noise], dim=1)
    batch.host_offsets = batch.offsets.numpy()
    loss_sum, _ = Batched()(model, objective, _on(batch, device), 0.05, make_update(update, 16.0))
    assert torch.isfinite(loss_sum)
    return model, objective


@pytest.mark.parametrize("loss", ["softmax", "neg", "nce", "rnce"])
@pytest.mark.parametrize("update", ["cap", "sum", "directional"])
def test_step_equals_cpu(loss, update, monkeypatch):
    monkeypatch.setattr(fused, "AVAILABLE", False)  # the CPU oracle: the PyTorch path, as on the GPU
    cpu, cpu_objective = _step(torch.device("cpu"), loss, update)
    gpu, gpu_objective = _step(DEVICE, loss, update)
    assert gpu.inp.device.type == DEVICE.type
    for name in ("inp", "out", "bias"):
        want, got = getattr(cpu, name), getattr(gpu, name)
        if want is not None:
            torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-5)
    assert float(gpu_objective.state_dict().get("log_z", 0.0)) == pytest.approx(
        float(cpu_objective.state_dict().get("log_z", 0.0)), abs=1e-5)


@pytest.mark.parametrize("arch", ["cbow", "skipgram"])
@pytest.mark.parametrize("loss", ["softmax", "neg", "rnce"])
def test_step_with_subwords_equals_cpu(loss, arch, monkeypatch):
    """Bags of n-gram rows (w2v_nce.subwords.expand_bags) on the device, against the CPU."""
    monkeypatch.setattr(fused, "AVAILABLE", False)
    cpu, _ = _step(torch.device("cpu"), loss, "cap", arch, buckets=500)
    gpu, _ = _step(DEVICE, loss, "cap", arch, buckets=500)
    assert gpu.inp.device.type == DEVICE.type and len(gpu.inp) == VOCAB + 500
    for name in ("inp", "out"):
        torch.testing.assert_close(getattr(gpu, name).cpu(), getattr(cpu, name), rtol=1e-4, atol=1e-5)
    assert not torch.equal(cpu.inp[VOCAB:], (torch.randn(VOCAB + 500, DIM, generator=torch.Generator().manual_seed(0))
                                             * 0.3)[VOCAB:])


def test_windows_equal_cpu():
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 50, (5000,), generator=gen)
    ids[::17] = SENTENCE_END
    words = int((ids != SENTENCE_END).sum())
    radius = torch.randint(1, 6, (words,), generator=gen)
    want = cbow_examples(ids, 5, None, radius=radius)
    got = cbow_examples(ids.to(DEVICE), 5, None, radius=radius.to(DEVICE))
    for name in ("targets", "context", "offsets"):
        assert torch.equal(getattr(got, name).cpu(), getattr(want, name)), name


def test_subsample_and_shuffle_keep_every_example():
    """On the device with its own generator: subsampling keeps sentence ends and drops a word
    as often as 1 - keep_prob says; shuffling permutes the examples, it does not change them."""
    gen = torch.Generator(device=DEVICE).manual_seed(1)
    ids = torch.randint(0, 2, (200_000,), device=DEVICE)
    ids[::100] = SENTENCE_END
    kept = subsample(ids, torch.tensor([0.25, 1.0], device=DEVICE), gen)
    assert int((kept == SENTENCE_END).sum()) == 2000
    zeros, ones = int((ids == 0).sum()), int((ids == 1).sum())
    assert int((kept == 1).sum()) == ones
    assert int((kept == 0).sum()) == pytest.approx(zeros * 0.25, rel=0.03)
    plain = cbow_examples(kept, 3, torch.Generator(device=DEVICE).manual_seed(5))
    shuffled = cbow_examples(kept, 3, torch.Generator(device=DEVICE).manual_seed(5), shuffle=True)
    assert len(plain) == len(shuffled)
    assert torch.equal(torch.sort(plain.targets).values, torch.sort(shuffled.targets).values)
    assert not torch.equal(plain.targets, shuffled.targets)


def test_alias_sampler_chi_square_on_device():
    prob = unigram_power(np.array([500, 300, 120, 60, 15, 4, 1]), 0.75)
    sampler = AliasSampler(prob, DEVICE)
    draws = sampler.sample((400_000,), torch.Generator(device=DEVICE).manual_seed(7))
    assert draws.device.type == DEVICE.type
    observed = np.bincount(draws.cpu().numpy(), minlength=len(prob))
    assert chisquare(observed, prob * len(draws)).pvalue > 1e-4


@pytest.mark.parametrize("loss", ["neg", "nce", "softmax"])
def test_train_and_resume_on_device(tmp_path, twin_corpus, loss):
    corpus, twins = twin_corpus
    metrics = train(corpus, tmp_path / "run", small_cfg(device=str(DEVICE), loss=loss, epochs=1, batch_size=256),
                    progress_bar=False)
    assert metrics["device"].startswith(DEVICE.type) and np.isfinite(metrics["final_loss"])
    metrics = train(corpus, tmp_path / "run", small_cfg(device=str(DEVICE), loss=loss, epochs=2, batch_size=256),
                    resume=True, progress_bar=False)
    assert metrics["epochs"] == 2 and np.isfinite(metrics["final_loss"])
    vectors = load_word2vec(tmp_path / "run" / "vectors.txt")  # gensim is not on the GPU machines
    assert np.isfinite(vectors.matrix).all() and len(vectors.words) == 2 * len(twins)


@pytest.mark.parametrize("step", ["batched", "triton"])
def test_grow_lock_and_heldout_on_device(tmp_path, twin_corpus, step):
    """A run continued with --update-vocab, frozen rows from --init-vectors and a held-out loss,
    on the device: the frozen rows end bit for bit, the held-out loss is finite and recorded."""
    from w2v_nce.checkpoint import CHECKPOINT, load_checkpoint
    from w2v_nce.vectors import Vectors, save_word2vec

    if step == "triton":
        require_triton()
        if DEVICE.type != "cuda":
            pytest.skip("the Triton kernel trains a corpus on CUDA only (the interpreter is too slow)")
    twin_corpus, _ = twin_corpus
    cfg = small_cfg(device=str(DEVICE), epochs=2, step=step, batch_size=64)
    train(twin_corpus, tmp_path / "run", cfg)
    words = load_word2vec(tmp_path / "run" / "vectors.txt").words[:10]
    given = Vectors(words, np.random.default_rng(0).normal(size=(10, cfg.dim)).astype(np.float32))
    save_word2vec(given, tmp_path / "v.txt")
    grown = small_cfg(device=str(DEVICE), epochs=2, step=step, batch_size=64, init_vectors=str(tmp_path / "v.txt"),
                      lock_init=True, heldout=str(twin_corpus))
    metrics = train(twin_corpus, tmp_path / "grown", grown, init=tmp_path / "run", update_vocab=True)
    assert metrics["frozen_rows"] == 10 and all(np.isfinite(h["heldout"]) for h in metrics["history"])
    state = load_checkpoint(tmp_path / "grown" / CHECKPOINT)
    rows = dict(zip(state["words"], state["model"]["inp"]))
    for word, vector in zip(given.words, given.matrix):
        assert torch.equal(rows[word], torch.from_numpy(vector))


# --------------------------------------------------------------------------- the Triton kernel (step = triton)


def _on_device(tables):
    return tuple(None if t is None else t.to(DEVICE) for t in tables)


@pytest.mark.parametrize("loss", ["neg", "nce", "hs"])
@pytest.mark.parametrize("arch", ["cbow", "skipgram", "skipgram-shared"])
def test_triton_kernel_equals_the_c_kernel(loss, arch):
    """One program on the device trains its slice as one C kernel thread does (the interpreter's
    agreement with the C kernel is tests/test_triton_kernel.py's); `-shared`: shared_negatives."""
    from w2v_nce import triton_kernel

    require_triton()
    require_kernel()
    skipgram, shared = arch.startswith("skipgram"), arch.endswith("shared")
    big = DEVICE.type == "cuda"  # the CPU's dry run runs the interpreter: tiny inputs
    objective, tables, ids, gen = kernel_case(loss, tokens=(60 if skipgram else 200) if big else (16 if skipgram else 36))
    centres = torch.nonzero(ids >= 0).squeeze(1)
    centres = centres[torch.randperm(len(centres), generator=gen)]
    want_tables = copy_tables(tables)
    want = c_kernel(objective, want_tables, ids, centres, 2 if skipgram else 4, skipgram, SEED, shared_noise=shared)
    on_device = objective_for(small_cfg(loss=loss, learn_log_z=loss == "nce", log_z=0.3),
                              np.arange(30, 0, -1) * 7, DEVICE)
    got_tables = _on_device(tables)
    rows, const = on_device.logit_offset()
    loss_sum, gsum, examples = triton_kernel.window_sgd(
        *got_tables, ids.to(DEVICE), centres.to(DEVICE), 2 if skipgram else 4, skipgram, 0.1, SEED, 1,
        row_offset=rows, const_offset=const, saturated=6.0, shared_noise=shared, **on_device.kernel_candidates())
    got = (float(loss_sum), float(gsum), int(examples))
    assert_same_training((got, tuple(None if t is None else t.cpu() for t in got_tables)), (want, want_tables))


def test_triton_chunk_made_on_the_device():
    """subsample_padded keeps subsample's words (the same draws) and pads with sentence ends;
    PaddedCentres' positions are a permutation of the chunk's."""
    gen = torch.Generator(device=DEVICE).manual_seed(2)
    ids = torch.randint(0, 50, (20_000,), device=DEVICE)
    ids[::23] = SENTENCE_END
    keep = torch.rand(50, device=DEVICE)
    kept = subsample(ids, keep, torch.Generator(device=DEVICE).manual_seed(8))
    padded = subsample_padded(ids, keep, torch.Generator(device=DEVICE).manual_seed(8))
    assert padded.dtype == torch.int32 and len(padded) == len(ids)
    assert torch.equal(padded[:len(kept)].long(), kept) and bool((padded[len(kept):] == SENTENCE_END).all())
    chunk = PaddedCentres.of(padded, 5, "cbow", gen, shuffle=True)
    assert chunk.positions.device.type == DEVICE.type
    assert torch.equal(torch.sort(chunk.positions).values, torch.arange(len(ids), device=DEVICE))


def _twin_ranks(path, twins) -> np.ndarray:
    vectors = load_word2vec(path)
    unit = vectors.matrix / np.linalg.norm(vectors.matrix, axis=1, keepdims=True)
    index = {w: i for i, w in enumerate(vectors.words)}
    cos = unit @ unit.T
    np.fill_diagonal(cos, -np.inf)
    order = np.argsort(-cos, axis=1)
    return np.array([int(np.nonzero(order[index[a]] == index[b])[0][0]) for a, b in twins])


@pytest.mark.parametrize("loss, arch", [("neg", "cbow"), ("neg", "skipgram"), ("nce", "cbow"), ("hs", "cbow")])
def test_triton_step_learns_the_twins(tmp_path, loss, arch):
    """Many programs at once (Hogwild) on the device: every twin first or second, as the CPU's
    two Hogwild threads do (tests/test_train.py); then a resume continues on the same step."""
    require_triton()
    if DEVICE.type != "cuda":
        pytest.skip("the Triton kernel trains a corpus on CUDA only (the interpreter is too slow)")
    corpus = tmp_path / "twins.txt"
    twins = write_twin_corpus(corpus, seed=0)
    cfg = small_cfg(device=str(DEVICE), step="triton", programs=256, loss=loss, arch=arch)
    metrics = train(corpus, tmp_path / "run", cfg, progress_bar=False)
    assert metrics["step"] == "triton_kernel" and np.isfinite(metrics["final_loss"])
    ranks = _twin_ranks(tmp_path / "run" / "vectors.txt", twins)
    assert ranks.max() < 2, ranks
    metrics = train(corpus, tmp_path / "run", small_cfg(device=str(DEVICE), step="triton", programs=256, loss=loss,
                                                         arch=arch, epochs=4), resume=True, progress_bar=False)
    assert metrics["epochs"] == 4 and metrics["step"] == "triton_kernel" and np.isfinite(metrics["final_loss"])


def test_an_epoch_on_the_triton_step_waits_for_nothing(tmp_path):
    """Inside an epoch the host never waits for the GPU (torch's sync debug mode raises at the
    first synchronising call): the chunks are made and trained from the host without a sync."""
    from w2v_nce.encoded import EncodedCorpus
    from w2v_nce.train import LinearDecay, Trainer
    from w2v_nce.vocab import build_vocabulary

    require_triton()
    if DEVICE.type != "cuda":
        pytest.skip("the sync debug mode needs CUDA")
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, seed=0)
    cfg = small_cfg(device=str(DEVICE), step="triton", chunk_tokens=5000, loss="nce", learn_log_z=True)
    vocab, _ = build_vocabulary(corpus, cfg)
    trainer = Trainer(cfg, vocab)
    encoded = EncodedCorpus(corpus, vocab, tmp_path)
    try:
        schedule = LinearDecay(0.05, encoded.words, 1e-4)
        trainer.train_chunks(encoded, schedule, 0)  # compiles the kernel
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            loss, examples, words, _, curve = trainer.train_chunks(encoded, schedule, 0)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    finally:
        encoded.close()
    assert len(curve) > 2 and words == encoded.words
    assert np.isfinite(float(loss)) and int(examples) > 0
