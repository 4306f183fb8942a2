"""The GPU's window kernel (w2v_nce.triton_kernel) against the CPU kernel, under TRITON_INTERPRET=1.

Oracle: the C kernel (fused.window_sgd), which tests/test_window_kernel.py checks against
word2vec's loop written out. One Triton program trains its slice as one C kernel thread does (the
same random streams, windows, candidates and steps), so on tiny inputs the tables agree to float
rounding; the interpreter runs a launch's programs one after another, so a launch of several
programs equals the C kernel called on each program's slice in turn. Without CUDA the kernel runs
in Triton's interpreter (conftest.py sets TRITON_INTERPRET=1), ~100 candidates a second: the
inputs are tiny. Skipped where triton is not installed (the `test` extra installs it on Linux).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import require_kernel, require_triton, write_twin_corpus
from oracles import SEED, assert_same_training, c_kernel, copy_tables, kernel_case, small_cfg
from w2v_nce.checkpoint import load_checkpoint
from w2v_nce.train import train
from w2v_nce.windows import _GOLDEN, Centres, PaddedCentres, subsample, subsample_padded

VOCAB = 30


@pytest.fixture(autouse=True)
def _needs_both():
    require_triton()
    require_kernel()


def _triton(objective, tables, ids, centres, window, skipgram, seed, programs, first=0, lr=0.1, shared_noise=False):
    from w2v_nce import triton_kernel

    rows, const = objective.logit_offset()
    loss, gsum, examples = triton_kernel.window_sgd(
        *tables, ids, centres, window, skipgram, lr, seed, programs, row_offset=rows, const_offset=const,
        saturated=6.0, first=first, shared_noise=shared_noise, **objective.kernel_candidates())
    return float(loss), float(gsum), int(examples)


@pytest.mark.parametrize("loss", ["neg", "nce", "hs"])
@pytest.mark.parametrize("arch", ["cbow", "skipgram", "skipgram-shared"])
def test_one_program_equals_the_c_kernel(loss, arch):
    """`skipgram-shared`: one draw of noise words per window (shared_negatives, the CPU's default)."""
    skipgram, shared = arch.startswith("skipgram"), arch.endswith("shared")
    objective, tables, ids, gen = kernel_case(loss, tokens=16 if skipgram else 36)
    centres = torch.nonzero(ids >= 0).squeeze(1)
    centres = centres[torch.randperm(len(centres), generator=gen)]
    want_tables, got_tables = copy_tables(tables), copy_tables(tables)
    want = c_kernel(objective, want_tables, ids, centres, 2 if skipgram else 3, skipgram, SEED, shared_noise=shared)
    got = _triton(objective, got_tables, ids, centres, 2 if skipgram else 3, skipgram, SEED, programs=1,
                  shared_noise=shared)
    assert_same_training((got, got_tables), (want, want_tables))
    assert not torch.equal(got_tables[0], tables[0])


def test_programs_train_their_slices_with_the_slices_seeds():
    """Program p trains centres[p*per : (p+1)*per] from the seed Centres.slice gives that slice
    (`first`: where the launch's centres start in their chunk); the interpreter runs them in turn."""
    objective, tables, ids, _ = kernel_case("neg", tokens=40)
    centres = torch.nonzero(ids >= 0).squeeze(1)
    chunk = Centres(ids, centres, 2, False, SEED)
    first, per = 3, 12  # the launch trains the chunk's centres 3.. in 3 programs of 12
    want_tables, got_tables = copy_tables(tables), copy_tables(tables)
    loss = gsum = examples = 0
    for lo in range(first, len(centres), per):
        part = chunk.slice(lo, min(lo + per, len(centres)))
        one = c_kernel(objective, want_tables, ids, part.positions, 2, False, part.seed)
        loss, gsum, examples = loss + one[0], gsum + one[1], examples + one[2]
    got = _triton(objective, got_tables, ids, centres[first:], 2, False, SEED, programs=3, first=first)
    assert_same_training((got, got_tables), ((loss, gsum, examples), want_tables))


def test_a_padded_chunk_trains_as_the_subsampled_one():
    """The device's chunk (subsample_padded: sentence ends after the kept words, every position a
    centre) trains as the C kernel's (subsample, the words' positions): the kernel skips the ends."""
    objective, tables, ids, _ = kernel_case("neg", tokens=36)
    keep_prob = torch.tensor([0.3] * 5 + [1.0] * (VOCAB - 5))
    kept = subsample(ids.long(), keep_prob, torch.Generator().manual_seed(4))
    padded = subsample_padded(ids.long(), keep_prob, torch.Generator().manual_seed(4))
    assert len(padded) == len(ids) and torch.equal(padded[:len(kept)], kept.to(torch.int32))
    assert bool((padded[len(kept):] == -1).all())
    chunk = PaddedCentres.of(padded, 3, "cbow", torch.Generator().manual_seed(5))
    want_tables, got_tables = copy_tables(tables), copy_tables(tables)
    compact = kept.to(torch.int32)
    want = c_kernel(objective, want_tables, compact, torch.nonzero(compact >= 0).squeeze(1), 3, False, SEED)
    got = _triton(objective, got_tables, chunk.ids, chunk.positions, 3, False, SEED, programs=1)
    assert_same_training((got, got_tables), (want, want_tables))


def test_training_with_step_triton_equals_the_kernel_step(tmp_path):
    """Through the trainer: one program, centres in corpus order and a constant learning rate, the
    Triton step (its chunk made on the device, one launch) trains the tables the C kernel's step
    trains, learnt log Z included, and metrics.json and config.toml say which step ran."""
    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, classes=6, sentences=12, length=8)
    options = dict(loss="nce", learn_log_z=True, epochs=1, shuffle=False, min_lr_ratio=1.0, programs=1, window=2)
    runs = {}
    for step in ("kernel", "triton"):
        metrics = train(corpus, tmp_path / step, small_cfg(step=step, **options), progress_bar=False)
        runs[step] = metrics, load_checkpoint(tmp_path / step / "checkpoint.pt")
    (m_c, c), (m_t, t) = runs["kernel"], runs["triton"]
    assert m_t["step"] == "triton_kernel" and m_c["step"] == "window_kernel"
    assert 'step = "triton"' in (tmp_path / "triton" / "config.toml").read_text()
    assert m_t["examples"] == m_c["examples"] > 0
    assert m_t["final_loss"] == pytest.approx(m_c["final_loss"], rel=1e-5)
    assert m_t["log_z"] == pytest.approx(m_c["log_z"], abs=1e-6) and m_t["log_z"] != 0.0
    for name in ("inp", "out", "bias"):
        torch.testing.assert_close(t["model"][name], c["model"][name], rtol=1e-4, atol=1e-5)


