#!/usr/bin/env python
"""Compile the GPU's Triton kernel for a Hopper GPU (H100/H200) on a machine without one, and
print what each variant costs in registers and spills (docs/gpu.md, "Compiled ahead").

Each variant is the launch `--step triton` makes (w2v_nce.triton_kernel.plan: the same argument
types and constants), for a vocabulary of `--vocab` Zipf-distributed words, so that hierarchical
softmax gets a realistic Huffman path (22 nodes at most for wiki17m's 71,054 words). Compiled by
Triton's own front end and the ptxas its wheel ships (w2v_nce.triton_kernel.compile_ahead); the
registers and spills are cuobjdump's reading of the cubin; `adds` says whether the steps are
relaxed atomic adds in the PTX. TRITON_INTERPRET must not be set. tests/test_triton_kernel.py runs
it at dim 100: a compile error fails there, not in a GPU session's first minutes.

  python scripts/triton_aot.py                       # every loss and arch at dims 100 and 300
  python scripts/triton_aot.py --dims 100 300 1000 --capability 90
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from w2v_nce import triton_kernel  # noqa: E402
from w2v_nce.config import load_config  # noqa: E402
from w2v_nce.objectives import objective_for  # noqa: E402

CASES = [("cbow", "neg"), ("skipgram", "neg"), ("cbow", "nce"), ("skipgram", "nce"), ("cbow", "hs"), ("skipgram", "hs")]


def launch(arch: str, loss: str, dim: int, vocab: int) -> triton_kernel.Launch:
    """The Triton step's launch for these settings (the configuration's defaults otherwise)."""
    cfg = load_config(None, dict(arch=arch, loss=loss, dim=dim, learn_log_z=loss == "nce", device="cpu"))
    counts = np.maximum(5, (1e7 / np.arange(1, vocab + 1))).astype(np.int64)
    objective = objective_for(cfg, counts)
    inp = torch.zeros(vocab, dim)
    out = torch.zeros(objective.output_rows(vocab), dim)
    bias = torch.zeros(len(out)) if cfg.use_bias else None
    ids = torch.zeros(1_000_000, dtype=torch.int32)
    rows, const = objective.logit_offset()
    return triton_kernel.plan(inp, out, bias, ids, torch.arange(1000), cfg.window, arch == "skipgram", 0.05,
                              torch.zeros(1, dtype=torch.int64), cfg.programs, row_offset=rows, const_offset=const,
                              saturated=6.0, lr_end=0.049, first=0, shared_noise=cfg.shared_negatives,
                              **objective.kernel_candidates())


def resources(cubin: bytes) -> dict[str, int]:
    """cuobjdump's REG, STACK (spilled bytes a thread), SHARED and LOCAL of a cubin's kernel."""
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        text = subprocess.run([str(tool), "--dump-resource-usage", str(path)], capture_output=True, text=True,
                              check=True).stdout
    return {key: int(value) for key, value in re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", text)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--vocab", type=int, default=71_054, help="words (Zipf counts): hs's path length follows")
    ap.add_argument("--capability", type=int, default=90, help="compute capability: 90 Hopper, 80 Ampere")
    args = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("error: TRITON_INTERPRET=1 is set: the interpreter compiles nothing", file=sys.stderr)
        return 2
    import triton

    print(f"triton {triton.__version__}, torch {torch.__version__}, sm_{args.capability}")
    print(f"{'arch':9s} {'loss':4s} {'dim':>5s} {'K':>3s} {'warps':>5s} {'seconds':>7s} {'REG':>4s} {'STACK':>5s} "
          f"{'SHARED':>6s} {'adds':>7s}")
    failed = 0
    for dim in args.dims:
        for arch, loss in CASES:
            plan = launch(arch, loss, dim, args.vocab)
            start = time.perf_counter()
            try:
                kernel = triton_kernel.compile_ahead(plan, args.capability)
            except Exception as exc:  # a compile error: the variant's line says it, the others still run
                failed += 1
                print(f"{arch:9s} {loss:4s} {dim:5d} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                continue
            seconds = time.perf_counter() - start
            use = resources(kernel.asm["cubin"])
            adds = "relaxed" if ".relaxed.add.f32" in kernel.asm["ptx"] else "other"  # the steps' atomics
            print(f"{arch:9s} {loss:4s} {dim:5d} {plan.constexprs['K']:3d} {plan.num_warps:5d} {seconds:7.1f} "
                  f"{use.get('REG', -1):4d} {use.get('STACK', -1):5d} {use.get('SHARED', -1):6d} {adds:>7s}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
