#!/usr/bin/env python
"""The launch budget of a step path: operations (kernel launches on a GPU) per step and per word.

A GPU runs each aten operation as at least one kernel launch, ~5 us apiece from Python's eager
mode, so a step of L launches over W words cannot go faster than W / (L x 5 us) words/s whatever
the GPU. This script trains a few steps of a chunk of real text under torch.profiler and counts:

  step ops    aten operations one step runs, nested ones included
  launches    those that launch a kernel: the leaves of the operation tree, less the ones that
              only make a view or allocate (on CUDA, the kernels themselves are counted too)
  chunk ops   the same for making the chunk's examples (subsampling, windows, shuffle, noise),
              spread over the steps of the chunk

and prints the bound at --launch-us per launch. On the CPU the PyTorch path runs as on CUDA
(the fused kernel is turned off, the cap rule's host check skipped, as on a GPU).

  python scripts/launch_budget.py                          # CBOW-NS and SG-NS, batched step
  python scripts/launch_budget.py --step triton --device cuda   # the Triton kernel (one launch a chunk)
  python scripts/launch_budget.py --step kernel                 # the C kernel (what the CPU runs)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

if "batched" in sys.argv or "--step" not in sys.argv:  # the CPU runs the GPU's code (set before w2v_nce is imported)
    os.environ.setdefault("W2V_NCE_NO_KERNEL", "1")

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from w2v_nce import updates  # noqa: E402
from w2v_nce.config import load_config  # noqa: E402
from w2v_nce.encoded import EncodedCorpus  # noqa: E402
from w2v_nce.train import Trainer  # noqa: E402
from w2v_nce.vocab import build_vocabulary, word_count  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# ops that make a view, allocate or only read metadata: no kernel runs for them
NO_KERNEL = {
    "aten::view", "aten::reshape", "aten::_reshape_alias", "aten::_unsafe_view", "aten::slice", "aten::select",
    "aten::as_strided", "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::expand", "aten::squeeze",
    "aten::unsqueeze", "aten::t", "aten::transpose", "aten::alias", "aten::detach", "aten::detach_",
    "aten::resize_", "aten::lift_fresh", "aten::view_as", "aten::permute", "aten::numpy_T", "aten::contiguous",
    "aten::result_type", "aten::item", "aten::_local_scalar_dense", "aten::is_nonzero", "aten::unbind",
    "aten::split", "aten::narrow", "aten::chunk", "aten::_unsafe_split", "aten::size", "aten::stride",
    "aten::set_", "aten::lift", "aten::to", "aten::_to_copy", "aten::is_same_size", "aten::flatten",
    "aten::resolve_conj", "aten::resolve_neg",
}


def count(prof) -> dict:
    """aten ops, kernel-launching leaves and (CUDA) kernels in a profile."""
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    leaves = [e for e in events if not any(c.name.startswith("aten::") for c in e.cpu_children)]
    launching = [e for e in leaves if e.name not in NO_KERNEL]
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    return {"ops": len(events), "launches": len(launching), "kernels": len(kernels),
            "top": Counter(e.name for e in launching).most_common(12)}


def measure(args, arch: str, loss: str) -> dict:
    cfg = load_config(None, {"arch": arch, "loss": loss, "device": args.device, "step": args.step,
                             "batch_size": args.batch_size, "threads": 1, "chunk_tokens": args.chunk_tokens})
    vocab, _ = build_vocabulary(args.corpus, cfg)
    trainer = Trainer(cfg, vocab)
    if isinstance(trainer.rule, updates.Cap):  # the host check runs on the CPU only: as on a GPU
        trainer.rule.all_ones = lambda counts: False
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    encoded = EncodedCorpus(args.corpus, vocab, workdir)
    try:
        chunk = next(encoded.chunks(cfg.chunk_tokens))
    finally:
        encoded.close()
    chunk_words = word_count(chunk)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
    trainer.work(chunk)  # warm-up (allocator, first-call costs)
    with profile(activities=activities) as prof:
        work = trainer.work(chunk)
    made = count(prof)
    step, size = trainer.step, trainer.step.slice_size(cfg)
    starts = list(range(0, len(work), size))
    for lo in starts[:2]:  # warm-up
        step(trainer.model, trainer.objective, work.slice(lo, min(lo + size, len(work))), 0.025, trainer.rule)
    steps = starts[2:2 + args.steps] or starts[:1]
    with profile(activities=activities) as prof:
        for lo in steps:
            step(trainer.model, trainer.objective, work.slice(lo, min(lo + size, len(work))), 0.025, trainer.rule)
    stepped = count(prof)
    units_per_step = sum(min(lo + size, len(work)) - lo for lo in steps) / len(steps)
    words_per_step = chunk_words * units_per_step / max(len(work), 1)
    steps_per_chunk = len(work) / units_per_step
    launches = stepped["launches"] / len(steps) + made["launches"] / steps_per_chunk
    row = {
        "arch": arch, "loss": loss, "step": step.name, "device": args.device, "batch_size": cfg.batch_size,
        "chunk_words": chunk_words, "units_per_chunk": len(work), "units_per_step": units_per_step,
        "words_per_step": round(words_per_step, 1), "step_ops": stepped["ops"] / len(steps),
        "step_launches": stepped["launches"] / len(steps), "chunk_ops": made["ops"],
        "chunk_launches": made["launches"], "launches_per_step": round(launches, 1),
        "kernels_per_step": stepped["kernels"] / len(steps) if stepped["kernels"] else None,
        "bound_words_per_sec": words_per_step / (launches * args.launch_us * 1e-6),
        "top_step_launches": stepped["top"], "top_chunk_launches": made["top"],
    }
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=REPO / "data" / "wiki1.5m.txt.gz")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--step", default="batched", help="the step option (batched: the eager step)")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--chunk-tokens", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=5, help="steps profiled")
    ap.add_argument("--launch-us", type=float, default=5.0, help="microseconds a launch costs")
    ap.add_argument("--runs", default="cbow:neg,skipgram:neg", help="arch:loss pairs")
    ap.add_argument("--workdir", default="/tmp/launch_budget")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for pair in args.runs.split(","):
        arch, loss = pair.split(":")
        start = time.perf_counter()
        row = measure(args, arch, loss)
        rows.append(row)
        print(f"{arch}-{loss} {row['step']} on {args.device}, batch {row['batch_size']}: "
              f"{row['step_ops']:.0f} aten ops a step ({row['step_launches']:.0f} launching), "
              f"example making {row['chunk_ops']} ops ({row['chunk_launches']} launching) a chunk of "
              f"{row['chunk_words']:,} words = {row['units_per_chunk'] / row['units_per_step']:.0f} steps; "
              f"{row['launches_per_step']:.1f} launches per {row['words_per_step']:,.0f} words -> at most "
              f"{row['bound_words_per_sec'] / 1e6:.2f}M words/s at {args.launch_us:g} us a launch "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        print("  step:", ", ".join(f"{n.removeprefix('aten::')} {c}" for n, c in row["top_step_launches"]))
        print("  chunk:", ", ".join(f"{n.removeprefix('aten::')} {c}" for n, c in row["top_chunk_launches"]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
