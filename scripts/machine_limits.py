#!/usr/bin/env python
"""What this machine allows one training thread: the ceilings docs/performance.md compares the
kernel with.

  python scripts/machine_limits.py

  * vector throughput: float32 GFLOP/s of a large matrix product on one thread (the BLAS torch
    links; an upper bound on what any dot/axpy loop can reach);
  * streaming: GB/s of a copy (read + write) of 64 MB (fits this machine's L3) and of 1 GB.

The kernel's own ceiling, its speed when every row is in L2, is scripts/bench_kernel.py's. The
words/s a step could reach is min(GB/s / bytes per word, GFLOP/s / flops per word), with the bytes
and flops per word of docs/performance.md's model.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def gflops() -> float:
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    return 2 * 2048 ** 3 / best(lambda: a @ b) / 1e9


def stream_gbs(mb: int) -> float:
    src, dst = np.random.rand(mb << 18).astype(np.float32), np.zeros(mb << 18, np.float32)
    return 2 * src.nbytes / best(lambda: np.copyto(dst, src), 5) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    torch.set_num_threads(1)
    print(f"matrix product, 1 thread: {gflops():.1f} GFLOP/s")
    for mb in (64, 1024):
        print(f"streaming copy of {mb} MB, 1 thread: {stream_gbs(mb):.1f} GB/s (read + write)")


if __name__ == "__main__":
    main()
