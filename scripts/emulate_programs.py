#!/usr/bin/env python
"""The quality of the GPU's window kernel (step = triton) at its number of programs, on the CPU.

The Triton kernel runs `programs` programs at once, each training its own slice of a chunk's
centre words one example after another (w2v_nce/triton_kernel.py); under TRITON_INTERPRET it runs
~100 candidates a second, too slow to train on real text. This script emulates it with tensor
operations: the programs advance in lockstep, one example each per round; every example of a
round reads the tables as they were when the round began, and the round's steps are then all added
(the kernel's atomic adds). With one program this is the kernel itself (tests/test_emulate_programs.py
checks it against the C kernel, the same random streams included); with P programs it is the
kernel with the staleness of P examples in flight, which a GPU's programs have too (they do not
run in lockstep, so there a row read may already hold some of the round's steps).

    python scripts/emulate_programs.py --programs 512 --max-tokens 4000000 --epochs 3 --json emu.json

trains through `w2v_nce.train.train` with this step in place of the Triton kernel (metrics.json:
step "lockstep_programs") and evaluates as scripts/bench_vs_gensim.py does.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from w2v_nce import train as train_module
from w2v_nce.config import load_config
from w2v_nce.objectives import LogisticObjective
from w2v_nce.steps import SATURATED, TritonKernel
from w2v_nce.vectors import load_word2vec
from w2v_nce.windows import _GOLDEN, PaddedCentres

HERE = Path(__file__).resolve().parent
RADIUS_STREAM = 0x5DEECE66D


def _signed(u: int) -> int:
    return u - (1 << 64) if u >= 1 << 63 else u


GOLDEN, MIX1, MIX2 = _signed(_GOLDEN), _signed(0xBF58476D1CE4E5B9), _signed(0x94D049BB133111EB)


def _srl(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bits."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's output function on int64 bits (products wrap modulo 2^64)."""
    z = (z ^ _srl(z, 30)) * MIX1
    z = (z ^ _srl(z, 27)) * MIX2
    return z ^ _srl(z, 31)


def _umod(z: torch.Tensor, m: int) -> torch.Tensor:
    """(z as uint64) mod m."""
    return (torch.remainder(z, m) + (z < 0).long() * ((1 << 64) % m)) % m


def _logistic(y, label, live, lr, saturated):
    """The kernel's logistic terms (triton_kernel._logistic): step, moves, loss, d loss / d y."""
    e = torch.exp(-y.abs())
    p = torch.where(y >= 0, 1 / (1 + e), e / (1 + e))
    bce = y.clamp(min=0) - label * y + torch.log1p(e)
    positive = label > 0.5
    sat = (saturated > 0) & torch.where(positive, y > saturated, y < -saturated)
    g = p - label
    moves = live & ~sat
    return (torch.where(moves, -lr * g, 0.0), moves, torch.where(live, torch.where(sat, e, bce), 0.0),
            torch.where(live, torch.where(sat, torch.where(positive, -e, e), g), 0.0))


