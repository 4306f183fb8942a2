#!/usr/bin/env python
"""The window kernel alone, on synthetic ids: nanoseconds of one thread's CPU time per centre word.

  python scripts/bench_kernel.py [--dims 100 300 1000] [--vocab 200 40000] [--arch cbow skipgram]
                                 [--shared-negatives]

ids are uniform over `vocab` words (no subsampling, no sentence ends), window 5, 5 negatives,
saturated candidates skipped as in training, tables laid out as Model.align_rows lays them. With a
vocabulary of 200 every row stays in L2: that is the kernel's arithmetic alone, its ceiling on this
processor; with 40,000 the rows are random reads from tables larger than L2, as in training. The gap
between the two is what memory costs (docs/performance.md).
"""

from __future__ import annotations

import argparse
import time

import torch

from w2v_nce import fused
from w2v_nce.model import Model


def ns_per_centre(dim: int, vocab: int, skipgram: bool, shared: bool, centres: int) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(0)
    model = Model(vocab, dim, False, torch.device("cpu"), gen)
    model.align_rows()
    ids = torch.randint(0, vocab, (centres,), generator=gen, dtype=torch.int32)
    positions = torch.arange(centres, dtype=torch.int64)
    noise = (torch.ones(vocab), torch.arange(vocab), 5, True)
    best, examples = float("inf"), 0
    for rep in range(3):
        t = time.thread_time()
        _, _, examples = fused.window_sgd(model.inp, model.out, None, ids, positions, 5, skipgram, 0.01, rep,
                                          noise=noise, saturated=6.0, shared_noise=shared)
        best = min(best, time.thread_time() - t)
    return best / centres * 1e9, examples / centres


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--vocab", type=int, nargs="+", default=[200, 40_000])
    ap.add_argument("--arch", nargs="+", default=["cbow", "skipgram"], choices=["cbow", "skipgram"])
    ap.add_argument("--shared-negatives", action="store_true", help="skip-gram: one noise draw per window")
    ap.add_argument("--centres", type=int, default=400_000)
    args = ap.parse_args()
    if not fused.AVAILABLE:
        raise SystemExit("error: the fused kernel is not built")
    print("| arch | dim | vocab | ns / centre | examples / centre |\n|---|---|---|---|---|")
    for arch in args.arch:
        for dim in args.dims:
            for vocab in args.vocab:
                ns, per = ns_per_centre(dim, vocab, arch == "skipgram", args.shared_negatives, args.centres)
                print(f"| {arch} | {dim} | {vocab:,} | {ns:,.0f} | {per:.2f} |", flush=True)


if __name__ == "__main__":
    main()