def test_the_seed_offsets_agree_with_centres_slice():
    """The kernel derives a program's seed as Centres.slice does, modulo 2^64."""
    chunk = Centres(torch.zeros(1, dtype=torch.int32), torch.arange(100), 2, False, SEED)
    assert chunk.slice(37, 40).seed == (SEED + 37 * _GOLDEN) % (1 << 64)


def test_lock_init_keeps_the_rows_on_the_triton_step(tmp_path):
    """--lock-init wraps the Triton step as any other (w2v_nce.grow.FrozenRows): the rows taken from
    --init-vectors end the run bit for bit as given; without it the same run moves them."""
    import numpy as np

    from w2v_nce.vectors import Vectors, save_word2vec

    corpus = tmp_path / "twins.txt"
    twins = write_twin_corpus(corpus, classes=6, sentences=12, length=8)
    words = [a for a, _ in twins[:3]]
    given = Vectors(words, np.random.default_rng(0).normal(size=(3, 24)).astype(np.float32))
    save_word2vec(given, tmp_path / "v.txt")
    for lock in (True, False):
        cfg = small_cfg(step="triton", epochs=1, window=2, programs=4, init_vectors=str(tmp_path / "v.txt"),
                        lock_init=lock)
        with pytest.warns(UserWarning, match="3 of the 12"):
            metrics = train(corpus, tmp_path / str(lock), cfg, progress_bar=False)
        assert metrics["step"] == "triton_kernel" and metrics["frozen_rows"] == (3 if lock else None)
        state = load_checkpoint(tmp_path / str(lock) / "checkpoint.pt")
        rows = dict(zip(state["words"], state["model"]["inp"]))
        for word, vector in zip(given.words, given.matrix):
            assert torch.equal(rows[word], torch.from_numpy(vector)) == lock, (lock, word)


def test_what_the_triton_step_cannot_train_is_an_error(tmp_path):
    """The Triton kernel serves hs, neg and nce without subwords; asked for anything else it says
    why in one error (auto takes the batched step there)."""
    from w2v_nce.errors import UserError

    corpus = tmp_path / "twins.txt"
    write_twin_corpus(corpus, classes=6, sentences=12, length=8)
    for options, reason in ((dict(loss="rnce"), "not one of hs, neg, nce"), (dict(loss="softmax"), "every output row"),
                            (dict(maxn=4), "subwords"), (dict(update="implicit"), "curvature")):
        with pytest.raises(UserError, match=reason):
            train(corpus, tmp_path / "run", small_cfg(step="triton", epochs=1, **options), progress_bar=False)


def test_every_variant_compiles_for_hopper_without_a_gpu():
    """The interpreter checks what the kernel computes, not that it compiles: a type that changes
    inside a loop, or a runtime value where a constant must be, fail only in Triton's compiler.
    scripts/triton_aot.py compiles the launch `--step triton` makes for every loss and arch for
    sm_90 (the H100/H200) with the ptxas that triton's wheel ships: a compile error fails here, not
    in the first minutes of a GPU session."""
    import os
    import subprocess
    import sys

    import triton

    tools = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    if not (tools / "ptxas").exists() or not (tools / "cuobjdump").exists():
        pytest.skip("this triton has no NVIDIA backend tools (ptxas, cuobjdump)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = Path(__file__).resolve().parent.parent / "scripts" / "triton_aot.py"
    done = subprocess.run([sys.executable, str(script), "--dims", "100", "--vocab", "2000"], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["cbow"], ["skipgram"])]
    # every step a relaxed atomic add (red, or atom in Triton 3.6): Hogwild programs' steps all land
    assert len(rows) == 6 and all(len(row) == 10 and int(row[6]) > 0 and row[9] == "relaxed" for row in rows), done.stdout