def lockstep(model, objective: LogisticObjective, batch: PaddedCentres, lr: float, lr_end: float, programs: int,
             saturated: float = SATURATED) -> tuple[torch.Tensor, int, float]:
    """Train `batch` as `programs` programs of the Triton kernel in lockstep (see the module's
    docstring); returns (summed loss, examples trained, summed d loss / d y)."""
    inp, out, bias = model.inp, model.out, model.bias
    rows_offset, const = objective.logit_offset()
    const = float(const)
    cands = objective.kernel_candidates()
    ids = batch.ids.long()
    positions = batch.positions
    m, n_ids, window = len(positions), len(ids), batch.window
    per = max(1, -(-m // max(1, programs)))
    P = max(1, -(-m // per))
    p = torch.arange(P)
    lo = p * per
    length = torch.clamp(m - lo, max=per)
    span = length.clamp(min=1).double()
    nseed = int(batch.seed.reshape(-1)[0]) + (batch.start + lo) * GOLDEN  # wraps modulo 2^64
    rseed = nseed ^ RADIUS_STREAM
    shared = batch.shared_noise and batch.skipgram and "noise" in cands  # one draw of noise words a window
    if "noise" in cands:
        accept, alias, negatives, skip_hits = cands["noise"]
        k = 1 + negatives
    else:
        points, path_labels, path_mask = cands["tree"]
        k = points.shape[1]
    idx = torch.zeros(P, dtype=torch.long)  # the next centre of each program's slice
    nctr = torch.zeros(P, dtype=torch.long)
    first_draw = torch.zeros(P, dtype=torch.long)  # the noise counter at the current centre's start
    rctr = torch.zeros(P, dtype=torch.long)
    ctx = torch.full((P, 2 * window), -1, dtype=torch.long)  # the current centre's window, in the kernel's order
    n_ctx = torch.zeros(P, dtype=torch.long)
    pair = torch.zeros(P, dtype=torch.long)
    target = torch.zeros(P, dtype=torch.long)
    centre_at = torch.zeros(P, dtype=torch.long)  # index of the current centre in its slice (for lr)
    has = torch.zeros(P, dtype=torch.bool)
    w = torch.arange(window)
    loss_total, gsum_total, trained = 0.0, 0.0, 0
    while True:
        need = ~has & (idx < length)
        while bool(need.any()):  # programs move on to their next centre with a window
            q = need.nonzero().squeeze(1)
            at = positions[lo[q] + idx[q]]
            tgt = ids[at]
            word = tgt >= 0
            rctr[q] += word.long()
            radius = 1 + _umod(_mix(rseed[q] + rctr[q] * GOLDEN), window)
            lpos, rpos = at[:, None] - 1 - w, at[:, None] + 1 + w
            lid = torch.where((w < radius[:, None]) & (lpos >= 0), ids[lpos.clamp(min=0)], -1)
            rid = torch.where((w < radius[:, None]) & (rpos < n_ids), ids[rpos.clamp(max=n_ids - 1)], -1)
            lok = torch.cumprod((lid >= 0).long(), 1).bool()
            rok = torch.cumprod((rid >= 0).long(), 1).bool()
            n_left, n_right = lok.sum(1), rok.sum(1)
            # left words farthest first, then the right ones: slot s < window holds offset window - s
            left = torch.where(lok.flip(1), lid.flip(1), -1)
            ctx[q] = torch.cat([left, torch.where(rok, rid, -1)], 1)
            n_ctx[q] = n_left + n_right
            target[q] = tgt
            centre_at[q] = idx[q]
            pair[q] = 0
            has[q] = word & (n_left + n_right > 0)
            first_draw[q] = nctr[q]
            if shared:
                nctr[q] += has[q].long() * (k - 1)
            idx[q] += 1
            need = ~has & (idx < length)
        act = has.nonzero().squeeze(1)
        if len(act) == 0:
            break
        a_ctx, a_t = ctx[act], target[act]
        lr_a = (lr + (lr_end - lr) * (centre_at[act].double() / span[act])).float()
        if batch.skipgram:  # this example's bag: the pair-th valid slot
            valid = a_ctx >= 0
            order = torch.cumsum(valid.long(), 1) - 1
            slot = ((order == pair[act][:, None]) & valid).long().argmax(1)
            bag = a_ctx.gather(1, slot[:, None])
            h = inp[bag[:, 0]]
        else:
            bag = a_ctx
            bag_ok = bag >= 0
            h = (inp[bag.clamp(min=0)] * bag_ok[..., None]).sum(1) / n_ctx[act][:, None].float()
        col = torch.arange(k)
        if "noise" in cands:
            z = _mix(nseed[act][:, None] + ((first_draw if shared else nctr)[act][:, None] + col) * GOLDEN)
            bucket = (_srl(z, 32) * len(accept)) >> 32
            coin = (z & 0xFFFFFF).float() * (1.0 / 16777216.0)
            noise = torch.where(coin < accept[bucket], bucket, alias[bucket])
            cand = torch.where(col == 0, a_t[:, None], noise)
            cmask = (col == 0) | (cand != a_t[:, None]) if skip_hits else torch.ones_like(cand, dtype=torch.bool)
            labels = (col == 0).float().expand(len(act), k)
            if not shared:
                nctr[act] += k - 1
        else:
            cand, labels, cmask = points[a_t], path_labels[a_t], path_mask[a_t]
        rows = out[cand]
        y = (rows * h[:, None, :]).sum(2) - const  # every candidate's score at once, as the kernel takes them
        if bias is not None:
            y = y + bias[cand]
        if rows_offset is not None:
            y = y - rows_offset[cand]
        hh = (h * h).sum(1, keepdim=True) + (1.0 if bias is not None else 0.0)
        shift = torch.zeros_like(y)  # a repeated candidate's earlier copies' steps, each moving y by h.h (+ 1)
        if "noise" in cands:
            repeats = ((cand[:, :, None] == cand[:, None, :]) & (col[None, None, :] < col[None, :, None])
                       & cmask[:, :, None] & cmask[:, None, :]).any(2).any(1)
            r = repeats.nonzero().squeeze(1)
            if len(r):
                for j in range(k):  # the kernel's rescoring loop, for the examples with a repeat
                    step_j = _logistic(y[r, j] + shift[r, j] * hh[r, 0], labels[r, j], cmask[r, j], lr_a[r],
                                       saturated)[0]
                    shift[r] += ((cand[r] == cand[r, j:j + 1]) & (col > j) & cmask[r]) * step_j[:, None]
        step, moves, loss, grad = _logistic(y + shift * hh, labels, cmask, lr_a[:, None], saturated)
        loss_total += float(loss.double().sum())
        gsum_total += float(grad.double().sum())
        err = (step[..., None] * rows).sum(1) + (step * shift).sum(1, keepdim=True) * h
        out.index_add_(0, cand[moves], (step[..., None] * h[:, None, :])[moves])  # after all reads: the snapshot
        if bias is not None:
            bias.index_add_(0, cand[moves], step[moves])
        ok = bag >= 0
        inp.index_add_(0, bag[ok], err[:, None, :].expand(-1, bag.shape[1], -1)[ok])
        trained += len(act)
        if batch.skipgram:
            pair[act] += 1
            has[act] = pair[act] < n_ctx[act]
        else:
            has[act] = False
    return torch.tensor(loss_total, dtype=torch.float64), trained, gsum_total


class Lockstep(TritonKernel):
    """The Triton step's work (its padded chunk made as on the GPU), trained by `lockstep`."""

    name = "lockstep_programs"

    def __call__(self, model, objective, batch, lr, rule, lr_end=None):
        loss, examples, gsum = lockstep(model, objective, batch, lr, lr if lr_end is None else lr_end, self.programs)
        objective.update_from_sum(gsum, max(examples, 1), lr)
        return loss, examples


def _bench():
    spec = importlib.util.spec_from_file_location("bench_vs_gensim", HERE / "bench_vs_gensim.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=HERE.parent.parent / "shared" / "corpora" / "wiki17m.txt.gz")
    ap.add_argument("--max-tokens", type=int, default=4_000_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--programs", type=int, default=512)
    ap.add_argument("--arch", default="cbow")
    ap.add_argument("--loss", default="neg")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    bench = _bench()
    files = bench.eval_files({})
    work = args.workdir or Path(tempfile.mkdtemp(prefix="emulate-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    bench.prepare_corpus(args.corpus, corpus, max_tokens=args.max_tokens)
    cfg = load_config(None, {"arch": args.arch, "loss": args.loss, "epochs": args.epochs, "seed": args.seed,
                             "threads": 1, "device": "cpu", "step": "triton", "programs": args.programs})
    original = train_module.choose_step
    train_module.choose_step = lambda asked, model, objective, rule, programs: (Lockstep(programs), "emulated")
    try:
        start = time.perf_counter()
        metrics = train_module.train(corpus, work / "run", cfg, progress_bar=False)
    finally:
        train_module.choose_step = original
    result = {"programs": args.programs, "arch": args.arch, "loss": args.loss, "epochs": args.epochs,
              "max_tokens": args.max_tokens, "seed": args.seed, "step": metrics["step"],
              "words_per_sec": metrics["words_per_sec"], "seconds": round(time.perf_counter() - start, 1),
              "final_loss": metrics["final_loss"],
              **bench.quality(load_word2vec(work / "run" / "vectors.txt"), files, 30000)}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
