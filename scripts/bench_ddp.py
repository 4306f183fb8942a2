#!/usr/bin/env python
"""Benchmark torchrun data parallelism: N ranks x 1 thread against 1 process x N threads.

The corpus is prepared as scripts/bench_vs_gensim.py does (wiki17m streamed into one plain file
of 1,000-word lines, --max-tokens keeps a prefix), then trained with the same settings (CBOW or
skip-gram, negative sampling or hs, dim 100, window 5, 5 epochs by default) by:

  one      `w2v-nce train ... --threads N` (Hogwild threads in one process)
  ddp      `torchrun --nproc_per_node N -m w2v_nce train ... --threads 1`, with the default
           synchronisation (sync_divisor "world", LR scaled by N)
  variants each `--variant NAME:KEY=VALUE,...` one more torchrun run with those Config keys (TOML
           values), e.g. the per-row divisor `touched:sync_divisor="touched"`

Each run is evaluated by the project's own commands (`w2v-nce analogy` and `w2v-nce similarity
--json` with ../shared/eval's questions-words, WordSim-353 and SimLex-999) and the result is one
JSON object: every run's words/s (training words x epochs / training seconds, from metrics.json;
for torchrun all ranks' words over rank 0's seconds), wall seconds, analogy accuracy, WS353 and
SimLex Spearman, and each torchrun run's ratios to `one` (quality >= 0.98 is the bar), plus a table.

Usage (about 4-6 minutes a run on 2 cores for the full wiki17m):
  python scripts/bench_ddp.py                                   # 2 ranks vs 2 threads, full wiki17m
  python scripts/bench_ddp.py --max-tokens 2000000 --json ddp.json
  python scripts/bench_ddp.py --variant 'touched:sync_divisor="touched"' \\
      --variant 'mean-lr/N:sync_scale_lr=false' --variant 'sum:sync_divisor="none"'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from bench_vs_gensim import DEFAULT_CORPUS, SHARED, prepare_corpus  # noqa: E402

EVAL = SHARED / "eval"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def w2v(*args: str) -> list[str]:
    return [sys.executable, "-m", "w2v_nce", *args]


def train(name: str, corpus: Path, workdir: Path, ranks: int, threads: int, settings: list[str],
          extra: dict[str, str]) -> dict:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)  # a variant's name may hold a slash
    out = workdir / slug
    config = workdir / f"{slug}.toml"
    config.write_text("".join(f"{k} = {v}\n" for k, v in extra.items()))
    train_args = ["train", str(corpus), "--out", str(out), "--quiet", "--threads", str(threads), "--config",
                  str(config), *settings]
    if ranks == 1:
        command = w2v(*train_args)
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_port",
                   str(free_port()), "-m", "w2v_nce", *train_args]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: run {name} failed: {done.stderr.strip().splitlines()[-1:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    vectors = out / "vectors.txt"
    analogy = json.loads(subprocess.run(w2v("analogy", str(vectors), str(EVAL / "questions-words.txt"), "--json"),
                                        capture_output=True, text=True, check=True).stdout)
    sims = {key: json.loads(subprocess.run(w2v("similarity", str(vectors), str(EVAL / file), "--json"),
                                           capture_output=True, text=True, check=True).stdout)
            for key, file in (("ws353", "wordsim353.tsv"), ("simlex", "simlex999.txt"))}
    row = {
        "ranks": ranks, "threads": threads, "settings": extra,
        "words_per_sec": metrics["words_per_sec"], "train_seconds": metrics["seconds"], "wall_seconds": round(wall, 1),
        "final_loss": metrics["final_loss"], "vocab_size": metrics["vocab_size"],
        "analogy": analogy["accuracy"], "ws353": sims["ws353"]["spearman"], "simlex": sims["simlex"]["spearman"],
    }
    print(json.dumps({name: row}), file=sys.stderr, flush=True)
    return row


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """'name:key=value,key=value' (values in TOML: strings quoted)."""
    name, _, body = text.partition(":")
    pairs = [item.split("=", 1) for item in body.split(",") if item]
    return name, {k.strip(): v.strip() for k, v in pairs}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--max-tokens", type=int, default=0, help="only the first N tokens (0 = all)")
    ap.add_argument("--workdir", type=Path, default=None, help="where corpus and runs go (default: a temp dir)")
    ap.add_argument("--ranks", type=int, default=2, help="torchrun processes, 1 thread each; `one` gets as many threads")
    ap.add_argument("--arch", default="cbow")
    ap.add_argument("--loss", default="neg")
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE,... one more torchrun run")
    ap.add_argument("--skip-one", action="store_true", help="no single-process run (no ratios)")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = workdir / "corpus.txt"
    prepared = prepare_corpus(args.corpus, corpus, max_tokens=args.max_tokens)
    settings = ["--arch", args.arch, "--loss", args.loss, "--dim", str(args.dim), "--window", str(args.window),
                "--epochs", str(args.epochs), "--seed", str(args.seed)]
    runs: dict[str, dict] = {}
    if not args.skip_one:
        runs["one"] = train("one", corpus, workdir, 1, args.ranks, settings, {})
    runs["ddp"] = train("ddp", corpus, workdir, args.ranks, 1, settings, {})
    for text in args.variant:
        name, extra = parse_variant(text)
        runs[name] = train(name, corpus, workdir, args.ranks, 1, settings, extra)

    keys = ("words_per_sec", "analogy", "ws353", "simlex")
    ratios = {}
    if "one" in runs:
        ratios = {name: {k: round(row[k] / runs["one"][k], 4) if runs["one"][k] else None for k in keys}
                  for name, row in runs.items() if name != "one"}
    result = {"corpus": str(args.corpus), "tokens": prepared["tokens"], "ranks": args.ranks, "settings": settings,
              "runs": runs, "ratios_to_one": ratios}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    header = f"{'run':24s} {'words/s':>10s} {'analogy':>8s} {'WS353':>7s} {'SimLex':>7s}   ratios to one (w/s, an, ws, sl)"
    print(header)
    for name, row in runs.items():
        r = ratios.get(name, {})
        print(f"{name:24s} {row['words_per_sec']:>10,.0f} {row['analogy']:8.4f} {row['ws353']:7.4f} {row['simlex']:7.4f}   "
              + ", ".join(f"{r[k]:.3f}" if r.get(k) is not None else "-" for k in keys))


if __name__ == "__main__":
    main()
