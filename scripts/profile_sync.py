#!/usr/bin/env python
"""Where torchrun's synchronisation spends its time: RowSync's pieces timed, rank by rank.

Run it under torchrun in place of `-m w2v_nce`:

  torchrun --nproc_per_node 2 scripts/profile_sync.py train corpus.txt --threads 1 --epochs 3 --out run
      any `w2v-nce train` command; at exit each rank prints the wall and CPU milliseconds (this
      thread's) spent in each piece of its rounds and how many calls: _send (the snapshot and the
      buffer to sum, the all-reduces started), _start (the all-reduce calls alone), _land (waiting
      for the round in flight and applying it), _wait (the waiting alone), _apply (the rows taking
      the result); then the waits' quantiles (10, 50, 80, 90, 95, 99, 100%) in ms and their sum over
      5 ms.
  torchrun --nproc_per_node 2 scripts/profile_sync.py --allreduce [--floats N] [--rounds R]
      the gloo all-reduce of N float32 alone, idle and then with a thread per rank keeping a core
      busy (as training does): the median, 90th percentile and largest latency in ms.

docs/distributed.md ("Where a round's time goes") has what it measured.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
import time
from collections import defaultdict

import torch
import torch.distributed as td

PIECES = ("_send", "_start", "_land", "_wait", "_apply")


def profile_training(argv: list[str]) -> int:
    import w2v_nce.distributed as distributed
    from w2v_nce.cli import main

    wall: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            start, start_cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                wall[name].append(time.perf_counter() - start)
                cpu[name] += time.thread_time() - start_cpu
        return wrapper

    for name in PIECES:
        setattr(distributed.RowSync, name, timed(name, getattr(distributed.RowSync, name)))

    @atexit.register
    def report() -> None:
        pieces = " ".join(f"{name} {sum(wall[name]) * 1e3:.0f} ms (cpu {cpu[name] * 1e3:.0f}) / {len(wall[name])}"
                          for name in PIECES if wall[name])
        waits = sorted(wall["_wait"]) or [0.0]
        quantiles = [round(waits[int(q * (len(waits) - 1))] * 1e3, 2) for q in (0.1, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0)]
        print(f"rank {os.environ.get('RANK', '0')}: {pieces}; waits {quantiles} ms, "
              f"over 5 ms {sum(w for w in waits if w > 0.005):.2f} s", file=sys.stderr)

    return main(argv)


def profile_allreduce(floats: int, rounds: int) -> None:
    td.init_process_group("gloo")
    torch.set_num_threads(1)
    busy = threading.Event()

    def burn() -> None:  # a core kept busy, as a training thread keeps it
        a = torch.randn(256, 256)
        while busy.is_set():
            for _ in range(50):
                a.mm(a)

    buffer = torch.randn(floats)
    for loaded in (False, True):
        if loaded:
            busy.set()
            threading.Thread(target=burn, daemon=True).start()
        td.barrier()
        latencies = []
        for _ in range(rounds):
            start = time.perf_counter()
            work = td.all_reduce(buffer, async_op=True)
            while not work.is_completed():
                time.sleep(1e-4)
            latencies.append(time.perf_counter() - start)
        latencies.sort()
        if td.get_rank() == 0:
            print(f"{floats:,} floats, {'a core busy a rank' if loaded else 'idle'}: median "
                  f"{latencies[len(latencies) // 2] * 1e3:.2f} ms, 90% {latencies[int(0.9 * len(latencies))] * 1e3:.2f}, "
                  f"largest {latencies[-1] * 1e3:.2f}")
    busy.clear()
    td.destroy_process_group()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--allreduce":
        ap = argparse.ArgumentParser(description="gloo's all-reduce latency, idle and loaded")
        ap.add_argument("--allreduce", action="store_true")
        ap.add_argument("--floats", type=int, default=480_000, help="float32 a round (the default's mean on wiki17m)")
        ap.add_argument("--rounds", type=int, default=100)
        args = ap.parse_args()
        profile_allreduce(args.floats, args.rounds)
    else:
        sys.exit(profile_training(sys.argv[1:]))
