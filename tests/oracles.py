"""Oracles and helpers the test files share (imported by them; no tests here): word2vec.c's loop
written out, autograd's step, a small config, the known-neighbours rank check on real text, and
the command line run in-process with its one-error-line check, and ranks of a gloo group as
forked processes (test_distributed, test_shards)."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from w2v_nce.cli import app
from w2v_nce.config import load_config
from w2v_nce import fused
from w2v_nce.objectives import Candidates, objective_for

VOCAB, DIM, SEED = 30, 8, 0xF123456789ABCDEF  # the window kernels' cases: a seed past 2^63 (uint64 arithmetic)
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "wiki1.5m.txt.gz"
PAIRS = [("two", "three"), ("three", "four"), ("five", "six"), ("he", "she"), ("his", "her"),
         ("france", "germany"), ("january", "february"), ("march", "april")]


def small_cfg(**kw):
    base = dict(dim=24, epochs=3, threads=1, min_count=1, window=2, sample=0.0, seed=1, device="cpu")
    base.update(kw)
    return load_config(None, base)


def word2vec_loop(objective, batch, cand, tables, lr):
    """word2vec.c's loop, literally: for each example, h is the mean of its bag; each candidate in
    turn is scored against its row as it is then, g = d loss / d score from the objective on that
    one score, err += -lr g out[c] and out[c] += -lr g h; finally every bag word moves by err."""
    inp, out, bias = (None if t is None else t.clone().double() for t in tables)
    total = 0.0
    for i in range(len(batch)):
        bag = batch.context[batch.offsets[i]:batch.offsets[i + 1]]
        h = inp[bag].mean(0)
        err = torch.zeros_like(h)
        for j in range(cand.ids.shape[1]):
            if cand.mask is not None and not cand.mask[i, j]:
                continue
            c = int(cand.ids[i, j])
            score = out[c] @ h + (bias[c] if bias is not None else 0.0)
            one = Candidates(ids=cand.ids[i:i + 1, j:j + 1], targets=cand.targets[i:i + 1],
                             labels=cand.labels[i:i + 1, j:j + 1], mask=None)
            loss, g = objective.loss_grad(score.reshape(1, 1), one)
            total += float(loss.sum())
            g = float(g)
            err -= lr * g * out[c]
            out[c] -= lr * g * h
            if bias is not None:
                bias[c] -= lr * g
        inp.index_add_(0, bag, err.expand(len(bag), -1))
    return total, tuple(None if t is None else t.float() for t in (inp, out, bias))



def autograd_step(objective, batch, cand, tables, lr):
    """word2vec's step from autograd: output rows and biases by -lr x the gradient of the summed
    loss, every input word of a bag by -lr x d(loss)/dh of its example (gensim's cbow_mean=1: the
    whole error, not divided by the bag's size). Returns (loss, new tables)."""
    inp, out, bias = (None if t is None else t.clone().requires_grad_(True) for t in tables)
    h = F.embedding_bag(batch.context, inp, batch.offsets[:-1], mode="mean")
    h.retain_grad()
    if cand.ids is None:
        scores = h @ out.T + (bias if bias is not None else 0)
    else:
        scores = (out[cand.ids] * h[:, None, :]).sum(2) + (bias[cand.ids] if bias is not None else 0)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t.clone(), lambda t: t):
        loss = objective.loss_grad(scores, cand)[0].sum()
    loss.backward()
    step = torch.zeros_like(inp).index_add_(0, batch.context, -lr * h.grad[batch.bag])
    new_bias = None if bias is None else (bias - lr * bias.grad).detach()
    return loss.item(), ((inp + step).detach(), (out - lr * out.grad).detach(), new_bias)


