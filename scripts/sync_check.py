#!/usr/bin/env python
"""One epoch with torch.cuda.set_sync_debug_mode("error"): inside an epoch the host never waits for
the GPU (no .item(), no masked_select or nonzero, no blocking copy), so the device never idles
while Python catches up. The first synchronising call raises, and this script fails with it.

    python scripts/sync_check.py CORPUS --device cuda --step triton --max-tokens 2000000

It trains one warm-up epoch (the kernel compiles, the allocator fills), then the checked one
through Trainer.train_chunks without a progress bar (whose loss readout is the one sync an epoch
allows, at most once a second). On the CPU there is no sync to catch: the epoch runs unchecked
(the dry run of scripts/gpu_matrix.sh).
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

from w2v_nce.config import load_config
from w2v_nce.encoded import EncodedCorpus
from w2v_nce.train import LinearDecay, Trainer
from w2v_nce.vocab import build_vocabulary

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--step", default="triton")
    ap.add_argument("--arch", default="cbow")
    ap.add_argument("--loss", default="neg")
    ap.add_argument("--max-tokens", type=int, default=2_000_000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    spec = importlib.util.spec_from_file_location("bench_vs_gensim", HERE / "bench_vs_gensim.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg = load_config(None, {"device": args.device, "step": args.step, "arch": args.arch, "loss": args.loss,
                             "learn_log_z": args.loss == "nce"})
    with tempfile.TemporaryDirectory(prefix="sync-check-") as tmp:
        corpus = Path(tmp) / "corpus.txt"
        bench.prepare_corpus(args.corpus, corpus, max_tokens=args.max_tokens)
        vocab, _ = build_vocabulary(corpus, cfg)
        trainer = Trainer(cfg, vocab)
        encoded = EncodedCorpus(corpus, vocab, Path(tmp))
        try:
            schedule = LinearDecay(cfg.start_lr, 2 * encoded.words, cfg.min_lr_ratio)
            trainer.train_chunks(encoded, schedule, 0)  # warm-up
            cuda = trainer.device.type == "cuda"
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("error")
            start = time.perf_counter()
            try:
                loss, examples, words, _, curve = trainer.train_chunks(encoded, schedule, encoded.words)
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode(0)
            queued = time.perf_counter() - start  # the host's time to queue the epoch
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
        finally:
            encoded.close()
    result = {"device": str(trainer.device), "step": trainer.step.name, "checked": cuda, "words": encoded.words,
              "chunks": len(curve), "examples": int(examples), "loss": float(loss) / max(int(examples), 1),
              "seconds": round(seconds, 3), "host_seconds": round(queued, 3),
              "words_per_sec": round(encoded.words / max(seconds, 1e-9))}
    print(("no host sync in an epoch: " if cuda else "unchecked (no CUDA): ") + json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