def kernel_case(loss: str, tokens: int):
    """For the window kernels' tests: an objective over a small vocabulary, tables large enough that some candidates saturate,
    and a chunk of ids with sentence ends."""
    gen = torch.Generator().manual_seed(0)
    counts = np.arange(VOCAB, 0, -1) * 7
    objective = objective_for(small_cfg(loss=loss, learn_log_z=loss == "nce", log_z=0.3), counts)
    rows = objective.output_rows(VOCAB)
    inp = (torch.rand(VOCAB, DIM, generator=gen) - 0.5) * 3
    out = (torch.rand(rows, DIM, generator=gen) - 0.5) * 6
    bias = torch.randn(rows, generator=gen) * 0.5 if loss == "nce" else None
    ids = torch.randint(0, VOCAB, (tokens,), generator=gen).to(torch.int32)
    ids[[3, tokens // 2, tokens // 2 + 1]] = -1
    return objective, (inp, out, bias), ids, gen


def c_kernel(objective, tables, ids, centres, window, skipgram, seed, lr=0.1, shared_noise=False):
    """The C kernel (fused.window_sgd) on `tables` in place: (loss, Σ dloss/dy, examples)."""
    rows, const = objective.logit_offset()
    return fused.window_sgd(*tables, ids, centres, window, skipgram, lr, seed, row_offset=rows,
                            const_offset=float(const), saturated=6.0, shared_noise=shared_noise,
                            **objective.kernel_candidates())


def copy_tables(tables):
    return tuple(None if t is None else t.clone() for t in tables)


def assert_same_training(got, want):
    """((loss, Σ g, examples), tables) of two window-kernel trainings agree to float rounding."""
    (g_loss, g_sum, g_n), g_tables = got
    (w_loss, w_sum, w_n), w_tables = want
    assert g_n == w_n > 0
    assert g_loss == pytest.approx(w_loss, rel=1e-5)
    assert g_sum == pytest.approx(w_sum, rel=1e-4, abs=1e-4)
    for g, w in zip(g_tables, w_tables):
        if w is not None:
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def assert_known_neighbours_rank_high(vectors) -> None:
    """Every PAIRS word finds its partner among its 25 nearest, at least 4 as the nearest."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(str(vectors))
    assert len(kv) > 18_000
    ranks = {}
    for word, related in PAIRS:
        ranked = [w for w, _ in kv.most_similar(word, topn=100)]
        ranks[word, related] = ranked.index(related) if related in ranked else 100
    assert max(ranks.values()) < 25, ranks
    assert sum(rank == 0 for rank in ranks.values()) >= 4, ranks


def kernel_stream(state: int):
    """The fused kernel's random stream (splitmix64), in Python integers."""
    mask = (1 << 64) - 1
    while True:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        yield z ^ (z >> 31)


def bucket_start(seed: int, bucket: int, dim: int) -> np.ndarray:
    """The initial vector of n-gram bucket `bucket` (w2v_nce.subwords.bucket_init), by hand: draws
    bucket*dim + 1 .. bucket*dim + dim of the kernel's stream from `seed`, 24 bits each, as
    uniform in ±1/dim (in float64, then float32: the same rounding as float32 arithmetic)."""
    stream = kernel_stream((seed + bucket * dim * 0x9E3779B97F4A7C15) & ((1 << 64) - 1))
    return np.array([((next(stream) >> 40) * 2.0 ** -23 - 1) / dim for _ in range(dim)], dtype=np.float32)


def fasttext_matrix(state: dict) -> np.ndarray:
    """[V + buckets, dim] a subword checkpoint's input table as fastText's (row V + b: bucket b),
    by brute force: the word rows, each stored bucket's row (bucket_ids), every other bucket's start."""
    cfg, words, inp = state["config"], state["words"], state["model"]["inp"].numpy()
    vocab, dim = len(words), cfg["dim"]
    row_of = {int(b): vocab + k for k, b in enumerate(state["model"]["bucket_ids"].tolist())}
    seed = state["model"]["bucket_seed"]
    full = np.empty((vocab + cfg["buckets"], dim), dtype=np.float32)
    full[:vocab] = inp[:vocab]
    for b in range(cfg["buckets"]):
        full[vocab + b] = inp[row_of[b]] if b in row_of else bucket_start(seed, b, dim)
    return full


def kernel_examples(ids: list[int], centres: list[int], window: int, seed: int, skipgram: bool,
                    centre_input: bool = False):
    """(bag of words, target) in the window kernel's training order, enumerated by brute force: each
    centre's radius from the radius stream, its window the words within it in its sentence; CBOW one
    example, skip-gram one per window word (the window word the input, or with `centre_input`, as
    fastText, the centre)."""
    radii = kernel_stream(seed ^ 0x5DEECE66D)
    examples = []
    for at in centres:
        r = 1 + next(radii) % window
        sentence_start = max((p + 1 for p in range(at) if ids[p] < 0), default=0)
        sentence_end = min((p for p in range(at, len(ids)) if ids[p] < 0), default=len(ids))
        window_words = [ids[p] for p in range(max(at - r, sentence_start), min(at + r + 1, sentence_end)) if p != at]
        if not window_words:
            continue
        if not skipgram:
            examples.append((window_words, ids[at]))
        elif centre_input:
            examples += [([ids[at]], w) for w in window_words]
        else:
            examples += [([w], ids[at]) for w in window_words]
    return examples

# --------------------------------------------------------------------------- the command line


def _stderr(result) -> str:
    """stderr of a CliRunner result; older click/typer mix it into `output` unless asked."""
    try:
        return result.stderr
    except ValueError:
        return result.output


def invoke(args) -> "tuple[int, str, str]":
    """Run through typer's CliRunner on `app`: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"unexpected exception {result.exception!r}") from result.exception
    try:
        stdout = result.stdout
    except ValueError:
        stdout = result.output
    return result.exit_code, stdout, _stderr(result)


def assert_one_error_line(code, out, err, *fragments):
    assert code != 0 and code is not None
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- ranks: forked processes of a gloo group


def _rank_main(fn, rank: int, world: int, port: int, folder: Path, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    code = 0
    try:
        import datetime

        torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
        fn(rank, folder, *args)
    except BaseException as exc:  # handed to the test
        (folder / f"error-{rank}.txt").write_text(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        code = 1
    finally:
        os._exit(code)  # no atexit or destroy: a peer may be gone


def run_ranks(fn, folder: Path, *args, world: int = 2, timeout: float = 120) -> dict[int, str]:
    """Run fn(rank, folder, *args) in `world` forked processes of one gloo group; the error each
    rank raised (type: message), by rank. A rank still running after `timeout` fails the test."""
    port = free_port()
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_rank_main, args=(fn, rank, world, port, folder, args)) for rank in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    hung = [rank for rank, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert not hung, f"ranks {hung} hung"
    return {rank: (folder / f"error-{rank}.txt").read_text() for rank in range(world)
            if (folder / f"error-{rank}.txt").exists()}
